"""One rule picks each headline number (scaling.analysis.headlines): the report's opening
lines and `dcsl compare` show the same numbers, at the main budget."""

from __future__ import annotations

import pytest

from scaling import analyze_study
from scaling.analysis.compare import compare
from scaling.analysis.headlines import DATA_LIMIT, MULTIPLIER, headline_estimates
from scaling.fit.bootstrap import format_number
from scaling.report.page import _headlines
from scaling.synthetic import PAPER_BUDGETS, synthetic_study
from scaling.units import format_count


@pytest.fixture(scope="module")
def second_budget_main():
    """Four budgets, so every recipe has a multiplier at each; the main budget is not the last."""
    table, _ = synthetic_study(noise=0.0005, seed=2)
    return analyze_study(table, n_boot=0, seed=0, main_budget=PAPER_BUDGETS[1])


def test_multipliers_are_the_main_budgets_only(second_budget_main) -> None:
    analysis = second_budget_main
    heads = headline_estimates(analysis)
    multipliers = {h.source: h.estimate.value for name, h in heads.items() if name.startswith(MULTIPLIER)}
    assert len({m.budget for m in analysis.multipliers}) > 1
    assert multipliers == {m.recipe: m.value.value for m in analysis.multipliers
                           if m.budget == analysis.main_budget}


def test_the_report_and_compare_show_the_headline_numbers(second_budget_main) -> None:
    analysis = second_budget_main
    heads = headline_estimates(analysis)
    lines = _headlines(analysis)
    main = lines[0]
    assert main.startswith(f"D = {format_count(analysis.main_budget)} tokens (the main budget): ")
    for name in ("standard best", "regularized best", "best ensemble", "best student"):
        assert f"{format_number(heads[name].estimate.value, 4)} ({heads[name].source})" in main, name
    for name in ("regularized asymptote E", "double limit E"):
        assert heads[name].estimate.format(4) in main, name
    for recipe in ("regularized", "joint"):
        assert f"a {heads[MULTIPLIER + recipe].estimate.format(3)} data multiplier" in main
    limits = [name for name in heads if name.startswith(DATA_LIMIT)]
    assert limits and all(any(heads[n].estimate.format(4) in line for line in lines[1:]) for n in limits)
    assert list(compare(analysis, analysis).headline["quantity"]) == list(heads)
