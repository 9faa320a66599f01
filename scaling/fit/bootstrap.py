"""Bootstrap refits and the value-with-interval type used for every derived number.

A pairs-bootstrap resample draws n (x, y) pairs with replacement. Fitting the resample is the
same as fitting the original points weighted by how often each was drawn, so a resample is
represented by a row of multiplicities ("counts"); the batched solver then fits all resamples
at once over the same x. A residual-bootstrap replicate keeps every x and perturbs y with
resampled residuals (counts all one).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from scaling.fit import solver as _solver
from scaling.fit.checks import few_degrees_of_freedom

BOOTSTRAPS = ("pairs", "residual")
DEFAULT_N_BOOT = 1000
DEFAULT_LEVEL = 0.95


def derive_seed(seed: int, label: str) -> int:
    """A stable per-curve seed: the same study seed and curve label always give the same draws,
    whichever other curves the study happens to contain."""
    return int(np.random.SeedSequence([seed, zlib.crc32(label.encode())]).generate_state(1)[0])


def pairs_resample_counts(
    n_points: int, n_boot: int, rng: np.random.Generator, min_distinct: int = 3
) -> tuple[np.ndarray, int]:
    """Multiplicities (n_boot, n_points) of pairs-bootstrap resamples, and how many were redrawn.

    A resample with fewer than `min_distinct` distinct points cannot identify a three-parameter
    law at all, so it is redrawn rather than fitted: the intervals are then conditional on the
    resample being fittable, which is the usual convention and is stated in the fit's warnings
    when it matters.
    """
    counts = rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_boot)
    redrawn = 0
    for _ in range(100):
        bad = np.flatnonzero((counts > 0).sum(axis=1) < min_distinct)
        if bad.size == 0:
            break
        redrawn += bad.size
        counts[bad] = rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=bad.size)
    return counts.astype(float), redrawn


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of the non-NaN samples; infinite samples count (as unbounded ends)."""
    values = np.asarray(samples, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    # method="lower"/"higher" keep +inf samples from turning into NaN through interpolation
    low = float(np.percentile(values, tail, method="lower"))
    high = float(np.percentile(values, 100.0 - tail, method="higher"))
    return (low, high)


def bootstrap_fits(
    lu: np.ndarray, y: np.ndarray, theta: np.ndarray, x_ref: float, method: str, delta: float,
    bounds: np.ndarray, n_boot: int, seed: int, y_samples: np.ndarray | None, scheme: str,
) -> tuple[np.ndarray | None, list[str]]:
    """Refit the law on n_rep bootstrap replicates; rows (A, alpha, E), NaN where one failed.

    theta is the full-data optimum in the solver's parametrisation (x scaled by x_ref). The
    replicates are pairs resamples or residual resamples (scheme), of (x, y) or, when
    y_samples is given, of (x, y_samples[b]) for replicate b.
    """
    n = y.size
    if y_samples is not None:
        ys = np.asarray(y_samples, dtype=float).reshape(-1, n)
    else:
        ys = np.broadcast_to(y, (n_boot, n))
    n_rep = ys.shape[0]
    if n < 4:
        return None, [f"bootstrap skipped: {n} points leave no residual information "
                      "(need >= 4)"]
    rng = np.random.default_rng(seed)
    warnings = []
    if (few := few_degrees_of_freedom(n)) is not None:
        warnings.append(few)
    if scheme == "pairs":
        counts, redrawn = pairs_resample_counts(n, n_rep, rng)
        if redrawn > 0.2 * n_rep:
            warnings.append(f"bootstrap: {n} points, so {redrawn} pairs resamples had < 3 "
                            "distinct points and were redrawn; intervals are coarse")
    else:
        counts = np.ones((n_rep, n))
        fitted_y = _solver.predict(theta, lu)
        ys = residual_resample(y, fitted_y, ys, method, rng)
    usable = np.all(np.isfinite(ys) & (ys > 0), axis=1)
    safe_y = np.where(usable[:, None], ys, 1.0)
    # Two starts per resample, solved together: the full-data optimum (where most resamples
    # end up), and a floorless power law fitted to the resample. The second matters when a
    # resample lacks the points that pin the asymptote: its optimum is then E -> 0, which a
    # warm start only reaches after a long crawl along a flat valley.
    starts = np.vstack([np.broadcast_to(theta, (n_rep, 3)),
                        _floorless_starts(lu, safe_y, counts, bounds)])
    fitted, values, converged = _solver.solve_batched(
        starts, lu, np.vstack([safe_y, safe_y]), np.vstack([counts, counts]), method, delta,
        bounds, max_iter=500, groups=np.tile(np.arange(n_rep), 2))
    second = values[n_rep:] < values[:n_rep]
    fitted = np.where(second[:, None], fitted[n_rep:], fitted[:n_rep])
    converged = np.where(second, converged[n_rep:], converged[:n_rep])
    ok = usable & converged
    samples = np.full((n_rep, 3), np.nan)
    samples[ok, 0] = np.exp(fitted[ok, 0] + fitted[ok, 1] * math.log(x_ref))
    samples[ok, 1] = fitted[ok, 1]
    samples[ok, 2] = np.exp(fitted[ok, 2])
    failed = int((usable & ~converged).sum())
    if failed > 0.05 * n_rep:
        warnings.append(f"bootstrap: {failed}/{n_rep} resamples did not converge and were dropped")
    if (~usable).sum() > 0.05 * n_rep:
        warnings.append(f"bootstrap: {int((~usable).sum())}/{n_rep} upstream replicates had no "
                        "value and were dropped")
    return samples, warnings


def residual_resample(y: np.ndarray, fitted_y: np.ndarray, ys: np.ndarray, method: str,
                      rng: np.random.Generator, n_params: int = 3) -> np.ndarray:
    """Residual-bootstrap responses: each replicate's centre plus resampled residuals.

    Residuals live where the fit measures them (log loss for huber-log, raw loss for
    least-squares), are centred and inflated by sqrt(n / (n - p)) because p fitted
    parameters (three for a one-variable law) shrink them. A replicate's centre is the
    fitted curve shifted by that replicate's upstream deviation (ys - y), so propagated
    stages keep their upstream noise.
    """
    n = y.size
    inflate = math.sqrt(n / (n - n_params))
    pick = rng.integers(0, n, size=ys.shape)
    if method == "huber-log":
        res = np.log(y / fitted_y)
        res = (res - res.mean()) * inflate
        return fitted_y * (ys / y) * np.exp(res[pick])
    res = (y - fitted_y - np.mean(y - fitted_y)) * inflate
    return fitted_y + (ys - y) + res[pick]


def _floorless_starts(lu: np.ndarray, y: np.ndarray, counts: np.ndarray,
                      bounds: np.ndarray) -> np.ndarray:
    """Per-resample weighted log-log line (E at its floor): theta rows for solve_batched."""
    w = counts / counts.sum(axis=1, keepdims=True)
    mean_lu = w @ lu
    log_y = np.log(y)
    mean_ly = np.sum(w * log_y, axis=1)
    centred = lu[None, :] - mean_lu[:, None]
    slope = np.sum(w * centred * (log_y - mean_ly[:, None]), axis=1) / np.maximum(
        np.sum(w * centred**2, axis=1), 1e-300)
    starts = np.column_stack([mean_ly + slope * mean_lu, -slope,
                              np.full_like(slope, bounds[2, 0])])
    return np.clip(starts, bounds[:, 0], bounds[:, 1])


@dataclass(frozen=True, eq=False)
class Estimate:
    """A number with its bootstrap percentile interval (NaN ends when there was no bootstrap).

    `samples` holds the bootstrap replicates, aligned by replicate index with every other
    estimate of the same analysis so that later stages can propagate them.
    """

    value: float
    low: float = math.nan
    high: float = math.nan
    samples: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_samples(
        cls, value: float, samples: np.ndarray | None, level: float = DEFAULT_LEVEL
    ) -> Estimate:
        if samples is None:
            return cls(float(value))
        low, high = percentile_interval(samples, level)
        return cls(float(value), low, high, np.asarray(samples, dtype=float))

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def unbounded(self) -> bool:
        return math.isinf(self.value)

    def format(self, digits: int = 3) -> str:
        """'3.412 [3.380, 3.455]'; infinities read as 'unbounded'."""
        text = _format_number(self.value, digits)
        if self.has_interval:
            text += f" [{_format_number(self.low, digits)}, {_format_number(self.high, digits)}]"
        return text

    def to_dict(self) -> dict[str, float | None | str]:
        return {"value": json_number(self.value), "low": json_number(self.low),
                "high": json_number(self.high)}


def _format_number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "unbounded" if value > 0 else "-unbounded"
    if 0 < abs(value) < 1e-6:
        # what a bound-pinned asymptote (E -> 0) looks like; the digits carry no meaning
        return "~0"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) >= 10 else f"{value:.{digits}f}"


def format_number(value: float, digits: int = 3) -> str:
    """Human formatting used by tables and legends: NaN -> 'n/a', inf -> 'unbounded'."""
    return _format_number(float(value), digits)


def tex_number(value: float, digits: int = 3) -> str:
    """format_number as matplotlib mathtext, for legends: '1.18e+03' -> '1.18\\times10^{3}'."""
    text = format_number(value, digits)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}\\times10^{{{int(exponent)}}}"
    return text.replace("~", "")  # "~" is a space in mathtext; an E pinned at ~0 reads 0


def json_number(value: float | None) -> float | None | str:
    """Strict-JSON friendly float: NaN -> null, +/-inf -> "inf"/"-inf"."""
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)
