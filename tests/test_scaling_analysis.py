"""Study-level analysis on synthetic studies drawn from known laws, and the table contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scaling import (
    TableError,
    analyze_study,
    effective_data,
    effective_data_multiplier,
    load_results,
    validate_results,
)
from scaling.synthetic import PAPER_BUDGETS, SyntheticTruth, synthetic_study
from scaling.table.load import derive_roles
from scaling.units import format_count

BUDGETS = PAPER_BUDGETS


@pytest.fixture(scope="module")
def exact_study():
    table, truth = synthetic_study(noise=0.0, seed=0)
    return analyze_study(table, n_boot=0), truth


@pytest.fixture(scope="module")
def noisy_study():
    table, truth = synthetic_study(noise=0.0005, seed=1)
    return analyze_study(table, n_boot=200, seed=0, bootstrap="residual"), truth


def test_regularized_asymptotes_recover_the_truth(exact_study) -> None:
    analysis, truth = exact_study
    assert set(analysis.regularized) == set(BUDGETS)
    for budget, curve in analysis.regularized.items():
        assert curve.fit is not None and curve.fit.converged
        assert curve.fit.E == pytest.approx(truth.regularized_floor(budget), rel=1e-4)
        assert curve.fit.alpha == pytest.approx(truth.regularized_n[1], rel=1e-3)


def test_double_limit_recovers_the_known_joint_asymptote(exact_study) -> None:
    analysis, truth = exact_study
    for budget, curve in analysis.joint.items():
        assert curve.point_labels == ("150m", "300m", "600m", "1.4b")
        assert curve.fit.E == pytest.approx(truth.joint_floor(budget), rel=1e-4)
    for (budget, size), curve in analysis.ensembles.items():
        n_billion = analysis.sizes[size] / 1e9
        assert curve.fit.E == pytest.approx(truth.k_asymptote(n_billion, budget), rel=1e-4)


def test_double_limit_interval_propagates_both_stages(noisy_study) -> None:
    analysis, truth = noisy_study
    for budget, curve in analysis.joint.items():
        estimate = curve.asymptote
        assert estimate.has_interval and estimate.low <= estimate.value <= estimate.high
        # stage-1 replicates went into stage 2: a replicate is NaN only where one upstream was
        upstream = np.column_stack([analysis.ensembles[(budget, s)].fit.samples[:, 2]
                                    for s in curve.point_labels])
        assert np.all(np.isnan(curve.fit.samples[np.isnan(upstream).any(axis=1), 2]))
        assert estimate.low - 0.02 <= truth.joint_floor(budget) <= estimate.high + 0.02


def test_standard_value_is_the_best_run_over_sizes(exact_study) -> None:
    analysis, truth = exact_study
    for budget, best in analysis.best_standard.items():
        assert best.loss == pytest.approx(float(truth.standard_data_law(budget)))
        assert best.size == "300m"
        curve = analysis.standard_curves[budget]
        assert min(curve.y) == pytest.approx(best.loss)


def test_standard_size_law_is_fitted_where_it_has_three_sizes(exact_study) -> None:
    analysis, _ = exact_study
    for budget, curve in analysis.standard_curves.items():
        assert curve.point_labels == ("150m", "300m", "600m", "1.4b") and len(curve.x) == 4
        assert curve.fit is not None and curve.recipe == "standard" and curve.budget == budget
        assert curve in analysis.curves()
    assert analysis.curves()[0].name == f"standard (D={format_count(BUDGETS[0])})"


def test_a_standard_role_under_another_name_gets_its_size_law() -> None:
    table, _ = synthetic_study(noise=0.0, with_eval=False, with_distill=False)
    table = table.assign(role=derive_roles(table))
    table.loc[table["role"] == "standard", "recipe"] = "baseline-adamw"
    analysis = analyze_study(table, n_boot=0)
    assert all(curve.fit is not None for curve in analysis.standard_curves.values())


def test_fitting_the_standard_size_law_changes_no_other_number() -> None:
    """Two sizes of the standard recipe (the best one kept) give no standard size law; every
    other number, bootstrap replicates included, must be the same as with four sizes."""
    table, _ = synthetic_study(noise=0.0005, seed=3, with_eval=False)
    two_sizes = table[(table["recipe"] != "standard") | table["size"].isin(["150m", "300m"])]
    fitted, unfitted = (analyze_study(t, n_boot=30, seed=1) for t in (table, two_sizes))
    assert all(c.fit is None and not c.warnings for c in unfitted.standard_curves.values())
    assert all(c.fit is not None for c in fitted.standard_curves.values())
    assert fitted.best_standard == unfitted.best_standard
    size_laws = list(fitted.standard_curves.values())
    others = [c for c in fitted.curves() if not any(c is law for law in size_laws)]
    assert [c.name for c in others] == [c.name for c in unfitted.curves()]
    for mine, theirs in zip(others, unfitted.curves(), strict=True):
        if mine.fit is None:
            assert theirs.fit is None
            continue
        assert (mine.fit.A, mine.fit.alpha, mine.fit.E) == (theirs.fit.A, theirs.fit.alpha,
                                                            theirs.fit.E)
        np.testing.assert_array_equal(mine.fit.samples, theirs.fit.samples)
    assert [(m.recipe, m.budget, m.value.value, m.value.low, m.value.high)
            for m in fitted.multipliers] == [(m.recipe, m.budget, m.value.value, m.value.low,
                                              m.value.high) for m in unfitted.multipliers]


def test_data_law_of_the_standard_recipe_is_recovered(exact_study) -> None:
    analysis, truth = exact_study
    law = analysis.data_laws["standard"].fit
    expected = truth.standard_data_law
    assert (law.A, law.alpha, law.E) == pytest.approx((expected.A, expected.alpha, expected.E),
                                                      rel=1e-3)
    assert set(analysis.data_laws) == {"standard", "regularized", "joint"}
    assert analysis.data_laws["regularized"].fit.E == pytest.approx(
        truth.regularized_floor.E, rel=1e-3)


def test_multiplier_of_known_laws_matches_the_closed_form() -> None:
    A, alpha, E = 1887.0, 0.4, 2.864
    standard_loss, recipe_loss = 3.5, 3.2
    d_recipe = (A / (recipe_loss - E)) ** (1 / alpha)
    d_standard = (A / (standard_loss - E)) ** (1 / alpha)
    multiplier = float(effective_data_multiplier(recipe_loss, standard_loss, A, alpha, E))
    assert multiplier == pytest.approx(d_recipe / d_standard, rel=1e-12)
    assert float(effective_data(standard_loss, A, alpha, E)) == pytest.approx(
        ((A / (standard_loss - E)) ** (1 / alpha)), rel=1e-12)


def test_multiplier_at_or_below_the_asymptote_is_unbounded_not_a_crash() -> None:
    values = effective_data_multiplier(np.array([2.864, 2.5, 3.0]), 3.5, 1887.0, 0.4, 2.864)
    assert math.isinf(values[0]) and math.isinf(values[1]) and np.isfinite(values[2])


def test_study_multipliers_match_the_truth(exact_study) -> None:
    analysis, truth = exact_study
    recipes = {m.recipe for m in analysis.multipliers}
    assert {"regularized", "joint", "distill-ensemble", "self-distill"} <= recipes
    for m in analysis.multipliers:
        expected = truth.multiplier(m.loss.value, m.budget)
        if math.isinf(expected):
            assert m.unbounded
        else:
            assert m.value.value == pytest.approx(expected, rel=1e-3)
    # the truth puts the double limit at the largest budget below the standard asymptote
    assert any(m.unbounded for m in analysis.multipliers)
    assert any("unbounded" in w for w in analysis.warnings)


def test_multiplier_intervals_bracket_the_estimate(noisy_study) -> None:
    analysis, _ = noisy_study
    regularized = [m for m in analysis.multipliers if m.recipe == "regularized"]
    assert len(regularized) == len(BUDGETS)
    for m in regularized:
        assert m.value.low <= m.value.value <= m.value.high


def test_distillation_retained_share(exact_study) -> None:
    analysis, truth = exact_study
    ensemble_students = analysis.distill[analysis.distill["recipe"] == "distill-ensemble"]
    np.testing.assert_allclose(ensemble_students["retained"], truth.retained, rtol=1e-9)


def test_downstream_rows_are_summarised(exact_study) -> None:
    analysis, _ = exact_study
    assert set(analysis.downstream["task"]) == {"arc_easy", "piqa", "sciq"}


def test_skipped_rows_are_counted_and_reported(exact_study) -> None:
    analysis, _ = exact_study
    assert analysis.skipped == {"failed": 2}
    assert any("skipped 2 rows" in w for w in analysis.warnings)


# --- graceful degradation ---------------------------------------------------------------------


def _subset(table: pd.DataFrame, **keep) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, values in keep.items():
        mask &= table[column].isin(values)
    return table[mask]


def test_only_standard_runs_gives_what_it_can() -> None:
    table, _ = synthetic_study(noise=0.0)
    analysis = analyze_study(_subset(table, recipe=["standard"]), n_boot=50)
    assert analysis.regularized == {} and analysis.joint == {} and analysis.multipliers == []
    assert analysis.data_laws["standard"].fit is not None
    assert len(analysis.best_standard) == len(BUDGETS)


def test_two_sizes_warn_instead_of_fitting() -> None:
    table, _ = synthetic_study(noise=0.0)
    analysis = analyze_study(_subset(table, size=["150m", "300m"]), n_boot=50)
    warnings = analysis.all_warnings()
    assert "regularized (D=210M): 2 sizes, need >= 3 to fit" in warnings
    assert all(curve.fit is None for curve in analysis.regularized.values())
    assert "regularized" not in analysis.data_laws  # no asymptotes to fit over D


def test_two_budgets_give_no_data_laws_and_no_multipliers() -> None:
    table, _ = synthetic_study(noise=0.0)
    analysis = analyze_study(_subset(table, budget_tokens=list(BUDGETS[:2])), n_boot=0)
    assert analysis.data_laws["standard"].fit is None
    assert analysis.multipliers == []
    assert any("multipliers: need a fitted standard data law" in w for w in analysis.warnings)


@pytest.mark.parametrize("status", ["failed", "running"])
def test_a_table_with_nothing_succeeded_is_not_an_error(status: str) -> None:
    table, _ = synthetic_study(noise=0.0, with_eval=False, with_distill=False)
    analysis = analyze_study(table.assign(status=status), n_boot=10)
    assert analysis.budgets == () and analysis.n_rows_used == 0
    assert analysis.skipped == {status: len(table)}


def test_ensemble_rule_selects_rows() -> None:
    table, _ = synthetic_study(noise=0.0, with_eval=False)
    analysis = analyze_study(table, n_boot=0, rule="prob-mean")
    assert analysis.ensembles == {} and analysis.joint == {}
    assert any("no rows with rule 'prob-mean'" in w for w in analysis.warnings)


def test_least_squares_method_runs_the_whole_study() -> None:
    table, truth = synthetic_study(noise=0.0)
    analysis = analyze_study(table, n_boot=0, method="least-squares")
    for budget, curve in analysis.regularized.items():
        assert curve.fit.E == pytest.approx(truth.regularized_floor(budget), rel=1e-4)


def test_non_embedding_x_column() -> None:
    table, truth = synthetic_study(noise=0.0)
    analysis = analyze_study(table, n_boot=0, x_column="n_params_non_embedding")
    # the synthetic non-embedding count is 0.8 N, which rescales A but not alpha or E
    for budget, curve in analysis.regularized.items():
        assert curve.fit.E == pytest.approx(truth.regularized_floor(budget), rel=1e-4)
    with pytest.raises(TableError, match="n_params_non_embedding"):
        analyze_study(table.drop(columns="n_params_non_embedding"), n_boot=0,
                      x_column="n_params_non_embedding")


def test_bad_settings_raise() -> None:
    table, _ = synthetic_study(noise=0.0)
    with pytest.raises(ValueError, match="unknown method"):
        analyze_study(table, method="magic")
    with pytest.raises(ValueError, match="unknown ensemble rule"):
        analyze_study(table, rule="median")


# --- the table contract -----------------------------------------------------------------------


def test_missing_column_error_names_the_column() -> None:
    table, _ = synthetic_study(noise=0.0)
    with pytest.raises(TableError, match=r"missing column 'budget_tokens'"):
        validate_results(table.drop(columns="budget_tokens"), source="results.csv")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("kind", "bogus", "unknown value"), ("status", "done", "unknown value"),
     ("val_loss", "abc", "not numeric"), ("n_params", -5, "must be positive")],
)
def test_bad_values_are_rejected(column: str, value: object, message: str) -> None:
    table, _ = synthetic_study(noise=0.0)
    table[column] = table[column].astype(object)
    table.loc[0, column] = value
    with pytest.raises(TableError, match=message):
        validate_results(table)


def test_distill_rows_need_their_columns() -> None:
    table, _ = synthetic_study(noise=0.0)
    with pytest.raises(TableError, match="teacher_loss.*distill rows"):
        validate_results(table.drop(columns="teacher_loss"))


def test_load_results_from_folder_parquet_and_csv(tmp_path) -> None:
    table, _ = synthetic_study(noise=0.0)
    table.to_parquet(tmp_path / "results.parquet")
    loaded = load_results(tmp_path)
    assert len(loaded) == len(table)
    table.to_csv(tmp_path / "other.csv", index=False)
    assert len(load_results(tmp_path / "other.csv")) == len(table)
    with pytest.raises(TableError, match="no such file or folder"):
        load_results(tmp_path / "nothing-here")


def test_missing_folder_and_unknown_format(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TableError, match="no results.parquet or results.csv"):
        load_results(tmp_path / "empty")
    (tmp_path / "table.xlsx").write_text("x")
    with pytest.raises(TableError, match="unknown table format"):
        load_results(tmp_path / "table.xlsx")


def test_synthetic_truth_is_self_consistent() -> None:
    truth = SyntheticTruth()
    budget = BUDGETS[0]
    assert truth.multiplier(float(truth.standard_data_law(budget)), budget) == pytest.approx(1.0)
