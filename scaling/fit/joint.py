"""Fits of the field's two-variable laws: L(N, D) and the data-constrained law.

``fit_chinchilla_law`` fits L = E + A / N^alpha + B / D^beta (Hoffmann et al.'s approach 3)
the careful way its replication did (Besiroglu et al. 2024): log L = LSE(a - alpha log N,
b - beta log D, e), a Huber loss (delta 1e-3) on log residuals summed over points, from the
published grid of starts (exponents 0 to 2, e from -1 to 1, a and b from 0 to 25: 4,500
starts), keeping the best converged solution. ``fit_data_constrained_law`` fits Muennighoff
et al.'s law of effective parameters and data (``scaling.fit.forms``), with any parameters
held at given values (their two-stage procedure: the base law first, then only R_D* and
R_N*).

Both share the one-variable law's machinery: the grid is advanced together by the batched
Levenberg-Marquardt solver, the best distinct candidates are refined by L-BFGS-B, and the
bootstrap refits every resample at once (pairs by default). Diagnostics are warnings, and a
parameter the data cannot pin down is marked in ``identified``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scaling.fit import solver
from scaling.fit.bootstrap import (
    BOOTSTRAPS,
    DEFAULT_LEVEL,
    json_number,
    pairs_resample_counts,
    percentile_interval,
    residual_resample,
)
from scaling.fit.forms import (
    CHINCHILLA,
    DATA_CONSTRAINED,
    LawForm,
    Scales,
    chinchilla_loss,
    data_constrained_loss,
)
from scaling.fit.joint_checks import diagnose
from scaling.fit.lack_of_fit import LackOfFit, lack_of_fit
from scaling.fit.power_law import HUBER_DELTA, METHODS, FitInputError

EXPONENT_BOUNDS = (0.0, 5.0)
# Muennighoff's form takes log(alpha) and log(beta) (in N_opt(U)), so they stay positive.
POSITIVE_EXPONENT_BOUNDS = (0.01, 5.0)
DECAY_BOUNDS = (0.01, 1e4)
# The published grid (Hoffmann et al.; Besiroglu et al.), in raw units of N and D.
GRID_EXPONENTS = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_E = (-1.0, -0.5, 0.0, 0.5, 1.0)
GRID_AMPLITUDES = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
# Starting decay constants for the data-constrained law (Muennighoff et al.: R_D* ~ 15.4,
# R_N* ~ 5.3), tried from each of the best base-law candidates.
GRID_DECAYS_D = (0.5, 2.0, 5.0, 15.0, 50.0, 200.0, 1000.0)
GRID_DECAYS_N = (0.5, 2.0, 5.0, 20.0, 100.0, 1000.0)
N_BASE_CANDIDATES = 6
N_REFINE = 6
# The multistart's first pass takes this many steps from every start; the best N_CONTINUE
# starts then go on to convergence.
SCREEN_STEPS = 12
N_CONTINUE = 200
_REFINE_MARGIN = 0.05


@dataclass(frozen=True, eq=False)
class JointLawFit:
    """A fitted two-variable law: parameters, intervals, diagnostics and predictions.

    `params` maps each natural parameter (E, A, B, alpha, beta; R_D and R_N for the
    data-constrained law, the decay constants in repetitions) to its value. `intervals`
    holds bootstrap percentile intervals of the free parameters (empty without a
    bootstrap); `samples` holds the replicates as rows in `param_names` order, NaN where one
    failed. `identified` says, per parameter, whether the data pin it down; `warnings` says
    why not, and what else is questionable. `objective` is the minimised objective in the
    solver's units (the Huber sum divided by delta squared; `huber_sum` gives it as
    published replications print it).
    """

    law: str
    params: Mapping[str, float]
    method: str
    n_params: np.ndarray = field(repr=False)
    tokens: np.ndarray = field(repr=False)
    loss: np.ndarray = field(repr=False)
    unique_tokens: np.ndarray | None = field(default=None, repr=False)
    fixed: Mapping[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: np.ndarray | None = field(default=None, repr=False)
    identified: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    objective: float = math.nan
    delta: float = HUBER_DELTA
    converged: bool = True
    level: float = DEFAULT_LEVEL
    lack_of_fit: LackOfFit | None = None
    correlations: dict[str, float] = field(default_factory=dict)
    """Bootstrap correlations of parameter pairs that matter (alpha-beta, E-A, E-B)."""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def identifiable(self) -> bool:
        """Every free parameter is identified by the data."""
        return all(ok for name, ok in self.identified.items() if name not in self.fixed)

    @property
    def n_points(self) -> int:
        return int(self.loss.size)

    @property
    def huber_sum(self) -> float:
        """The summed Huber loss of the log residuals (huber-log), or half the summed squared
        raw residuals over (delta * mean loss)^2 units undone (least-squares)."""
        scale = self.delta if self.method == "huber-log" else self.delta * float(np.mean(self.loss))
        return self.objective * scale**2

    def sample(self, name: str) -> np.ndarray:
        """The bootstrap replicates of one parameter (a constant for a fixed one)."""
        if self.samples is None:
            raise ValueError("this fit has no bootstrap samples (fit with n_boot > 0)")
        return self.samples[:, self.param_names.index(name)]

    def predict(self, n_params: np.ndarray | float, tokens: np.ndarray | float,
                unique_tokens: np.ndarray | float | None = None) -> np.ndarray:
        """Fitted loss at (N, D) and, for the data-constrained law, U (default: U = D, no
        repetition)."""
        return self._loss(n_params, tokens, unique_tokens, self.params)

    def predict_samples(self, n_params: np.ndarray | float, tokens: np.ndarray | float,
                        unique_tokens: np.ndarray | float | None = None) -> np.ndarray:
        """Loss under every bootstrap replicate, shape (n_boot, len(points))."""
        if self.samples is None:
            raise ValueError("this fit has no bootstrap samples (fit with n_boot > 0)")
        columns = {name: self.samples[:, i:i + 1] for i, name in enumerate(self.param_names)}
        n, d = (np.atleast_1d(np.asarray(v, dtype=float))[None, :] for v in (n_params, tokens))
        u = None if unique_tokens is None else np.atleast_1d(np.asarray(unique_tokens, float))[None, :]
        return self._loss(n, d, u, columns)

    def _loss(self, n: object, d: object, u: object, p: Mapping[str, object]) -> np.ndarray:
        if self.law == CHINCHILLA.name:
            return chinchilla_loss(n, d, p["E"], p["A"], p["B"], p["alpha"], p["beta"])
        unique = d if u is None else u
        return data_constrained_loss(n, d, unique, p["E"], p["A"], p["B"], p["alpha"],
                                     p["beta"], p["R_D"], p["R_N"])

    def law_text(self, digits: int = 3) -> str:
        """The law as text, e.g. 'L = 1.82 + 482 / N^0.348 + 2.09e+03 / D^0.366'."""
        from scaling.fit.bootstrap import format_number

        p = self.params
        n_sym, d_sym = ("N", "D") if self.law == CHINCHILLA.name else ("N'", "D'")
        text = (f"L = {format_number(p['E'], digits)} + {format_number(p['A'], digits)} / "
                f"{n_sym}^{p['alpha']:.{digits}f} + {format_number(p['B'], digits)} / "
                f"{d_sym}^{p['beta']:.{digits}f}")
        if self.law == DATA_CONSTRAINED.name:
            text += (f", R_D* = {format_number(p['R_D'], digits)}, "
                     f"R_N* = {format_number(p['R_N'], digits)}")
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "law": self.law, "method": self.method, "n_points": self.n_points,
            "params": {k: json_number(v) for k, v in self.params.items()},
            "fixed": {k: json_number(v) for k, v in self.fixed.items()},
            "intervals": {k: [json_number(lo), json_number(hi)]
                          for k, (lo, hi) in self.intervals.items()},
            "identified": dict(self.identified), "identifiable": self.identifiable,
            "converged": self.converged, "objective": json_number(self.objective),
            "huber_sum": json_number(self.huber_sum), "level": self.level,
            "correlations": {k: json_number(v) for k, v in self.correlations.items()},
            "lack_of_fit": None if self.lack_of_fit is None else self.lack_of_fit.to_dict(),
            "warnings": list(self.warnings),
        }


def fit_chinchilla_law(
    n_params: object, tokens: object, loss: object, *, method: str = "huber-log",
    n_boot: int = 0, seed: int = 0, fixed: Mapping[str, float] | None = None,
    level: float = DEFAULT_LEVEL, delta: float = HUBER_DELTA, bootstrap: str = "pairs",
    noise: float | np.ndarray | None = None,
) -> JointLawFit:
    """Fit L = E + A / N^alpha + B / D^beta to points (N, D, L).

    N in parameters and D in tokens seen, in any unit (the fit divides by their geometric
    means; A and B come back in the units given). `fixed` holds any of E, A, B, alpha, beta
    at given values. n_boot > 0 runs a seeded bootstrap ("pairs" resamples points,
    "residual" keeps the design). `noise` (nats, one value or one per point) is the
    seed-to-seed noise the lack-of-fit check compares the residuals with. Raises
    FitInputError on unusable points; everything questionable about a fit that ran is in
    its warnings.
    """
    n, d, y = _points(("n_params", n_params), ("tokens", tokens), ("loss", loss))
    return _fit(CHINCHILLA, n, d, None, y, method, n_boot, seed, fixed, level, delta,
                bootstrap, noise)


def fit_data_constrained_law(
    n_params: object, tokens: object, unique_tokens: object, loss: object, *,
    method: str = "huber-log", n_boot: int = 0, seed: int = 0,
    fixed: Mapping[str, float] | None = None, level: float = DEFAULT_LEVEL,
    delta: float = HUBER_DELTA, bootstrap: str = "pairs",
    noise: float | np.ndarray | None = None,
) -> JointLawFit:
    """Fit Muennighoff et al.'s data-constrained law to points (N, D, U, L).

    D is tokens seen and U the unique tokens they were drawn from (epochs = D / U). Its
    parameters are the base law's (E, A, B, alpha, beta) and the decay constants R_D and
    R_N, in repetitions. `fixed` holds any subset at given values: pass a single-epoch
    `fit_chinchilla_law(...).params` to fit only R_D and R_N on the repeated runs, as the
    original work did, or nothing to fit all seven jointly. Otherwise as
    `fit_chinchilla_law`.
    """
    n, d, u, y = _points(("n_params", n_params), ("tokens", tokens),
                         ("unique_tokens", unique_tokens), ("loss", loss))
    return _fit(DATA_CONSTRAINED, n, d, u, y, method, n_boot, seed, fixed, level, delta,
                bootstrap, noise)


def _points(*named: tuple[str, object]) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(v, dtype=float).ravel() for _, v in named]
    if arrays[0].size == 0:
        raise FitInputError("no points to fit")
    sizes = {a.size for a in arrays}
    if len(sizes) != 1:
        lengths = ", ".join(f"{name} {a.size}" for (name, _), a in zip(named, arrays, strict=True))
        raise FitInputError(f"inputs differ in length ({lengths})")
    for (name, _), values in zip(named, arrays, strict=True):
        if not np.all(np.isfinite(values)):
            where = int(np.argmin(np.isfinite(values)))
            raise FitInputError(f"{name} contains NaN or inf (first at index {where})")
        if np.any(values <= 0):
            raise FitInputError(f"{name} must be positive, got {float(values.min())}")
    return tuple(arrays)


def _fit(form: LawForm, n: np.ndarray, d: np.ndarray, u: np.ndarray | None, y: np.ndarray,
         method: str, n_boot: int, seed: int, fixed: Mapping[str, float] | None, level: float,
         delta: float, bootstrap: str, noise: float | np.ndarray | None) -> JointLawFit:
    if method not in METHODS:
        raise FitInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if bootstrap not in BOOTSTRAPS:
        raise FitInputError(f"unknown bootstrap {bootstrap!r}; choose one of {', '.join(BOOTSTRAPS)}")
    fixed = _check_fixed(form, fixed)
    scales = Scales.of(n, d)
    X = scales.prepare(n, d, u)
    bounds = _bounds(form, y)
    free, held = _free_mask(form, fixed, scales, bounds)
    n_free = int(free.sum())
    if y.size <= n_free:
        raise FitInputError(f"{y.size} points for {n_free} free parameters: need more points "
                            "than parameters (or hold some fixed)")
    with solver.single_threaded_blas():
        starts = _starts(form, X, y, scales, bounds, free, held, method, delta)
        solutions = _multistart(form, X, y, method, delta, bounds, free, starts)
        best = solutions[0]
        params = dict(zip(form.params, scales.natural(form, best.theta)[0], strict=True))
        samples, boot_warnings = None, []
        if n_boot > 0:
            samples, boot_warnings = _bootstrap(form, X, y, solutions, method, delta, bounds,
                                                free, n_boot, seed, bootstrap, scales)
    intervals = {} if samples is None else {
        name: percentile_interval(samples[:, i], level)
        for i, name in enumerate(form.params) if name not in fixed}
    fitted = form.predict(best.theta, X)
    check = lack_of_fit(y, fitted, n_free, noise=noise, order=fitted,
                        groups=_replicate_labels(n, d, u))
    report = diagnose(form, n, d, u, y, params, fixed, solutions, bounds, free, samples,
                      intervals, scales)
    warnings = report.warnings + boot_warnings
    if check.detected:
        warnings.append(check.message)
    return JointLawFit(
        law=form.name, params=params, method=method, n_params=n, tokens=d, loss=y,
        unique_tokens=u, fixed=fixed, intervals=intervals, samples=samples,
        identified=report.identified, warnings=warnings, objective=best.value, delta=delta,
        converged=best.converged, level=level, lack_of_fit=check,
        correlations=report.correlations)


def _check_fixed(form: LawForm, fixed: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for name, value in dict(fixed or {}).items():
        if name not in form.params:
            raise FitInputError(f"fixed: {name!r} is not a parameter of the {form.name} law "
                                f"(its parameters: {', '.join(form.params)})")
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise FitInputError(f"fixed: {name} must be a positive number, got {value}")
        out[name] = value
    return out


def _bounds(form: LawForm, y: np.ndarray) -> np.ndarray:
    log_top, log_low = math.log(float(y.max())), math.log(float(y.min()))
    exponents = POSITIVE_EXPONENT_BOUNDS if form is DATA_CONSTRAINED else EXPONENT_BOUNDS
    rows = [[log_top - 40.0, log_top + 10.0], [log_top - 40.0, log_top + 10.0],
            list(exponents), list(exponents), [log_low - 20.0, log_top + 1.0]]
    if form is DATA_CONSTRAINED:
        rows += [[math.log(b) for b in DECAY_BOUNDS]] * 2
    return np.array(rows)


# Which solver parameter carries each natural one (A lives in a, with alpha, and so on).
_THETA_OF = {"A": "a", "B": "b", "alpha": "alpha", "beta": "beta", "E": "e", "R_D": "r_d",
             "R_N": "r_n"}


def _free_mask(form: LawForm, fixed: dict[str, float], scales: Scales,
               bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which solver parameters move, and the values of those held (NaN where free).

    The solver carries an amplitude together with its exponent (a = log A - alpha log n_ref),
    so an amplitude can only be held with its exponent; fixing A alone is refused.
    """
    names = form.theta_names
    free = np.ones(len(names), dtype=bool)
    held = np.full(len(names), np.nan)
    for amp, expo, ref in (("A", "alpha", scales.n_ref), ("B", "beta", scales.t_ref)):
        if amp in fixed and expo not in fixed:
            raise FitInputError(f"fixed: {amp} needs its exponent {expo} fixed too")
        if amp in fixed:
            held[names.index(_THETA_OF[amp])] = math.log(fixed[amp]) - fixed[expo] * math.log(ref)
    for name, value in fixed.items():
        index = names.index(_THETA_OF[name])
        free[index] = False
        if name in ("E", "R_D", "R_N"):
            held[index] = math.log(value)
        elif name in ("alpha", "beta"):
            held[index] = value
    low, high = bounds[~free, 0], bounds[~free, 1]
    if np.any(held[~free] < low) or np.any(held[~free] > high):
        bad = [form.theta_names[i] for i in np.flatnonzero(~free)
               if not bounds[i, 0] <= held[i] <= bounds[i, 1]]
        raise FitInputError(f"fixed: value outside the fit's range for {', '.join(bad)}")
    return free, held


