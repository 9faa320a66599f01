"""Data scaling laws and effective-data multipliers.

Each recipe has one value per data budget D: the standard recipe its best actual run, the
regularized recipe its asymptote over parameters, the joint recipe its double limit, a
distillation recipe its best student. A data law fits those values over D.

The effective-data multiplier inverts the standard recipe's data law,
D_eff(L) = (A / (L - E))^(1/alpha), and compares a recipe with the standard recipe at the
same budget: multiplier = D_eff(L_recipe) / D_eff(L_standard). It says how many times more
data the standard recipe would need to reach the recipe's loss. A loss at or below the
standard law's E cannot be reached with any amount of data: the multiplier is +inf
("unbounded"), which is a result, not an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.analysis.types import BestRun, Curve, Multiplier, Settings, budget_label, fit_curve
from scaling.fit.bootstrap import Estimate, format_number
from scaling.units import format_count

DATA_LAW_RECIPES = ("standard", "regularized", "joint")


def effective_data(loss: np.ndarray | float, A: np.ndarray | float, alpha: np.ndarray | float,
                   E: np.ndarray | float) -> np.ndarray:
    """D_eff(L) = (A / (L - E))^(1/alpha), +inf where L <= E, NaN where a parameter is NaN."""
    loss, A, alpha, E = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                              for v in (loss, A, alpha, E)))
    gap = loss - E
    out = np.full(gap.shape, np.inf)
    reachable = gap > 0
    with np.errstate(over="ignore"):
        out[reachable] = (A[reachable] / gap[reachable]) ** (1.0 / alpha[reachable])
    out[np.isnan(gap) | np.isnan(A) | np.isnan(alpha)] = np.nan
    return out


def effective_data_multiplier(loss: np.ndarray | float, standard_loss: float,
                              A: np.ndarray | float, alpha: np.ndarray | float,
                              E: np.ndarray | float) -> np.ndarray:
    """D_eff(loss) / D_eff(standard_loss) under the standard law (A, alpha, E).

    +inf when `loss` is at or below E; NaN when the standard loss itself is (the law then
    cannot say how much data the standard recipe used, so there is nothing to compare with).
    """
    target = effective_data(loss, A, alpha, E)
    reference = effective_data(standard_loss, A, alpha, E)
    with np.errstate(invalid="ignore"):
        ratio = np.asarray(target / reference, dtype=float)
    return np.where(np.isfinite(reference), ratio, np.nan)


def recipe_values(
    best_standard: dict[int, BestRun], regularized: dict[int, Curve], joint: dict[int, Curve],
    distill: pd.DataFrame | None = None,
) -> dict[str, dict[int, Estimate]]:
    """Each recipe's value per budget, with bootstrap samples where it has them."""
    values: dict[str, dict[int, Estimate]] = {}
    if best_standard:
        values["standard"] = {b: Estimate(run.loss) for b, run in best_standard.items()}
    for recipe, curves in (("regularized", regularized), ("joint", joint)):
        per_budget = {b: c.asymptote for b, c in curves.items() if c.asymptote is not None}
        if per_budget:
            values[recipe] = per_budget
    if distill is not None and not distill.empty:
        best = distill.groupby(["recipe", "budget_tokens"])["student_loss"].min()
        for (recipe, budget), loss in best.items():
            values.setdefault(str(recipe), {})[int(budget)] = Estimate(float(loss))
    return values


def fit_data_laws(
    best_standard: dict[int, BestRun], regularized: dict[int, Curve], joint: dict[int, Curve],
    settings: Settings, warnings: list[str],
) -> dict[str, Curve]:
    """Fit each recipe's per-budget value over D (propagating upstream bootstrap samples)."""
    values = recipe_values(best_standard, regularized, joint)
    laws = {}
    for recipe in DATA_LAW_RECIPES:
        per_budget = values.get(recipe)
        if not per_budget:
            continue
        budgets = sorted(per_budget)
        samples = [per_budget[b].samples for b in budgets]
        y_samples, extra = None, []
        if settings.n_boot > 0 and recipe != "standard":
            if all(s is not None for s in samples):
                y_samples = np.column_stack(samples)
            else:
                extra.append("some per-budget values have no interval, so this law's interval "
                             "covers the resampling of budgets only")
        curve = fit_curve(
            f"data law: {recipe}", recipe, "D", np.asarray(budgets, dtype=float),
            np.asarray([per_budget[b].value for b in budgets]),
            tuple(format_count(b) for b in budgets), settings, y_samples=y_samples,
            what="budgets")
        curve.warnings.extend(extra)
        laws[recipe] = curve
    return laws


def multipliers(
    standard_law: Curve | None, best_standard: dict[int, BestRun],
    values: dict[str, dict[int, Estimate]], settings: Settings, warnings: list[str],
) -> list[Multiplier]:
    """Effective-data multipliers of every non-standard recipe at every budget it shares with
    the standard recipe, with intervals from the standard law's and the recipe's bootstrap."""
    others = {r: v for r, v in values.items() if r != "standard"}
    if not others:
        return []
    if standard_law is None or standard_law.fit is None:
        warnings.append("multipliers: need a fitted standard data law (standard runs at >= 3 "
                        "budgets), none computed")
        return []
    law = standard_law.fit
    if not law.identifiable and not law.floorless:
        warnings.append("multipliers: the standard data law is not identified (see its warnings), "
                        "so none is computed")
        return []
    if law.floorless:
        warnings.append("multipliers: the standard data law shows no floor over these budgets (E -> "
                        "0), so they invert a pure power law; a floor would make them larger")
    out = []
    for recipe, per_budget in others.items():
        for budget in sorted(per_budget):
            if budget not in best_standard:
                continue
            loss = per_budget[budget]
            standard_loss = best_standard[budget].loss
            point = float(effective_data_multiplier(loss.value, standard_loss, law.A, law.alpha,
                                                    law.E)[()])
            samples = None
            if law.samples is not None:
                recipe_samples = loss.samples if loss.samples is not None else loss.value
                samples = effective_data_multiplier(recipe_samples, standard_loss,
                                                    *law.samples.T)
            where = f"{recipe} at {budget_label(budget)}"
            if np.isinf(point):
                warnings.append(f"multiplier of {where}: loss {format_number(loss.value, 4)} is "
                                f"at or below the standard law's E = {format_number(law.E, 4)}, "
                                "so it is unbounded")
            elif np.isnan(point):
                warnings.append(f"multiplier of {where}: the standard loss is at or below its own "
                                "law's asymptote, so no multiplier is defined")
            out.append(Multiplier(recipe, budget, loss, standard_loss,
                                  Estimate.from_samples(point, samples, settings.level)))
    return out
