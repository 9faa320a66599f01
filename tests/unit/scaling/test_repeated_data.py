"""The study analysis in the field's terms: each recipe's decay of repeated data, the study's
seed noise, and the compute-matched view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling import analyze_study, write_report
from scaling.analysis.compute import compute_table
from scaling.analysis.repeated import decay_comparison, seed_noise
from scaling.synthetic import synthetic_repeated_runs, synthetic_study


@pytest.fixture(scope="module")
def repeated_analysis():
    table = synthetic_repeated_runs(seed=0)
    table["train_flops"] = 6.0 * table["n_params"] * table["tokens_seen"]
    return table, analyze_study(table, n_boot=100)


def test_each_recipes_decay_constant_is_recovered_and_compared(repeated_analysis) -> None:
    _, analysis = repeated_analysis
    standard, regularized = analysis.repeated["standard"], analysis.repeated["regularized"]
    assert standard.decay.value == pytest.approx(4.0, rel=0.2)
    assert regularized.decay.value == pytest.approx(30.0, rel=0.3)
    assert standard.decay.low < 4.0 < standard.decay.high
    sentence = decay_comparison(analysis.repeated)
    assert sentence.startswith("Repeated data loses its value more slowly under the regularized")
    assert "their intervals separate them" in sentence
    # the worse learning rate at every point is not what the law is fitted to
    assert len(standard.points) == 4 * 3 * 6


def test_the_report_has_a_repeated_data_section_and_figure(repeated_analysis, tmp_path: Path) -> None:
    _, analysis = repeated_analysis
    markdown = write_report(analysis, tmp_path).read_text()
    assert "## Repeated data" in markdown and "R_D [95% CI]" in markdown
    assert "more slowly under the regularized recipe" in markdown
    assert (tmp_path / "figures" / "repeated_data.png").is_file()
    assert (tmp_path / "figures" / "loss_vs_compute.png").is_file()


def test_a_study_that_cannot_identify_the_law_says_what_to_vary(tmp_path: Path) -> None:
    """One epoch count per recipe (the synthetic paper table trains everything at 8 epochs)."""
    table, _ = synthetic_study(seed=0)
    analysis = analyze_study(table, n_boot=0)
    law = analysis.repeated["regularized"]
    assert law.fit is None
    assert any("vary the epochs" in m for m in law.missing)
    sentence = decay_comparison(analysis.repeated)
    assert sentence.startswith("The decay constants cannot be compared")
    assert "vary the epochs" in sentence
    markdown = write_report(analysis, tmp_path).read_text()
    assert "to identify it, a study would" in markdown
    assert not (tmp_path / "figures" / "repeated_data.png").exists()


def test_seed_noise_is_the_pooled_spread_of_members(repeated_analysis) -> None:
    table, analysis = repeated_analysis
    members = table[table["role"] == "member"]
    by_size = members.groupby("size")["val_loss"].var(ddof=1)
    assert seed_noise(table) == pytest.approx(float(np.sqrt(by_size.mean())), rel=1e-9)
    assert analysis.settings.noise == pytest.approx(seed_noise(table))
    assert seed_noise(table[table["role"] != "member"]) is None


def test_the_compute_frontier_marks_each_new_best_loss() -> None:
    rows = pd.DataFrame({
        "recipe": ["a", "b", "a", "b", "e"], "role": "x", "kind": ["train"] * 4 + ["ensemble"],
        "size": "s", "budget_tokens": 1, "K": 1, "rule": ["", "", "", "", "logit-mean"],
        "train_flops": [1e3, 2e3, 3e3, 4e3, 5e3], "val_loss": [3.0, 3.1, 2.9, 2.95, 2.5]})
    frame = compute_table(rows, "logit-mean")
    assert list(frame["frontier"]) == [True, False, True, False, True]
    assert compute_table(rows, "prob-mean")["kind"].tolist() == ["train"] * 4


def test_learning_curves_show_each_sizes_longest_run_at_its_tuned_point(tmp_path: Path) -> None:
    """Curves are read beside a results file (collect's curves.parquet): the standard recipe's
    turns up with epochs, the regularized one's keeps falling, and the report draws both."""
    table = synthetic_repeated_runs(seed=0, epochs=(1, 4, 16), budgets=(419_430_400,))
    rows = []
    for run in table[table.kind == "train"].itertuples():
        for k in range(1, 9):
            epoch = run.epochs * k / 8
            fall = 0.6 / (1 + epoch)
            turn = 0.01 * epoch**2 if run.role == "standard" else 0.0
            rows.append({"run_id": run.run_id, "step": k * 10, "tokens": k * 1000, "epoch": epoch,
                         "lr": run.lr, "train_loss": run.val_loss - 0.2, "val_loss": run.val_loss + fall + turn,
                         "tokens_per_s": 1e4, "grad_norm": 1.0})
    table.to_parquet(tmp_path / "results.parquet")
    pd.DataFrame(rows).to_parquet(tmp_path / "curves.parquet")
    analysis = analyze_study(tmp_path / "results.parquet", n_boot=0)
    curves = analysis.learning_curves
    assert {c.recipe for c in curves} == {"standard", "regularized"}
    assert all(c.epochs == 16 for c in curves)  # the longest run at the tuned lr and decay
    assert len({(c.recipe, c.size) for c in curves}) == len(curves)
    markdown = write_report(analysis, tmp_path / "report").read_text()
    assert "## Learning curves" in markdown
    assert (tmp_path / "report" / "figures" / "learning_curves.png").is_file()