def _base_grid(scales: Scales) -> np.ndarray:
    """The published grid of (a, b, alpha, beta, e), converted to the solver's units."""
    grid = np.array(np.meshgrid(GRID_AMPLITUDES, GRID_AMPLITUDES, GRID_EXPONENTS,
                                GRID_EXPONENTS, GRID_E, indexing="ij")).reshape(5, -1).T
    a, b, alpha, beta, e = grid.T
    return np.column_stack([a - alpha * math.log(scales.n_ref), b - beta * math.log(scales.t_ref),
                            alpha, beta, e])


def _starts(form: LawForm, X: np.ndarray, y: np.ndarray, scales: Scales, bounds: np.ndarray,
            free: np.ndarray, held: np.ndarray, method: str, delta: float) -> np.ndarray:
    base = _base_grid(scales)
    if form is CHINCHILLA:
        return _apply_held(np.clip(base, bounds[:, 0], bounds[:, 1]), free, held, bounds)
    # The data-constrained law: the published grid screened as L(N, D) (which is this law
    # with no decay, R_D* = R_N* = inf: D' = D and N' = N), then every grid decay tried from
    # each of the best distinct base candidates.
    base = _apply_held(np.clip(base, bounds[:5, 0], bounds[:5, 1]), free[:5], held[:5], bounds[:5])
    screened, values, _ = _screen(CHINCHILLA, X[:2], y, method, delta, bounds[:5], free[:5],
                                  base, continue_steps=40)
    picks = _distinct_best(screened, values, N_BASE_CANDIDATES)
    decays = np.array([[math.log(rd), math.log(rn)] for rd in GRID_DECAYS_D for rn in GRID_DECAYS_N])
    starts = [np.concatenate([screened[i], dec]) for i in picks for dec in decays]
    return _apply_held(np.clip(np.array(starts), bounds[:, 0], bounds[:, 1]), free, held, bounds)


