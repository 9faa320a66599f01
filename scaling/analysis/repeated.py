"""Repeated data in the field's terms: each recipe's data-constrained law and decay constant.

The reference study's claim is that the regularized recipe keeps getting value from repeated
data where the standard recipe stops. Muennighoff et al.'s law states it with one number per
recipe: R_D*, the repetitions after which one more epoch is worth 1/e of fresh data. Here
each recipe's succeeded training runs become points (N, D = tokens seen, U = unique tokens,
the best loss over the other hyperparameters), the law is fitted where they can identify
it, and the two recipes' decay constants are compared with their intervals.

A run that repeated its data more and ended worse than the same model with fewer epochs
counts at the better loss (the envelope over epochs): the law describes what repetition is
worth, which is never less than stopping earlier. Where a recipe's runs cannot identify the
law (one epoch count, one budget, too few sizes), the analysis fits nothing and says which
axes a study must vary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling.analysis.types import Settings
from scaling.fit.bootstrap import Estimate, derive_seed
from scaling.fit.joint import JointLawFit, fit_data_constrained_law
from scaling.fit.power_law import FitInputError
from scaling.table.points import best_loss_points

RECIPES = ("standard", "regularized")
MIN_SIZES = 3
MIN_BUDGETS = 2
MIN_EPOCH_COUNTS = 2
N_PARAMS = 7


@dataclass(frozen=True, eq=False)
class RepeatedData:
    """One recipe's points and data-constrained law (None where it was not fitted)."""

    recipe: str
    points: pd.DataFrame = field(repr=False)
    """Columns n, d, u, y, epochs, size: the envelope points the law was fitted to."""
    fit: JointLawFit | None
    missing: list[str] = field(default_factory=list)
    """What the study would have to vary for the law to be identified (empty: nothing)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def decay(self) -> Estimate | None:
        """R_D* with its interval, when the fit identified it."""
        if self.fit is None or not self.fit.identified.get("R_D", False):
            return None
        low, high = self.fit.intervals.get("R_D", (np.nan, np.nan))
        samples = None if self.fit.samples is None else self.fit.sample("R_D")
        return Estimate(float(self.fit.params["R_D"]), low, high, samples)


def needed_axes(points: pd.DataFrame) -> list[str]:
    """The axes a recipe's runs leave too narrow for the data-constrained law, as fixes."""
    out = []
    sizes = points["n"].nunique()
    if sizes < MIN_SIZES:
        out.append(f"train >= {MIN_SIZES} sizes (has {sizes})")
    budgets = points["u"].nunique()
    if budgets < MIN_BUDGETS:
        out.append(f"repeat the recipe at >= {MIN_BUDGETS} unique-token budgets (has "
                   f"{budgets})")
    epochs = np.unique(np.round(points["epochs"].to_numpy(float), 9))
    repeated = epochs[epochs > 1]
    if epochs.size < MIN_EPOCH_COUNTS or repeated.size < 1:
        shown = ", ".join(f"{e:g}" for e in epochs) or "none"
        out.append(f"vary the epochs, with some runs repeating the data (runs at {shown} "
                   "epochs only)")
    if len(points) <= N_PARAMS + 2:
        out.append(f"more runs than the law's {N_PARAMS} parameters (has {len(points)})")
    return out


def fit_repeated_data(done: pd.DataFrame, settings: Settings) -> dict[str, RepeatedData]:
    """The data-constrained law of each recipe role that ran, fitted where identifiable."""
    out = {}
    train = done[(done["kind"] == "train") & done["role"].isin(RECIPES)]
    for recipe in RECIPES:
        rows = train[train["role"] == recipe]
        if rows.empty:
            continue
        points = best_loss_points(rows, settings.x_column)
        missing = needed_axes(points)
        fit, warnings = None, []
        if not missing:
            try:
                fit = fit_data_constrained_law(
                    points["n"], points["d"], points["u"], points["y"], method=settings.method,
                    n_boot=settings.n_boot, seed=derive_seed(settings.seed, f"repeated:{recipe}"),
                    level=settings.level, bootstrap=settings.bootstrap, noise=settings.noise)
                warnings = list(fit.warnings)
            except FitInputError as exc:
                warnings.append(f"not fitted: {exc}")
        out[recipe] = RepeatedData(recipe, points, fit, missing, warnings)
    return out


def decay_comparison(repeated: dict[str, RepeatedData]) -> str:
    """One sentence: does the regularized recipe's repeated data decay more slowly?"""
    std, reg = repeated.get("standard"), repeated.get("regularized")
    if std is None or reg is None:
        return ("The decay constants cannot be compared: the study has no "
                f"{'standard' if std is None else 'regularized'} training runs.")
    missing = [(r.recipe, r) for r in (std, reg) if r.decay is None]
    if missing:
        parts = []
        for recipe, r in missing:
            why = ("; ".join(r.missing) if r.missing else
                   "its fit does not identify R_D (see the warnings)")
            parts.append(f"the {recipe} recipe's R_D* is not identified ({why})")
        return "The decay constants cannot be compared: " + " and ".join(parts) + "."
    a, b = reg.decay, std.decay
    slower = a.value > b.value
    separated = a.has_interval and b.has_interval and (a.low > b.high or b.low > a.high)
    verdict = "more slowly" if slower else "faster"
    intervals = ("and their intervals separate them" if separated else
                 "but their intervals overlap, so the difference is not established"
                 if a.has_interval and b.has_interval else "(no intervals: no bootstrap)")
    return (f"Repeated data loses its value {verdict} under the regularized recipe (R_D* = "
            f"{a.format(3)} epochs) than under the standard one ({b.format(3)}), {intervals}.")


def seed_noise(done: pd.DataFrame) -> float | None:
    """The study's seed-to-seed noise in nats: the pooled standard deviation of the loss over
    runs that differ only in their seeds (ensemble members of one size and budget)."""
    members = done[(done["kind"] == "train") & (done["role"] == "member")]
    if members.empty:
        return None
    keys = [c for c in ("budget_tokens", "size", "epochs", "lr", "weight_decay")
            if c in members.columns]
    groups = members.groupby(keys, dropna=False)["val_loss"]
    spread = groups.var(ddof=1)
    dof = groups.count() - 1
    usable = (dof > 0) & np.isfinite(spread)
    if not usable.any():
        return None
    pooled = float(np.sqrt(np.sum(spread[usable] * dof[usable]) / np.sum(dof[usable])))
    return pooled if pooled > 0 else None
