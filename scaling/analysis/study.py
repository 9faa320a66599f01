"""Study-level analysis: the laws, limits and multipliers of a data-constrained study.

From a results table (see scaling.table.load) it derives, per data budget D:

- standard recipe: the per-size best run (the "loss vs parameters" curve, fitted over
  parameters where it has >= 3 sizes) and the best run over all sizes, which is the standard
  recipe's value at D;
- regularized recipe: the tuned loss per size, fitted over parameters; its E is the
  regularized asymptote at D;
- ensembles: for each size, the loss over members K, fitted over K; its E is the
  infinite-ensemble loss of that size;
- joint scaling ("double limit"): the K-asymptotes fitted over parameters; its E is the loss
  of an infinite ensemble of infinitely large models.

and across budgets the data scaling laws and effective-data multipliers (scaling.analysis.datalaws).

Bootstrap replicates are aligned by index across the whole analysis, so an interval on a
later stage (joint E, a data law, a multiplier) propagates the resampling of every stage
before it. Anything that cannot be computed becomes a warning, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.analysis.compute import compute_table
from scaling.analysis.datalaws import fit_data_laws, multipliers, recipe_values
from scaling.analysis.evals import distill_table, downstream_table
from scaling.analysis.learning import LearningCurve, learning_curves
from scaling.analysis.repeated import RepeatedData, fit_repeated_data, seed_noise
from scaling.analysis.types import BestRun, Curve, Multiplier, Settings, budget_label, fit_curve
from scaling.fit.bootstrap import DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate
from scaling.fit.power_law import BOOTSTRAPS, METHODS
from scaling.fit.solver import single_threaded_blas
from scaling.table.contract import RULES
from scaling.table.load import (
    load_curves,
    load_results,
    resolve_results_path,
    validate_results,
    validate_tuning,
)
from scaling.units import Unit, choose_unit


@dataclass(frozen=True, eq=False)
class StudyAnalysis:
    """Everything `analyze_study` derived; frozen so a report always matches its numbers."""

    settings: Settings
    budgets: tuple[int, ...]
    main_budget: int | None
    """The budget where the study's full search ran: the phenomena are checked there."""
    n_unit: Unit
    sizes: dict[str, float]
    standard_curves: dict[int, Curve]
    best_standard: dict[int, BestRun]
    regularized: dict[int, Curve]
    ensembles: dict[tuple[int, str], Curve]
    joint: dict[int, Curve]
    data_laws: dict[str, Curve]
    multipliers: list[Multiplier]
    repeated: dict[str, RepeatedData]
    """Each recipe role's data-constrained law (repeated data's decay), where identifiable."""
    compute: pd.DataFrame
    """Every run's loss against its training FLOPs, with the best-loss frontier marked."""
    learning_curves: tuple[LearningCurve, ...]
    """Validation loss over epochs per recipe and size at the main budget (from curves)."""
    distill: pd.DataFrame
    ensemble_rules: pd.DataFrame
    """Every succeeded ensemble-loss row, under every rule measured (soups included)."""
    downstream: pd.DataFrame
    tuning: pd.DataFrame | None
    n_rows_used: int
    skipped: dict[str, int]
    warnings: list[str]

    def recipe_values(self) -> dict[str, dict[int, Estimate]]:
        """Each recipe's value per budget: what its data law is fitted on."""
        return recipe_values(self.best_standard, self.regularized, self.joint, self.distill)

    def all_warnings(self) -> list[str]:
        """Study-level warnings, then every curve's, prefixed with the curve's name."""
        out = list(self.warnings)
        for curve in self.curves():
            out += [f"{curve.name}: {w}" for w in curve.warnings]
        for recipe, law in self.repeated.items():
            out += [f"repeated data ({recipe}): {w}" for w in law.warnings]
        return out

    def curves(self) -> list[Curve]:
        """Every fitted-or-attempted curve, in reading order (standard size laws that were
        not attempted, for want of 3 sizes, are left out)."""
        standard = [c for c in self.standard_curves.values() if c.fit is not None or c.warnings]
        return [*standard, *self.regularized.values(), *self.ensembles.values(),
                *self.joint.values(), *self.data_laws.values()]


