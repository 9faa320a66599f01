"""`dcsl fit TABLE --x COLUMN --y COLUMN`: one law fitted to any table, and the documented
results-table contract (`dcsl fit --help`, docs/results-table.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcsl_cli import main as dcsl
from scaling import cli, fit_power_law
from scaling.table.contract import (
    DISTILL_COLUMNS,
    EVAL_COLUMNS,
    EVAL_OPTIONAL_COLUMNS,
    KINDS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ROLES,
    RULES,
    STATUSES,
    contract_markdown,
)
from scaling.table.load import TableError, law_points

REPO = Path(__file__).resolve().parents[1]
TRUE_LAW = (400.0, 0.35, 1.7)  # A, alpha, E
N_PARAMS = np.array([1e6, 3e6, 1e7, 3e7, 1e8, 3e8])


def law_loss(n: np.ndarray, shift: float = 0.0, noise: float = 0.002, seed: int = 0) -> np.ndarray:
    a, alpha, e = TRUE_LAW
    return a / n**alpha + e + shift + np.random.default_rng(seed).normal(0.0, noise, n.size)


@pytest.fixture
def points_csv(tmp_path: Path) -> Path:
    """Just the two columns a researcher has: n_params,loss."""
    path = tmp_path / "points.csv"
    pd.DataFrame({"n_params": N_PARAMS, "loss": law_loss(N_PARAMS)}).to_csv(path, index=False)
    return path


def strict_json(text: str) -> dict:
    """json.loads that refuses NaN and Infinity, which strict JSON does not have."""
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def run_dcsl(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """The dcsl dispatcher in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        dcsl(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_two_column_csv_fits_with_intervals_and_prints_the_law(
        points_csv: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_dcsl(["fit", str(points_csv), "--x", "n_params", "--y", "loss",
                               "--n-boot", "100"], capsys)
    assert code == 0, err
    assert "loss = A / n_params^alpha + E" in out and "L = " in out and "/ n_params^0.3" in out
    for name in ("A", "alpha", "E"):
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{name} "))
        assert "[" in line and "]" in line  # value [low, high]
    assert "6 of 6 rows used" in out and "2.48 decades" in out
    assert "held-out error" in out and "95% intervals from 100 pairs" in out


def test_the_last_word_of_a_column_names_it(points_csv: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    """The issue's own command: `--x params` on a table whose column is n_params."""
    assert cli.main(["fit", str(points_csv), "--x", "params", "--y", "loss", "--n-boot", "0",
                     "--json"]) == 0
    payload = strict_json(capsys.readouterr().out)
    assert payload["x"] == "n_params" and payload["law"]["fit"]["intervals"] == {}


def test_the_fit_is_fit_power_law_with_the_same_seed(points_csv: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["fit", str(points_csv), "--x", "n_params", "--y", "loss", "--json",
                     "--n-boot", "40", "--bootstrap-seed", "7", "--bootstrap", "residual",
                     "--level", "0.9"]) == 0
    fitted = strict_json(capsys.readouterr().out)["law"]["fit"]
    table = pd.read_csv(points_csv)
    expected = fit_power_law(table["n_params"], table["loss"], n_boot=40, seed=7,
                             bootstrap="residual", level=0.9)
    assert fitted["E"] == pytest.approx(expected.E)
    assert fitted["intervals"]["E"] == pytest.approx(list(expected.intervals["E"]))
    assert fitted["level"] == 0.9
    assert (fitted["A"], fitted["alpha"], fitted["E"]) == pytest.approx(TRUE_LAW, rel=0.05)


def test_blank_and_nan_rows_are_skipped_and_counted(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("n_params,loss\n" + "".join(
        f"{n},{y}\n" for n, y in zip(N_PARAMS, law_loss(N_PARAMS), strict=True))
        + ",3.0\n2e6,\n4e6,nan\n")
    assert cli.main(["fit", str(path), "--x", "n_params", "--y", "loss", "--n-boot", "0"]) == 0
    assert "6 of 9 rows used; 3 skipped (a blank or NaN n_params or loss)" in (
        capsys.readouterr().out)
    assert cli.main(["fit", str(path), "--x", "n_params", "--y", "loss", "--n-boot", "0",
                     "--json"]) == 0
    payload = strict_json(capsys.readouterr().out)
    assert (payload["rows"], payload["rows_skipped"], payload["law"]["n_points"]) == (9, 3, 6)


def test_json_is_strict_and_carries_the_fit(points_csv: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    # Three points: no held-out error and no bootstrap, so neither None may become NaN on the
    # way out; the fit says why in its warnings.
    short = points_csv.with_name("short.csv")
    pd.read_csv(points_csv).head(3).to_csv(short, index=False)
    code, out, err = run_dcsl(["fit", str(short), "--x", "n_params", "--y", "loss", "--json",
                               "--n-boot", "30"], capsys)
    assert code == 0, err
    law = strict_json(out)["law"]
    assert law["n_points"] == 3 and law["x_decades"] == pytest.approx(1.0)
    assert law["law"].startswith("L = ") and law["fit"]["extrapolation_error"] is None
    assert law["fit"]["intervals"] == {} and any("bootstrap skipped" in w for w in law["warnings"])

    code, out, err = run_dcsl(["fit", str(points_csv), "--x", "n_params", "--y", "loss",
                               "--json", "--n-boot", "30"], capsys)
    assert code == 0, err
    payload = strict_json(out)
    assert set(payload["law"]["fit"]["intervals"]) == {"A", "alpha", "E"}
    assert payload["settings"] == {"method": "huber-log", "n_boot": 30, "seed": 0,
                                   "level": 0.95, "bootstrap": "pairs"}
    assert payload["warnings"] == payload["law"]["warnings"]


def test_group_fits_one_law_per_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    budgets = (210_000_000, 420_000_000)
    frame = pd.concat([pd.DataFrame({"n_params": N_PARAMS, "budget_tokens": budget,
                                     "loss": law_loss(N_PARAMS, shift=0.1 * i, seed=i)})
                       for i, budget in enumerate(budgets)])
    lonely = pd.DataFrame({"n_params": [1e6], "budget_tokens": [840_000_000], "loss": [3.0]})
    path = tmp_path / "grouped.csv"
    pd.concat([frame, lonely]).to_csv(path, index=False)

    assert cli.main(["fit", str(path), "--x", "n_params", "--y", "loss", "--group",
                     "budget_tokens", "--n-boot", "30"]) == 0
    out = capsys.readouterr().out
    assert "budget_tokens" in out and "210000000" in out and "420000000" in out
    assert "budget_tokens=840000000: not fitted: need at least 3 points" in out

    assert cli.main(["fit", str(path), "--x", "n_params", "--y", "loss", "--group",
                     "budget_tokens", "--n-boot", "30", "--json"]) == 0
    payload = strict_json(capsys.readouterr().out)
    assert payload["group"] == "budget_tokens"
    laws = {law["group"]: law for law in payload["laws"]}
    assert list(laws) == [210_000_000, 420_000_000, 840_000_000]
    for shift, budget in ((0.0, budgets[0]), (0.1, budgets[1])):
        assert laws[budget]["fit"]["E"] == pytest.approx(TRUE_LAW[2] + shift, abs=0.05)
    assert laws[840_000_000]["fit"] is None and laws[840_000_000]["n_points"] == 1


def test_a_table_without_the_contract_columns_gets_one_line_with_the_way_out(
        points_csv: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_dcsl(["fit", str(points_csv)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcsl fit:")
    assert "missing columns 'run_id', 'kind'" in lines[0]
    assert "the study analysis needs " + ", ".join(REQUIRED_COLUMNS) in lines[0]
    assert "--x COLUMN --y COLUMN" in lines[0] and "(n_params, loss)" in lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--x", "n_params"], "--x and --y go together"),
     (["--group", "loss"], "--group needs --x and --y"),
     (["--x", "n_params", "--y", "los"], "no column 'los' (columns: n_params, loss)"),
     (["--x", "n_params", "--y", "loss", "--level", "95"], "--level must be between 0 and 1")],
)
def test_usage_errors_exit_2_with_one_line(points_csv: Path, capsys: pytest.CaptureFixture,
                                           extra: list[str], message: str) -> None:
    code, _, err = run_dcsl(["fit", str(points_csv), *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err


def test_points_that_cannot_be_fitted_are_refused(tmp_path: Path) -> None:
    table = pd.DataFrame({"n_params": [1e6, 2e6, 4e6], "loss": [3.0, -1.0, 2.5]})
    with pytest.raises(TableError, match=r"'loss' must be finite and positive .*data row 2"):
        law_points(table, "n_params", "loss")
    with pytest.raises(TableError, match="'loss' is not numeric"):
        law_points(table.assign(loss=["3.0", "abc", "2.5"]), "n_params", "loss")
    with pytest.raises(TableError, match="did you mean"):
        law_points(table.rename(columns={"loss": "val_loss"}).assign(best_loss=1.0),
                   "n_params", "loss")
    path = tmp_path / "two.csv"
    table.head(1).assign(loss=3.0).to_csv(path, index=False)
    with pytest.raises(SystemExit, match="need at least 3 points"):
        cli.main(["fit", str(path), "--x", "n_params", "--y", "loss"])


def test_help_documents_the_whole_contract(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_dcsl(["fit", "--help"], capsys)
    assert code == 0
    words = set(out.replace(",", " ").replace("(", " ").replace(")", " ").split())
    documented = (REQUIRED_COLUMNS + OPTIONAL_COLUMNS + ("role",) + DISTILL_COLUMNS
                  + EVAL_COLUMNS + EVAL_OPTIONAL_COLUMNS + KINDS + STATUSES + ROLES + RULES)
    assert set(documented) <= words, set(documented) - words
    for title in ("required columns:", "kind values:", "status values:", "role values:",
                  "rule values:"):
        assert title in out
    assert "--x COLUMN" in out and "--group COLUMN" in out


def test_every_option_says_its_default() -> None:
    parser = argparse.ArgumentParser(prog="dcsl")
    subparsers = parser.add_subparsers(dest="command")
    cli.register(subparsers)
    for name, command in subparsers.choices.items():
        for action in command._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert "default" in (action.help or ""), f"{name} {action.option_strings}"


def test_the_docs_page_holds_the_generated_contract() -> None:
    page = (REPO / "docs" / "results-table.md").read_text()
    assert contract_markdown() in page, (
        "docs/results-table.md is out of date: replace everything from '## The results "
        "table' with scaling.contract.contract_markdown()")
