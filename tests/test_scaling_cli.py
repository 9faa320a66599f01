"""`dcsl fit` / `dcsl report` through `python -m scaling.cli` and through register()."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scaling import cli
from scaling.synthetic import PAPER_BUDGETS, synthetic_study, synthetic_tuning

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    table, _ = synthetic_study(noise=0.0005, budgets=PAPER_BUDGETS[:3])
    table.to_csv(folder / "results.csv", index=False)
    synthetic_tuning(table).to_csv(folder / "tuning.csv", index=False)
    table.drop(columns="val_loss").to_csv(folder / "broken.csv", index=False)
    return folder


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scaling.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_fit_json_on_a_csv(results_dir: Path) -> None:
    done = run_module("fit", str(results_dir / "results.csv"), "--json", "--n-boot", "30")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["settings"]["n_boot"] == 30
    # three budgets cannot identify the standard data law: no multiplier is derived from it
    assert len(payload["regularized"]) == 3 and not payload["multipliers"]
    assert payload["regularized"][0]["asymptote"]["low"] is not None
    assert len(payload["standard"]) == 3 and payload["standard"][0]["fit"] is not None


def test_fit_missing_column_is_one_line_and_nonzero(results_dir: Path) -> None:
    done = run_module("fit", str(results_dir / "broken.csv"))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcsl fit:") and "'val_loss'" in lines[0]
    assert "--x COLUMN --y COLUMN" in lines[0]  # the way to fit a single law instead
    assert "Traceback" not in done.stderr


def test_fit_prints_tables(results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["fit", str(results_dir), "--n-boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "== Asymptotes ==" in out and "== Fitted laws ==" in out
    assert "standard (D=210M)" in out  # the standard recipe's size law is in the laws table


def test_missing_file_exits_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(tmp_path / "nope.parquet")])
    assert str(exit_info.value.code).startswith("dcsl report:")
    assert "no such file" in str(exit_info.value.code)


def test_report_goes_next_to_the_table_and_includes_tuning(tmp_path: Path) -> None:
    # one budget and no distill/eval rows: few figures, so the test stays quick
    table, _ = synthetic_study(noise=0.0005, budgets=PAPER_BUDGETS[:1], with_eval=False,
                               with_distill=False)
    table.to_parquet(tmp_path / "results.parquet")
    synthetic_tuning(table).to_csv(tmp_path / "tuning.csv", index=False)
    assert cli.main(["report", str(tmp_path), "--n-boot", "20"]) == 0
    report = tmp_path / "report"
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    assert (report / "figures" / "loss_vs_params_210M.pdf").is_file()
    assert "## Tuned hyperparameters" in (report / "report.md").read_text()


def test_register_plugs_into_a_dispatcher(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="dcsl")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "runs", "--report-dir", str(tmp_path), "--n-boot", "5",
                              "--method", "least-squares", "--x-column",
                              "n_params_non_embedding"])
    assert args.func is cli.run_report and args.report_dir == tmp_path and args.n_boot == 5
    args = parser.parse_args(["fit", "results.parquet", "--json", "--bootstrap-seed", "3"])
    assert args.func is cli.run_fit and args.json and args.bootstrap_seed == 3
    assert (args.x, args.y, args.group) == (None, None, None)
    args = parser.parse_args(["fit", "points.csv", "--x", "K", "--y", "loss", "--group",
                              "recipe", "--x-column", "n_params_non_embedding"])
    assert (args.x, args.y, args.group, args.x_column) == ("K", "loss", "recipe",
                                                           "n_params_non_embedding")


def test_scaling_imports_neither_torch_nor_other_dcsl_packages_nor_matplotlib() -> None:
    code = ("import sys, scaling, scaling.cli, scaling.report.page; "
            "bad = [m for m in ('torch', 'matplotlib', 'pretrain', 'sweeps', 'eval', 'distill') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
