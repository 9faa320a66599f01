"""Robust fits of L(x) = A / x^alpha + E with bootstrap intervals and honest diagnostics.

The default method fits log L = logsumexp(a - alpha log x, e) with a Huber loss (delta 1e-3)
summed over points, by L-BFGS-B from a grid of starting points, keeping the best converged
solution (the grid is first advanced together by a vectorised Gauss-Newton pass, so L-BFGS-B
only refines the promising starts). "least-squares" minimises squared error on the raw loss
instead (the paper authors' choice), so the two can be compared side by side.

Intervals come from a seeded bootstrap, pairs by default, residual on request. All resamples
are fitted at once by the vectorised solver, warm-started at the full-data optimum, so a
1000-resample bootstrap costs about as much as a handful of single fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize

from scaling.fit import solver as _solver
from scaling.fit.bootstrap import (
    BOOTSTRAPS,
    DEFAULT_LEVEL,
    bootstrap_fits,
    format_number,
    json_number,
    percentile_interval,
    tex_number,
)
from scaling.fit.checks import narrow_span, too_few_points
from scaling.fit.lack_of_fit import LackOfFit, lack_of_fit

HUBER_DELTA = 1e-3
ALPHA_BOUNDS = (0.0, 5.0)
METHODS = _solver.METHODS
PARAM_NAMES = ("A", "alpha", "E")
# Starting grid: exponents spanning flat to steep laws, asymptotes from "none" to "almost the
# smallest observed loss"; the amplitude of each start is solved from the data.
_START_ALPHAS = (0.1, 0.3, 0.6, 1.0, 1.6, 2.5)
_START_FLOOR_SHARES = (1e-3, 0.5, 0.8, 0.95)
# Near-optimal solutions (objective within this share of the best) that disagree on E by
# more than _E_DISAGREEMENT (relative) mean the asymptote is not pinned down by the data.
_NEAR_OPTIMAL = 0.01
_E_DISAGREEMENT = 0.01
_REFINE_MARGIN = 0.05
# An asymptote below this share of the smallest loss is "no floor" (pushed to its bound).
_COLLAPSED = 1e-6


class _Solution(NamedTuple):
    theta: np.ndarray  # (a, alpha, e) in the solver's parametrisation
    value: float
    converged: bool


class FitInputError(ValueError):
    """The points given to a fit cannot be fitted (NaN, non-positive, too few, ...)."""


@dataclass(frozen=True, eq=False)
class PowerLawFit:
    """A fitted law L(x) = A / x^alpha + E.

    `intervals` maps "A", "alpha", "E" to percentile intervals from the bootstrap (empty
    without one); `samples` holds the bootstrap replicates as rows (A, alpha, E), NaN where a
    replicate failed, aligned by replicate index so derived numbers can be propagated.
    `extrapolation_error` is the relative error of predicting the largest-x point from a fit to
    the others (None with fewer than 4 points). `identifiable` is False when the data do not
    pin the three parameters down (too few points, exponent at a bound, E collapsed to 0, or
    near-optimal solutions disagreeing on E); `warnings` says which. `lack_of_fit` holds the
    checks of whether the law's form describes the points at all (``scaling.fit.lack_of_fit``):
    a detected lack of fit is a warning too, but leaves `identifiable` as it is.
    """

    A: float
    alpha: float
    E: float
    method: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    converged: bool = True
    warnings: list[str] = field(default_factory=list)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL
    samples: np.ndarray | None = field(default=None, repr=False)
    extrapolation_error: float | None = None
    objective: float = math.nan
    identifiable: bool = True
    lack_of_fit: LackOfFit | None = None

    @property
    def misspecified(self) -> bool:
        """The lack-of-fit checks found residuals this form cannot explain."""
        return self.lack_of_fit is not None and self.lack_of_fit.detected

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Fitted loss at x."""
        return self.A / np.asarray(x, dtype=float) ** self.alpha + self.E

    def predict_samples(self, x: np.ndarray | float) -> np.ndarray:
        """Loss at x under every bootstrap replicate, shape (n_boot, len(x))."""
        if self.samples is None:
            raise ValueError("this fit has no bootstrap samples (fit with n_boot > 0)")
        xs = np.atleast_1d(np.asarray(x, dtype=float))
        a, alpha, e = (self.samples[:, i : i + 1] for i in range(3))
        return a / xs[None, :] ** alpha + e

    def band(self, x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the fitted curve at the fit's interval level."""
        preds = self.predict_samples(x)
        bounds = [percentile_interval(col, self.level) for col in preds.T]
        return np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])

    def inverse(self, loss: float | np.ndarray) -> np.ndarray:
        """x at which the law reaches `loss`: (A / (L - E))^(1/alpha); inf at or below E."""
        gap = np.asarray(loss, dtype=float) - self.E
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, (self.A / np.where(gap > 0, gap, 1.0)) ** (1 / self.alpha),
                            np.inf)

    def law(self, symbol: str = "x", digits: int = 3) -> str:
        """The law as text, e.g. 'L = 0.052 / N^1.02 + 3.43'."""
        return (f"L = {format_number(self.A, digits)} / {symbol}^{self.alpha:.{digits - 1}f}"
                f" + {format_number(self.E, digits)}")

    def law_tex(self, symbol: str = "x", digits: int = 3) -> str:
        """The law as matplotlib mathtext, for legends: '$L = 0.052\\,/\\,N^{1.02} + 3.43$'."""
        amplitude, floor = (tex_number(v, digits) for v in (self.A, self.E))
        return f"$L = {amplitude}\\,/\\,{symbol}^{{{self.alpha:.{digits - 1}f}}} + {floor}$"

    @property
    def floorless(self) -> bool:
        """A pure power law: E pushed to ~0 (the points show no floor) while A and alpha are
        determined. Not identifiable as a law with an asymptote, but still a usable
        description of the points, e.g. for inverting a data law (conservatively: a floor
        would need more data for the same loss)."""
        at_bound = self.alpha <= ALPHA_BOUNDS[0] + 1e-6 or self.alpha >= ALPHA_BOUNDS[1] - 1e-6
        return (self.converged and not at_bound and np.isfinite(self.E)
                and self.E < _COLLAPSED * float(np.min(self.y)))

    @property
    def n_points(self) -> int:
        return int(self.x.size)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "A": json_number(self.A), "alpha": json_number(self.alpha), "E": json_number(self.E),
            "method": self.method, "n_points": self.n_points, "converged": self.converged,
            "identifiable": self.identifiable,
            "x": [float(v) for v in self.x], "y": [float(v) for v in self.y],
            "extrapolation_error": json_number(self.extrapolation_error),
            "intervals": {k: [json_number(lo), json_number(hi)]
                          for k, (lo, hi) in self.intervals.items()},
            "level": self.level, "warnings": list(self.warnings),
            "lack_of_fit": None if self.lack_of_fit is None else self.lack_of_fit.to_dict(),
        }
        return out