def _screen(form: LawForm, X: np.ndarray, y: np.ndarray, method: str, delta: float,
            bounds: np.ndarray, free: np.ndarray, starts: np.ndarray,
            continue_steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two passes over one problem from many starts: a few steps for every start, then the
    most promising share goes on (a start also stops once another has converged clearly
    below it). The published grid holds thousands of starts, most of them far from any
    optimum; the first pass is what tells them apart."""
    ones = np.ones((len(starts), y.size))
    theta, values, _ = solver.solve_batched(starts, X, np.broadcast_to(y, ones.shape), ones,
                                            method, delta, bounds, max_iter=SCREEN_STEPS,
                                            form=form, free=free)
    keep = np.argsort(np.where(np.isfinite(values), values, np.inf))[:N_CONTINUE]
    ones = np.ones((keep.size, y.size))
    return solver.solve_batched(theta[keep], X, np.broadcast_to(y, ones.shape), ones, method,
                                delta, bounds, max_iter=continue_steps,
                                groups=np.zeros(keep.size, dtype=int), form=form, free=free)


def _apply_held(starts: np.ndarray, free: np.ndarray, held: np.ndarray,
                bounds: np.ndarray) -> np.ndarray:
    out = starts.copy()
    out[:, ~free] = held[~free]
    return out


def _distinct_best(theta: np.ndarray, values: np.ndarray, k: int) -> list[int]:
    order = np.argsort(np.where(np.isfinite(values), values, np.inf))
    picks: list[int] = []
    for i in order:
        if len(picks) == k or not np.isfinite(values[i]):
            break
        if all(np.max(np.abs(theta[i] - theta[j])) > 1e-3 for j in picks):
            picks.append(int(i))
    return picks


@dataclass(frozen=True)
class Solution:
    theta: np.ndarray
    value: float
    converged: bool


def _multistart(form: LawForm, X: np.ndarray, y: np.ndarray, method: str, delta: float,
                bounds: np.ndarray, free: np.ndarray, starts: np.ndarray) -> list[Solution]:
    """The grid advanced together by the batched solver, then the best distinct candidates
    (within 5% of the best) refined by L-BFGS-B; sorted best first, converged ones ahead."""
    from scipy.optimize import minimize

    screened, values, lm_ok = _screen(form, X, y, method, delta, bounds, free, starts)
    order = np.argsort(np.where(np.isfinite(values), values, np.inf))
    if not np.isfinite(values[order[0]]):
        raise FitInputError("no starting point gives a finite objective")
    cutoff = values[order[0]] * (1 + _REFINE_MARGIN) + 1e-9
    candidates = [i for i in _distinct_best(screened, values, N_REFINE) if values[i] <= cutoff]
    # L-BFGS-B holds a parameter whose bounds meet, which is how fixed ones stay fixed.
    lbfgs_bounds = [(t, t) if not f else (lo, hi)
                    for f, t, (lo, hi) in zip(free, screened[candidates[0]], bounds, strict=True)]
    solutions = []
    for i in candidates:
        result = minimize(solver.value_and_grad, screened[i], args=(X, y, method, delta, form),
                          jac=True, method="L-BFGS-B", bounds=lbfgs_bounds,
                          options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-9})
        value = float(result.fun)
        no_better = value >= values[i] - 1e-9 * (1.0 + abs(values[i]))
        grad = np.where(free, np.asarray(result.jac, dtype=float), 0.0)
        at_low = (result.x <= bounds[:, 0] + 1e-12) & (grad > 0)
        at_high = (result.x >= bounds[:, 1] - 1e-12) & (grad < 0)
        projected = float(np.max(np.abs(np.where(at_low | at_high, 0.0, grad))))
        converged = bool(result.success or (lm_ok[i] and no_better)
                         or projected < 1e-5 * (1.0 + abs(value)))
        theta = np.asarray(result.x) if value <= values[i] else screened[i]
        solutions.append(Solution(theta, min(value, float(values[i])), converged))
    solutions.sort(key=lambda s: (not s.converged, s.value))
    return solutions


def _bootstrap(form: LawForm, X: np.ndarray, y: np.ndarray, solutions: list[Solution],
               method: str, delta: float, bounds: np.ndarray, free: np.ndarray, n_boot: int,
               seed: int, scheme: str, scales: Scales) -> tuple[np.ndarray, list[str]]:
    """Replicates (n_boot, P) of the natural parameters, NaN where a refit failed.

    Each resample is solved from the full-data optimum and from the next-best distinct
    solution (when there is one), together; the better of the two is kept, so a resample
    whose optimum moved to the other basin is not stuck in the first.
    """
    rng = np.random.default_rng(seed)
    n, n_free = y.size, int(free.sum())
    warnings = []
    if scheme == "pairs":
        counts, redrawn = pairs_resample_counts(n, n_boot, rng, min_distinct=n_free + 1)
        ys = np.broadcast_to(y, (n_boot, n))
        if redrawn > 0.2 * n_boot:
            warnings.append(f"bootstrap: {redrawn} of {n_boot} pairs resamples had too few "
                            "distinct points and were redrawn; intervals are coarse")
    else:
        counts = np.ones((n_boot, n))
        fitted = form.predict(solutions[0].theta, X)
        ys = residual_resample(y, fitted, np.broadcast_to(y, (n_boot, n)), method, rng,
                               n_params=n_free)
    origins = [solutions[0].theta] + [s.theta for s in solutions[1:2] if s.converged]
    starts = np.vstack([np.broadcast_to(t, (n_boot, len(t))) for t in origins])
    k = len(origins)
    theta, values, converged = solver.solve_batched(
        starts, X, np.vstack([ys] * k), np.vstack([counts] * k), method, delta, bounds,
        max_iter=300, groups=np.tile(np.arange(n_boot), k), form=form, free=free)
    values = values.reshape(k, n_boot)
    pick = np.argmin(np.where(np.isfinite(values), values, np.inf), axis=0)
    rows = pick * n_boot + np.arange(n_boot)
    ok = converged[rows] & np.isfinite(values[pick, np.arange(n_boot)])
    samples = np.full((n_boot, len(form.params)), np.nan)
    samples[ok] = scales.natural(form, theta[rows[ok]])
    failed = int((~ok).sum())
    if failed > 0.05 * n_boot:
        warnings.append(f"bootstrap: {failed}/{n_boot} resamples did not converge and were dropped")
    return samples, warnings


def _replicate_labels(n: np.ndarray, d: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    """Points with the same inputs (seeds of one configuration) share a label."""
    keys = np.column_stack([n, d] + ([] if u is None else [u]))
    _, labels = np.unique(np.round(np.log(keys), 9), axis=0, return_inverse=True)
    return labels.ravel()
