"""What a two-variable law's fit can and cannot say: the diagnostics of ``scaling.fit.joint``.

Each check is a warning, and the checks that show a parameter is not pinned down by the
data mark it in ``identified``: too few distinct N or D values, no repetition (for R_D) or
no excess parameters (for R_N), a parameter at a bound, near-optimal solutions that
disagree, or a bootstrap interval that runs into a bound. Strongly correlated exponents
are reported as a trade-off (the law's predictions may still be good).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scaling.fit.forms import DATA_CONSTRAINED, LawForm, Scales, unique_params

MIN_DISTINCT = 3
MIN_DECADES = 1.0
_NEAR_OPTIMAL = 0.01
# Relative disagreement between near-optimal solutions that leaves a parameter undetermined.
_DISAGREEMENT = {"E": 0.01, "alpha": 0.05, "beta": 0.05, "R_D": 0.25, "R_N": 0.25}
_COLLAPSED = 1e-6
_STRONG_CORRELATION = 0.95
_AT_BOUND = 1e-6
# An amplitude whose interval spans more than this factor is not determined by the data.
_MAX_AMPLITUDE_RATIO = 1e4
# Which parameters each input's spread identifies.
_NEEDS = {"N": ("A", "alpha"), "D": ("B", "beta")}
# The natural parameter each solver parameter carries.
_PARAM_OF = {"a": "A", "b": "B", "alpha": "alpha", "beta": "beta", "e": "E", "r_d": "R_D",
             "r_n": "R_N"}


@dataclass
class Report:
    warnings: list[str] = field(default_factory=list)
    identified: dict[str, bool] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)

    def not_identified(self, names: tuple[str, ...] | list[str], why: str) -> None:
        for name in names:
            self.identified[name] = False
        self.warnings.append(why)


def diagnose(form: LawForm, n: np.ndarray, d: np.ndarray, u: np.ndarray | None, y: np.ndarray,
             params: dict[str, float], fixed: dict[str, float], solutions: list,
             bounds: np.ndarray, free: np.ndarray, samples: np.ndarray | None,
             intervals: dict[str, tuple[float, float]], scales: Scales) -> Report:
    report = Report(identified={name: name not in fixed for name in form.params})
    for name in fixed:
        report.identified[name] = True  # given, not estimated
    n_free = int(free.sum())
    dof = y.size - n_free
    if dof < 3:
        report.warnings.append(f"{y.size} points for {n_free} free parameters leave {dof} "
                               f"residual degree{'s' if dof != 1 else ''} of freedom: bootstrap "
                               "intervals are likely too narrow")
    _spread(report, "N", n, fixed)
    # Tokens seen identify B and beta in L(N, D); in the data-constrained law they do it
    # through D', which also needs the unique tokens.
    _spread(report, "D", d, fixed)
    if form is DATA_CONSTRAINED:
        _repetition(report, n, d, u, params, fixed)
    best = solutions[0]
    if not best.converged:
        report.warnings.append("optimiser did not converge from any start; parameters are the "
                               "best found")
    _bounds_hit(report, form, best.theta, bounds, free, y, params)
    _disagreement(report, form, solutions, scales, fixed)
    if samples is not None:
        _interval_checks(report, form, samples, intervals, bounds, y, fixed)
    # An amplitude means nothing without its exponent.
    for amp, expo in (("A", "alpha"), ("B", "beta")):
        if not report.identified[expo] and report.identified[amp] and amp not in fixed:
            report.identified[amp] = False
    return report


def _spread(report: Report, symbol: str, values: np.ndarray, fixed: dict[str, float]) -> None:
    names = [p for p in _NEEDS[symbol] if p not in fixed]
    if not names:
        return
    distinct = np.unique(np.round(np.log(values), 9)).size
    if distinct < MIN_DISTINCT:
        report.not_identified(names, f"only {distinct} distinct {symbol} value"
                                     f"{'s' if distinct != 1 else ''} (need >= {MIN_DISTINCT}): "
                                     f"{' and '.join(names)} are not identified")
        return
    decades = math.log10(float(values.max() / values.min()))
    if decades < MIN_DECADES:
        report.warnings.append(f"{symbol} spans {decades:.2f} decades (< {MIN_DECADES:g}): its "
                               "exponent and the asymptote trade off")


def _repetition(report: Report, n: np.ndarray, d: np.ndarray, u: np.ndarray,
                params: dict[str, float], fixed: dict[str, float]) -> None:
    epochs = d / u
    if "R_D" not in fixed:
        if float(epochs.max()) <= 1.0 + 1e-9:
            report.not_identified(["R_D"], "no point repeats its data (every D <= U): R_D is not "
                                           "identified; train some runs for several epochs")
        elif np.unique(np.round(np.log(epochs[epochs > 1.0 + 1e-9]), 9)).size < 2:
            report.warnings.append("repeated points have a single epoch count: R_D rests on one "
                                   "repetition level; vary the epochs")
    if np.unique(np.round(np.log(u), 9)).size < 2:
        report.warnings.append("one unique-token budget U: B, beta and R_D trade off; repeat "
                               "the epochs at >= 2 budgets")
    if "R_N" not in fixed:
        u_n = unique_params(u, params["A"], params["B"], params["alpha"], params["beta"])
        excess = n / u_n
        if float(excess.max()) <= 1.0 + 1e-9:
            report.not_identified(["R_N"], "no point has more parameters than N_opt(U) (largest "
                                           f"N / N_opt(U) = {float(excess.max()):.2g}): R_N is not "
                                           "identified; add sizes larger than compute-optimal "
                                           "for the unique data")


def _bounds_hit(report: Report, form: LawForm, theta: np.ndarray, bounds: np.ndarray,
                free: np.ndarray, y: np.ndarray, params: dict[str, float]) -> None:
    for i, theta_name in enumerate(form.theta_names):
        if not free[i] or theta_name in ("a", "b"):
            continue
        name = _PARAM_OF[theta_name]
        low = theta[i] <= bounds[i, 0] + _AT_BOUND
        high = theta[i] >= bounds[i, 1] - _AT_BOUND
        if theta_name == "e":
            if params["E"] < _COLLAPSED * float(y.min()):
                report.not_identified(["E"], "asymptote pushed to ~0: the points show no floor")
        elif theta_name in ("r_d", "r_n") and high:
            what = "repeated data" if name == "R_D" else "excess parameters"
            report.not_identified([name], f"{name} at its bound ({params[name]:.3g}): the points "
                                          f"show no decay in the value of {what}")
        elif low or high:
            report.not_identified([name], f"{name} at its bound ({params[name]:.3g}): the data "
                                          "do not determine it")


def _disagreement(report: Report, form: LawForm, solutions: list, scales: Scales,
                  fixed: dict[str, float]) -> None:
    best = solutions[0]
    near = [s for s in solutions
            if s.converged and s.value <= best.value * (1 + _NEAR_OPTIMAL) + 1e-9]
    if len(near) < 2:
        return
    values = scales.natural(form, np.array([s.theta for s in near]))
    for i, name in enumerate(form.params):
        limit = _DISAGREEMENT.get(name)
        if limit is None or name in fixed:
            continue
        col = values[:, i]
        spread = float(col.max() - col.min())
        if spread > limit * float(np.abs(col).max()):
            report.not_identified([name], f"near-optimal solutions disagree on {name} "
                                          f"({col.min():.4g} to {col.max():.4g}): it is poorly "
                                          "determined")


def _interval_checks(report: Report, form: LawForm, samples: np.ndarray,
                     intervals: dict[str, tuple[float, float]], bounds: np.ndarray,
                     y: np.ndarray, fixed: dict[str, float]) -> None:
    index = {name: i for i, name in enumerate(form.params)}
    ok = np.all(np.isfinite(samples), axis=1)
    for a, b in (("alpha", "beta"), ("E", "A"), ("E", "B")):
        if a in fixed or b in fixed or ok.sum() < 10:
            continue
        x, z = samples[ok, index[a]], samples[ok, index[b]]
        if np.std(x) > 0 and np.std(z) > 0:
            r = float(np.corrcoef(x, z)[0, 1])
            report.correlations[f"{a}-{b}"] = r
            if a == "alpha" and abs(r) > _STRONG_CORRELATION:
                report.warnings.append(f"alpha and beta are strongly correlated across "
                                       f"resamples (r = {r:.2f}): the data trade one exponent "
                                       "for the other")
    for name, (low, high) in intervals.items():
        if not report.identified.get(name, True):
            continue
        if name in ("A", "B") and low > 0 and high / low > _MAX_AMPLITUDE_RATIO:
            report.not_identified([name], f"{name}'s interval spans "
                                          f"{math.log10(high / low):.0f} orders of magnitude: "
                                          "it is not determined")
        elif name == "E" and low < _COLLAPSED * float(y.min()):
            report.not_identified(["E"], "E's interval reaches ~0: the asymptote is only bounded "
                                         "above")
        elif name in ("R_D", "R_N"):
            theta_bounds = bounds[form.theta_names.index("r_d" if name == "R_D" else "r_n")]
            if high >= math.exp(theta_bounds[1]) * (1 - 1e-6):
                report.not_identified([name], f"{name}'s interval reaches its bound: the points "
                                              f"give only a lower limit ({low:.3g})")