def validate_points(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """1-D float arrays of equal length >= 3, finite and positive, or a FitInputError."""
    xs = np.asarray(x, dtype=float).ravel()
    ys = np.asarray(y, dtype=float).ravel()
    if xs.size != ys.size:
        raise FitInputError(f"x and y differ in length ({xs.size} vs {ys.size})")
    if xs.size < 3:
        raise FitInputError(f"need at least 3 points to fit A, alpha and E, got {xs.size}")
    for name, values in (("x", xs), ("y", ys)):
        if not np.all(np.isfinite(values)):
            where = int(np.argmin(np.isfinite(values)))
            raise FitInputError(f"{name} contains NaN or inf (first at index {where})")
        if np.any(values <= 0):
            raise FitInputError(f"{name} must be positive, got {float(values.min())}")
    return xs, ys


def fit_power_law(
    x: object,
    y: object,
    *,
    method: str = "huber-log",
    n_boot: int = 0,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    delta: float = HUBER_DELTA,
    alpha_bounds: tuple[float, float] = ALPHA_BOUNDS,
    bootstrap: str = "pairs",
    y_samples: np.ndarray | None = None,
    noise: float | np.ndarray | None = None,
) -> PowerLawFit:
    """Fit L(x) = A / x^alpha + E to points (x, y).

    method: "huber-log" (default) or "least-squares". n_boot > 0 runs a seeded bootstrap
    (1000 is the usual choice) and fills `intervals` and `samples`: "pairs" (default)
    resamples (x, y) points; "residual" keeps the design fixed and resamples the fit's
    residuals, which behaves better when a handful of points each carry the fit (a pairs
    resample of 5 member counts lacks K = 1 a third of the time, leaving E unidentified).
    `y_samples` (n_rep, n), when given, propagates an upstream bootstrap: replicate b refits
    a resample of (x, y_samples[b]), and n_boot is taken from its rows. `noise` (nats, one
    value or one per point) is the seed-to-seed noise of the losses, when known: the
    lack-of-fit check compares the residuals with it. Raises FitInputError on unusable
    points; anything questionable about a fit that did run is in `warnings`.
    """
    if method not in METHODS:
        raise FitInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if bootstrap not in BOOTSTRAPS:
        raise FitInputError(f"unknown bootstrap {bootstrap!r}; "
                            f"choose one of {', '.join(BOOTSTRAPS)}")
    xs, ys = validate_points(x, y)
    with _solver.single_threaded_blas():
        fit = _fit(xs, ys, method, n_boot, seed, level, delta, alpha_bounds, bootstrap,
                   y_samples)
    check = lack_of_fit(ys, fit.predict(xs), 3, noise=noise, order=xs, groups=xs)
    warnings = fit.warnings + ([check.message] if check.detected else [])
    return replace(fit, lack_of_fit=check, warnings=warnings)


def _fit(
    xs: np.ndarray, ys: np.ndarray, method: str, n_boot: int, seed: int, level: float,
    delta: float, alpha_bounds: tuple[float, float], bootstrap: str,
    y_samples: np.ndarray | None,
) -> PowerLawFit:
    x_ref = float(np.exp(np.mean(np.log(xs))))
    lu = np.log(xs / x_ref)
    bounds = _bounds(ys, alpha_bounds)
    solutions = _multistart(lu, ys, method, delta, bounds, _grid_starts(lu, ys, bounds))
    best = solutions[0]
    warnings, identifiable = _diagnose(xs, ys, solutions, bounds)
    A, alpha, E = _to_natural(best.theta, x_ref)

    intervals: dict[str, tuple[float, float]] = {}
    samples = None
    if y_samples is not None or n_boot > 0:
        samples, boot_warnings = bootstrap_fits(
            lu, ys, best.theta, x_ref, method, delta, bounds, n_boot, seed, y_samples,
            bootstrap)
        warnings += boot_warnings
        if samples is not None:
            intervals = {name: percentile_interval(samples[:, i], level)
                         for i, name in enumerate(PARAM_NAMES)}
    return PowerLawFit(
        A=A, alpha=alpha, E=E, method=method, x=xs, y=ys, converged=best.converged,
        warnings=warnings, intervals=intervals, level=level, samples=samples,
        extrapolation_error=_leave_largest_out(xs, ys, method, delta, alpha_bounds, best, x_ref),
        objective=best.value, identifiable=identifiable,
    )


def _bounds(y: np.ndarray, alpha_bounds: tuple[float, float]) -> np.ndarray:
    log_top = math.log(float(y.max()))
    # e far below log(min y) means "no asymptote"; the floor keeps the optimiser from wandering
    # off to -inf along a direction that no longer changes the fit.
    return np.array([[log_top - 40.0, log_top + 10.0], list(alpha_bounds),
                     [math.log(float(y.min())) - 20.0, log_top + 1.0]])


def _grid_starts(lu: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    starts = []
    spread = float(y.max() - y.min()) + 1e-12
    for share in _START_FLOOR_SHARES:
        floor = share * float(y.min())
        log_excess = np.log(np.maximum(y - floor, 1e-3 * spread))
        for alpha in _START_ALPHAS:
            alpha = min(max(alpha, bounds[1, 0]), bounds[1, 1])
            starts.append([float(np.mean(log_excess + alpha * lu)), alpha, math.log(floor)])
    return np.clip(np.array(starts), bounds[:, 0], bounds[:, 1])


def _multistart(
    lu: np.ndarray, y: np.ndarray, method: str, delta: float, bounds: np.ndarray,
    starts: np.ndarray, n_refine: int = 4,
) -> list[_Solution]:
    """Best solutions from a grid of starts, sorted best first with converged ones ahead.

    All starts are first advanced together by the vectorised Gauss-Newton solver (cheap: one
    numpy pass per iteration for the whole grid); the best few distinct candidates are then
    refined by L-BFGS-B, whose convergence verdict is the one reported. Starts that crawl along
    a flat direction (typically towards E = 0) are left behind by the screening instead of
    costing hundreds of L-BFGS-B iterations each.
    """
    ones = np.ones((starts.shape[0], y.size))
    screened, values, lm_converged = _solver.solve_batched(
        starts, lu, np.broadcast_to(y, ones.shape), ones, method, delta, bounds, max_iter=60)
    order = np.argsort(np.where(np.isfinite(values), values, np.inf))
    # Only candidates that could matter are refined: the best one, and distinct ones close
    # enough to it to reveal a second optimum with a different asymptote.
    cutoff = values[order[0]] * (1 + _REFINE_MARGIN) + 1e-9
    candidates: list[int] = []
    for i in order:
        if len(candidates) == n_refine or (candidates and values[i] > cutoff):
            break
        if all(np.max(np.abs(screened[i] - screened[c])) > 1e-4 for c in candidates):
            candidates.append(i)
    solutions = []
    for i in candidates:
        start, screened_value, screened_ok = screened[i], values[i], lm_converged[i]
        result = minimize(_solver.value_and_grad, start, args=(lu, y, method, delta), jac=True,
                          method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": 500, "ftol": 1e-11, "gtol": 1e-8})
        # L-BFGS-B reports an "abnormal line search" when it starts on the minimum to machine
        # precision: a converged screening point it cannot improve on, or a tiny projected
        # gradient, still means converged.
        value = float(result.fun)
        no_better = value >= screened_value - 1e-9 * (1.0 + abs(screened_value))
        converged = bool(result.success or (screened_ok and no_better)
                         or _projected_gradient(result, bounds) < 1e-5 * (1.0 + abs(value)))
        solutions.append(_Solution(np.asarray(result.x), value, converged))
    solutions.sort(key=lambda s: (not s.converged, s.value))
    return solutions


def _projected_gradient(result: object, bounds: np.ndarray) -> float:
    grad = np.asarray(result.jac, dtype=float)
    x = np.asarray(result.x, dtype=float)
    at_low = (x <= bounds[:, 0] + 1e-12) & (grad > 0)
    at_high = (x >= bounds[:, 1] - 1e-12) & (grad < 0)
    return float(np.max(np.abs(np.where(at_low | at_high, 0.0, grad))))


def _to_natural(theta: np.ndarray, x_ref: float) -> tuple[float, float, float]:
    a, alpha, e = (float(v) for v in theta)
    return math.exp(a + alpha * math.log(x_ref)), alpha, math.exp(e)


def _diagnose(x: np.ndarray, y: np.ndarray, solutions: list[_Solution],
              bounds: np.ndarray) -> tuple[list[str], bool]:
    """Warnings about the fit, and whether its parameters are identified by the data."""
    warnings = []
    best = solutions[0]
    identifiable = too_few_points(x.size) is None
    warnings += [w for w in (too_few_points(x.size), narrow_span(x)) if w]
    if not best.converged:
        warnings.append("optimiser did not converge from any start; parameters are the best found")
    alpha = float(best.theta[1])
    if alpha <= bounds[1, 0] + 1e-6 or alpha >= bounds[1, 1] - 1e-6:
        identifiable = False
        warnings.append(f"exponent at its bound (alpha = {alpha:.3g}): "
                        "the data do not determine it")
    collapsed = math.exp(best.theta[2]) < _COLLAPSED * float(y.min())
    if collapsed:
        identifiable = False
        warnings.append("asymptote pushed to ~0: the points show no floor")
    near = [s for s in solutions
            if s.converged and s.value <= best.value * (1 + _NEAR_OPTIMAL) + 1e-9]
    floors = np.exp([s.theta[2] for s in near])
    # (E values that all sit at ~0 differ only in digits that mean nothing)
    spread = floors.max() - floors.min() if floors.size else 0.0
    if floors.size > 1 and spread > _E_DISAGREEMENT * floors.max() and spread > _COLLAPSED * float(y.min()):
        identifiable = False
        warnings.append(f"near-optimal solutions disagree on E ({floors.min():.4g} to "
                        f"{floors.max():.4g}): the asymptote is poorly determined")
    return warnings, identifiable


def _leave_largest_out(
    x: np.ndarray, y: np.ndarray, method: str, delta: float,
    alpha_bounds: tuple[float, float], best: _Solution, x_ref: float,
) -> float | None:
    """Relative error at the largest x of a fit that never saw it (a held-out extrapolation)."""
    if x.size < 4:
        return None
    keep = x < x.max()
    if keep.sum() < 3:
        return None
    lu = np.log(x[keep] / x_ref)
    bounds = _bounds(y[keep], alpha_bounds)
    # Warm start from the full fit plus the usual grid: the held-out fit is usually nearby.
    starts = np.vstack([np.clip(best.theta, bounds[:, 0], bounds[:, 1]),
                        _grid_starts(lu, y[keep], bounds)])
    held_out = _multistart(lu, y[keep], method, delta, bounds, starts)[0]
    A, alpha, E = _to_natural(held_out.theta, x_ref)
    target = float(y[~keep].mean())
    return float((A / float(x.max()) ** alpha + E - target) / target)