def analyze_study(
    table: pd.DataFrame | str | Path,
    *,
    tuning: pd.DataFrame | None = None,
    method: str = "huber-log",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    x_column: str = "n_params",
    rule: str = "logit-mean",
    bootstrap: str = "pairs",
    main_budget: int | None = None,
    noise: float | None = None,
    curves: pd.DataFrame | None = None,
) -> StudyAnalysis:
    """Analyse a results table (DataFrame, or path to a results file or folder).

    Uses succeeded rows only. n_boot = 0 skips the bootstrap (no intervals); `bootstrap` is
    "pairs" or "residual" (see fit_power_law). `rule` selects which ensemble rows to use
    ("logit-mean", the authors' rule, "prob-mean" or "uniform-soup"). Raises ValueError for bad settings and
    scaling.table.TableError for a table that breaks the contract; everything else that
    cannot be computed is reported in the result's warnings. `main_budget` is where the
    study's full search ran (a study file knows it); by default the budget with the most sizes
    tuned beyond the standard recipe (see `infer_main_budget`). `noise` is the seed-to-seed
    noise of a loss (nats) that the lack-of-fit checks use; by default it is measured from
    the study's ensemble members (runs that differ only in their seeds). `curves` holds the
    runs' training curves (collect's curves.parquet; read beside a results file by default).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if bootstrap not in BOOTSTRAPS:
        raise ValueError(f"unknown bootstrap {bootstrap!r}; choose one of {', '.join(BOOTSTRAPS)}")
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if noise is not None and not noise > 0:
        raise ValueError(f"noise must be a positive number of nats, got {noise}")
    settings = Settings(method, int(n_boot), int(seed), float(level), x_column, rule, bootstrap,
                        None if noise is None else float(noise))
    with single_threaded_blas():
        return _analyze(table, tuning, settings, main_budget, curves)


def infer_main_budget(done: pd.DataFrame) -> int | None:
    """The budget with the most sizes trained by non-standard recipes or ensembled (the full
    search; data-scaling repeats cover fewer sizes), then the most such rows; ties go to the
    smallest budget. Falls back to every train row when only the standard recipe ran."""
    rows = done[done["kind"].isin(["train", "ensemble"])]
    if rows.empty:
        return None
    tuned = rows[rows["role"] != "standard"]
    rows = tuned if not tuned.empty else rows
    stats = rows.groupby("budget_tokens").agg(sizes=("size", "nunique"), rows=("size", "size"))
    stats = stats.reset_index().sort_values(["sizes", "rows", "budget_tokens"],
                                            ascending=[False, False, True])
    return int(stats.iloc[0]["budget_tokens"])


def _analyze(table: pd.DataFrame | str | Path, tuning: pd.DataFrame | None,
             settings: Settings, main_budget: int | None,
             curves: pd.DataFrame | None) -> StudyAnalysis:
    x_column = settings.x_column
    if isinstance(table, (str, Path)):
        if curves is None:
            curves = load_curves(resolve_results_path(table).parent)
        table = load_results(table, x_column=x_column)
    else:
        table = validate_results(table, x_column=x_column)
    if tuning is not None:
        tuning = validate_tuning(tuning)
    warnings: list[str] = []
    done, skipped = _succeeded_rows(table, warnings)
    if settings.noise is None:
        settings = replace(settings, noise=seed_noise(done))
    fitted = done[done["kind"].isin(["train", "ensemble"])]
    budgets = tuple(sorted(int(b) for b in fitted["budget_tokens"].unique()))
    if main_budget is None:
        main_budget = infer_main_budget(done)
    elif main_budget not in budgets:
        warnings.append(f"main budget {main_budget:,} has no succeeded runs; "
                        f"budgets with runs: {', '.join(f'{b:,}' for b in budgets) or 'none'}")
    n_unit = choose_unit(float(fitted[x_column].max()) if len(fitted) else 1.0)
    sizes = _size_order(done, x_column)

    standard_curves, best_standard = _standard(done, settings, n_unit, budgets, warnings)
    regularized = {
        budget: _size_curve(done, "regularized", budget, settings, n_unit)
        for budget in budgets if _has(done, "train", "regularized", budget)
    }
    ensembles = _ensembles(done, settings, budgets, warnings)
    joint = {budget: _joint(budget, ensembles, sizes, settings, n_unit) for budget in budgets
             if any(b == budget for b, _ in ensembles)}
    distill = distill_table(done, warnings)
    repeated = fit_repeated_data(done, settings)
    laws = fit_data_laws(best_standard, regularized, joint, settings, warnings)
    mults = multipliers(laws.get("standard"), best_standard,
                        recipe_values(best_standard, regularized, joint, distill), settings,
                        warnings)
    if tuning is not None:
        uncertified = int((~tuning["certified"]).sum())
        if uncertified:
            warnings.append(f"tuning: {uncertified} of {len(tuning)} tuned points are not "
                            "certified (a lattice neighbour is missing or better)")
    return StudyAnalysis(
        settings=settings, budgets=budgets, main_budget=main_budget, n_unit=n_unit, sizes=sizes,
        standard_curves=standard_curves,
        best_standard=best_standard, regularized=regularized, ensembles=ensembles, joint=joint,
        data_laws=laws, multipliers=mults, distill=distill, repeated=repeated,
        compute=compute_table(done, settings.rule),
        learning_curves=learning_curves(done, curves, main_budget, settings.x_column),
        ensemble_rules=done[done["kind"] == "ensemble"][["budget_tokens", "size", "n_params", "K", "rule",
                                                          "val_loss"]].reset_index(drop=True),
        downstream=downstream_table(done), tuning=tuning, n_rows_used=len(done),
        skipped=skipped, warnings=warnings,
    )


def _succeeded_rows(table: pd.DataFrame, warnings: list[str]) -> tuple[pd.DataFrame, dict]:
    others = table[table["status"] != "succeeded"]
    skipped = {str(k): int(v) for k, v in others["status"].value_counts().sort_index().items()}
    if skipped:
        detail = ", ".join(f"{n} {status}" for status, n in skipped.items())
        warnings.append(f"skipped {len(others)} rows that have not succeeded ({detail})")
    done = table[table["status"] == "succeeded"]
    no_loss = done["kind"].isin(["train", "ensemble", "distill"]) & ~np.isfinite(done["val_loss"])
    if no_loss.any():
        warnings.append(f"skipped {int(no_loss.sum())} succeeded rows without a finite val_loss")
        done = done[~no_loss]
    return done, skipped


def _size_order(done: pd.DataFrame, x_column: str) -> dict[str, float]:
    """Size name -> parameter count (the x column), smallest first."""
    known = done[np.isfinite(done[x_column]) & (done["size"] != "")]
    counts = known.groupby("size")[x_column].median().sort_values()
    return {str(size): float(n) for size, n in counts.items()}


def _has(done: pd.DataFrame, kind: str, role: str, budget: int) -> bool:
    return bool(((done["kind"] == kind) & (done["role"] == role)
                 & (done["budget_tokens"] == budget)).any())


def _per_size_best(rows: pd.DataFrame, x_column: str) -> pd.DataFrame:
    """One row per size: its lowest loss (the tuned point), sorted by parameter count."""
    best = rows.loc[rows.groupby("size")["val_loss"].idxmin()]
    return best.sort_values(x_column)


def _standard(done: pd.DataFrame, settings: Settings, n_unit: Unit, budgets: tuple[int, ...],
              warnings: list[str]) -> tuple[dict[int, Curve], dict[int, BestRun]]:
    curves, best = {}, {}
    for budget in budgets:
        rows = done[(done["kind"] == "train") & (done["role"] == "standard")
                    & (done["budget_tokens"] == budget)]
        if rows.empty:
            continue
        per_size = _per_size_best(rows, settings.x_column)
        name = f"standard ({budget_label(budget)})"
        x = per_size[settings.x_column].to_numpy(float) / n_unit.scale
        y, labels = per_size["val_loss"].to_numpy(float), tuple(per_size["size"])
        # The baseline's size law is fitted where it can be; with fewer sizes (a data-scaling
        # repeat) the points alone are kept, without a "too few sizes" warning: nothing asked
        # for a standard size law there. Each curve's bootstrap seed derives from its name, so
        # fitting this one changes no other number of the analysis.
        curves[budget] = (fit_curve(name, "standard", "N", x, y, labels, settings,
                                    budget=budget, what="sizes") if len(x) >= 3 else
                          Curve(name=name, recipe="standard", x_symbol="N", x=x, y=y,
                                point_labels=labels, budget=budget))
        top = rows.loc[rows["val_loss"].idxmin()]
        best[budget] = BestRun(float(top["val_loss"]), str(top["size"]), str(top["run_id"]))
    if not best:
        warnings.append("standard: no succeeded standard runs, so no data laws or multipliers")
    return curves, best


def _size_curve(done: pd.DataFrame, role: str, budget: int, settings: Settings,
                n_unit: Unit) -> Curve:
    rows = done[(done["kind"] == "train") & (done["role"] == role)
                & (done["budget_tokens"] == budget)]
    per_size = _per_size_best(rows, settings.x_column)
    return fit_curve(f"{role} ({budget_label(budget)})", role, "N",
                     per_size[settings.x_column].to_numpy(float) / n_unit.scale,
                     per_size["val_loss"].to_numpy(float), tuple(per_size["size"]), settings,
                     budget=budget, what="sizes")


def _ensembles(done: pd.DataFrame, settings: Settings, budgets: tuple[int, ...],
               warnings: list[str]) -> dict[tuple[int, str], Curve]:
    all_ensembles = done[done["kind"] == "ensemble"]
    rows = all_ensembles[all_ensembles["rule"] == settings.rule]
    if rows.empty and not all_ensembles.empty:
        warnings.append(f"ensembles: no rows with rule {settings.rule!r}; "
                        f"rules present: {', '.join(sorted(set(all_ensembles['rule'])))}")
    members = done[(done["kind"] == "train") & (done["role"] == "member")]
    curves = {}
    for budget in budgets:
        at_budget = rows[rows["budget_tokens"] == budget]
        for size in at_budget.sort_values(settings.x_column)["size"].unique():
            of_size = at_budget[at_budget["size"] == size]
            by_k = of_size.groupby("K")["val_loss"].min()
            if 1 not in by_k.index:
                # A one-member "ensemble" is any single member; their mean is the least noisy
                # estimate of it when the table has no explicit K=1 ensemble row.
                singles = members[(members["budget_tokens"] == budget) & (members["size"] == size)]
                if not singles.empty:
                    by_k.loc[1] = float(singles["val_loss"].mean())
            by_k = by_k.sort_index()
            name = f"ensemble {size} ({budget_label(budget)})"
            curves[(budget, str(size))] = fit_curve(
                name, "ensemble", "K", by_k.index.to_numpy(float), by_k.to_numpy(float),
                tuple(str(int(k)) for k in by_k.index), settings, budget=budget,
                size=str(size), what="member counts")
    return curves


def _joint(budget: int, ensembles: dict[tuple[int, str], Curve], sizes: dict[str, float],
           settings: Settings, n_unit: Unit) -> Curve:
    names, xs, floors, samples = [], [], [], []
    for (b, size), curve in ensembles.items():
        if b != budget or curve.fit is None:
            continue
        names.append(size)
        xs.append(sizes[size] / n_unit.scale)
        floors.append(curve.fit.E)
        samples.append(None if curve.fit.samples is None else curve.fit.samples[:, 2])
    order = np.argsort(xs)
    name = f"joint ({budget_label(budget)})"
    y_samples = None
    extra = []
    if settings.n_boot > 0 and names:
        if all(s is not None for s in samples):
            y_samples = np.column_stack([samples[i] for i in order])
        else:
            extra.append("some K-asymptotes have no bootstrap (too few member counts): the "
                         "interval covers the resampling of sizes only")
    curve = fit_curve(name, "joint", "N", np.asarray(xs)[order], np.asarray(floors)[order],
                      tuple(names[i] for i in order), settings, budget=budget,
                      y_samples=y_samples, what="sizes with a K-asymptote")
    curve.warnings.extend(extra)
    return curve
