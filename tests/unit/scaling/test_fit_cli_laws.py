"""`dcsl fit TABLE --law chinchilla|data-constrained`: plain tables, results tables, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling import cli
from scaling.fit.forms import chinchilla_loss, data_constrained_loss

REPO = Path(__file__).resolve().parents[3]
MUENNIGHOFF = {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353, "R_D": 15.4,
               "R_N": 5.3}


def dcsl_fit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaling.cli", "fit", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def repeated_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n, u, epochs = np.meshgrid(np.geomspace(1e7, 2e9, 5), np.geomspace(1e8, 1e10, 3),
                               np.array([1.0, 3.0, 10.0, 30.0, 100.0]), indexing="ij")
    n, u, d = n.ravel(), u.ravel(), (u * epochs).ravel()
    loss = data_constrained_loss(n, d, u, **MUENNIGHOFF)
    loss *= np.exp(np.random.default_rng(0).normal(0, 0.003, loss.size))
    path = tmp_path_factory.mktemp("laws") / "runs.csv"
    pd.DataFrame({"params": n, "tokens": d, "unique": u, "loss": loss}).to_csv(path, index=False)
    return path


def test_the_data_constrained_law_from_a_plain_csv_with_an_allocation(repeated_csv: Path) -> None:
    done = dcsl_fit(str(repeated_csv), "--law", "data-constrained", "--n", "params", "--d",
                    "tokens", "--u", "unique", "--y", "loss", "--n-boot", "100",
                    "--compute", "1e21", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    fit = payload["fit"]["fit"]
    assert fit["params"]["R_D"] == pytest.approx(15.4, rel=0.15)
    assert fit["identifiable"]
    allocation = payload["fit"]["allocation"]
    assert allocation["unique_tokens"] == pytest.approx(1e10)  # the table's largest U
    assert allocation["epochs"]["value"] > 0
    assert payload["columns"] == {"n": "params", "d": "tokens", "y": "loss", "u": "unique"}


def test_text_and_markdown_name_every_parameter_and_the_lack_of_fit(repeated_csv: Path) -> None:
    text = dcsl_fit(str(repeated_csv), "--law", "chinchilla", "--n", "params", "--d", "tokens",
                    "--y", "loss", "--n-boot", "50", "--noise", "0.01")
    assert text.returncode == 0, text.stderr
    for word in ("L = E + A / N^alpha + B / D^beta", "alpha", "beta", "lack of fit",
                 "identified", "warnings"):
        assert word in text.stdout
    markdown = dcsl_fit(str(repeated_csv), "--law", "data-constrained", "--n", "params", "--d",
                        "tokens", "--u", "unique", "--y", "loss", "--n-boot", "50", "--markdown",
                        "--fixed", "alpha=0.353", "--fixed", "beta=0.353")
    assert markdown.returncode == 0, markdown.stderr
    assert "| R_D |" in markdown.stdout and "| alpha | 0.3530 | fixed |" in markdown.stdout


def test_a_results_table_needs_no_column_options(tmp_path: Path) -> None:
    """Each recipe's best loss per (N, D, U): the worse learning rate of a lattice is not fitted."""
    rows = []
    for recipe, decay in (("standard", 6.0), ("regularized", 30.0)):
        for size, n in (("s", 2e7), ("m", 1e8), ("l", 4e8), ("xl", 1.6e9)):
            for budget in (1e8, 1e9, 1e10):
                for epochs in (1.0, 4.0, 16.0, 64.0):
                    p = dict(MUENNIGHOFF, R_D=decay)
                    best = float(data_constrained_loss(n, budget * epochs, budget, **p))
                    for lr, worse in ((3e-3, 0.0), (1e-2, 0.2)):
                        rows.append({"run_id": f"{recipe}-{size}-{budget}-{epochs}-{lr}",
                                     "kind": "train", "recipe": recipe, "role": recipe,
                                     "status": "succeeded", "size": size, "n_params": n,
                                     "budget_tokens": budget, "epochs": epochs, "lr": lr,
                                     "tokens_seen": budget * epochs, "val_loss": best + worse,
                                     "K": 1})
    rows.append(dict(rows[0], run_id="x", status="stale", val_loss=float("nan")))
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    done = dcsl_fit(str(tmp_path), "--law", "data-constrained", "--n-boot", "0", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["best_per_point"] and payload["group"] == "recipe"
    laws = {law["group"]: law["fit"] for law in payload["laws"]}
    assert laws["standard"]["params"]["R_D"] == pytest.approx(6.0, rel=0.02)
    assert laws["regularized"]["params"]["R_D"] == pytest.approx(30.0, rel=0.02)
    assert all(law["n_points"] == 48 for law in payload["laws"])


@pytest.mark.parametrize(("args", "message"), [
    (["--law", "data-constrained", "--n", "params", "--d", "tokens", "--y", "loss"],
     "the data-constrained law needs --u COLUMN"),
    (["--law", "chinchilla", "--n", "params", "--d", "tokens", "--y", "loss", "--u", "unique"],
     "--u is for the data-constrained law"),
    (["--law", "chinchilla", "--n", "params", "--d", "nope", "--y", "loss"], "no column 'nope'"),
    (["--compute", "1e21"], "--compute goes with --law"),
    (["--law", "chinchilla", "--n", "params", "--d", "tokens", "--y", "loss", "--fixed", "E"],
     "expected NAME=VALUE"),
    (["--law", "chinchilla", "--n", "params", "--d", "tokens", "--y", "loss", "--fixed",
      "R_D=3"], "'R_D' is not a parameter of the chinchilla law"),
])
def test_bad_law_options_are_one_line_errors(repeated_csv: Path, args: list[str],
                                             message: str) -> None:
    done = dcsl_fit(str(repeated_csv), *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_fit_help_explains_the_laws() -> None:
    parser = cli.argparse.ArgumentParser(prog="dcsl")
    cli.register(parser.add_subparsers(dest="command"))
    text = parser._subparsers._group_actions[0].choices["fit"].format_help()
    assert "--law {chinchilla,data-constrained}" in text and "docs/laws.md" in text


def test_a_plain_chinchilla_table_prints_the_closed_form_optimum(tmp_path: Path) -> None:
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 2e9, 5), np.geomspace(4e8, 4e10, 5)))
    loss = chinchilla_loss(n, d, 1.82, 482.0, 2085.0, 0.348, 0.366)
    pd.DataFrame({"n_params": n, "tokens": d, "loss": loss}).to_parquet(tmp_path / "p.parquet")
    done = dcsl_fit(str(tmp_path / "p.parquet"), "--law", "chinchilla", "--n", "params", "--d",
                    "tokens", "--y", "loss", "--n-boot", "20", "--compute", "5.76e23")
    assert done.returncode == 0, done.stderr
    assert "optimum        at C = 5.76e+23 FLOPs: N = " in done.stdout
