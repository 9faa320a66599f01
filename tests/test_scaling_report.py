"""The report: figures and markdown/HTML pages from a small synthetic study."""

from __future__ import annotations

import pytest

from scaling import analyze_study, write_report
from scaling.synthetic import PAPER_BUDGETS, synthetic_study, synthetic_tuning


@pytest.fixture(scope="module")
def small_study():
    """Three budgets: enough for data laws and multipliers, few enough figures to be quick."""
    table, _ = synthetic_study(noise=0.0005, seed=2, budgets=PAPER_BUDGETS[:3])
    return analyze_study(table, tuning=synthetic_tuning(table), n_boot=50, seed=0), table


def test_report_writes_figures_markdown_and_html(tmp_path, small_study) -> None:
    analysis, _ = small_study
    path = write_report(analysis, tmp_path / "report", source="results.csv")
    out = tmp_path / "report"
    assert path == out / "report.md"
    names = {p.stem for p in (out / "figures").glob("*.png")}
    expected = {"loss_vs_params_210M", "loss_vs_members_210M", "joint_scaling", "data_scaling",
                "distillation", "downstream"}
    assert expected <= names
    for name in names:
        png, pdf = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf"
        assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000

    markdown = path.read_text()
    assert "## Asymptotes per data budget" in markdown
    assert "| budget D | standard best | regularized E [95% CI] | double limit E [95% CI] |" \
        in markdown
    assert "## Effective-data multipliers" in markdown
    assert "## Tuned hyperparameters" in markdown and "| NO |" in markdown  # one uncertified
    assert "](figures/data_scaling.png)" in markdown
    assert "## Warnings" in markdown

    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == len(names)
    assert "<th>regularized E [95% CI]</th>" in page


def test_report_of_a_standard_only_table_has_no_missing_pieces(tmp_path) -> None:
    table, _ = synthetic_study(noise=0.0, budgets=PAPER_BUDGETS[:2], with_eval=False,
                               with_distill=False)
    analysis = analyze_study(table[table["recipe"] == "standard"], n_boot=0)
    path = write_report(analysis, tmp_path, figures=True)
    markdown = path.read_text()
    assert "## Asymptotes per data budget" in markdown
    assert "Effective-data multipliers" not in markdown
    assert "n/a" in markdown  # regularized and double-limit columns exist but are empty
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == {
        "loss_vs_params_210M", "loss_vs_params_419M", "data_scaling"}


def test_report_without_figures_is_fast_and_complete(tmp_path, small_study) -> None:
    analysis, _ = small_study
    path = write_report(analysis, tmp_path, figures=False)
    assert "## All fitted laws" in path.read_text()
    assert not (tmp_path / "figures").exists()
