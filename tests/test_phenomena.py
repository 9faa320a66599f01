"""The report's "What this study shows" checks: read from fits and intervals, at the main budget."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.phenomena import check_phenomena
from scaling.analysis.study import analyze_study, infer_main_budget
from scaling.analysis.types import Multiplier
from scaling.fit.bootstrap import Estimate
from scaling.synthetic import synthetic_study
from scaling.table.load import derive_roles


@pytest.fixture(scope="module")
def paper_like():
    table, _ = synthetic_study(seed=3, noise=0.001)
    return analyze_study(table, n_boot=100, bootstrap="residual")


def test_a_study_shaped_like_the_paper_shows_all_six(paper_like):
    checks = check_phenomena(paper_like)
    assert [c.shown for c in checks[:6]] == [True] * 6, [c.sentence() for c in checks]


def test_students_are_checked_against_the_standard_recipe(paper_like):
    student = check_phenomena(paper_like)[6]
    assert student.name.startswith("distilled students")
    worse = paper_like.distill.assign(student_loss=paper_like.distill["student_loss"] + 1.0)
    verdict = check_phenomena(dataclasses.replace(paper_like, distill=worse))[6]
    assert verdict.shown is False and "NOT shown" in verdict.sentence()


def _with_multiplier(analysis, low: float, value: float, high: float):
    samples = np.array([low, value, high])
    m = Multiplier("regularized", 209_715_200, Estimate(3.0), 3.1,
                   Estimate(value, low, high, samples))
    return dataclasses.replace(analysis, multipliers=[m])


@pytest.mark.parametrize("low,value,high,shown", [
    (1.2, 1.8, 3.0, True),
    (0.8, 1.8, 3.0, None),   # point above 1, interval reaching below: undecided
    (0.5, 0.7, 0.9, False),
    (1.5, np.inf, np.inf, True),
])
def test_multiplier_is_shown_only_when_its_whole_interval_is_above_one(paper_like, low, value, high,
                                                                        shown):
    check = check_phenomena(_with_multiplier(paper_like, low, value, high))[5]
    assert check.shown is shown, check.sentence()


def test_main_budget_is_where_the_full_search_ran():
    rows = []
    for budget in (16_000, 32_000, 64_000, 128_000):  # standard repeats everywhere
        rows += [("standard", "a", budget), ("standard", "b", budget)]
    for size in "abcd":  # the regularized search and ensembles at 128k only
        rows += [("regularized", size, 128_000), ("ensemble-member", size, 128_000)]
    rows += [("regularized", "a", 16_000)]
    done = pd.DataFrame(rows, columns=["recipe", "size", "budget_tokens"]).assign(kind="train")
    done["role"] = derive_roles(done)
    assert infer_main_budget(done) == 128_000
    assert infer_main_budget(done[done.recipe == "standard"]) == 16_000  # ties: smallest


def test_an_explicit_main_budget_is_used(paper_like):
    table, _ = synthetic_study(seed=3, noise=0.001, with_eval=False)
    largest = int(table["budget_tokens"].max())
    analysis = analyze_study(table, n_boot=0, main_budget=largest)
    assert analysis.main_budget == largest
    assert f"{largest:,}" not in " ".join(analysis.warnings)
