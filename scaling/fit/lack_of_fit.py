"""Is the law's form wrong? Lack-of-fit checks on a fit's residuals.

A fit can converge, identify every parameter and report tight intervals while describing
the points with the wrong curve: a one-variable law in epochs fitted to losses that follow
the data-constrained law does exactly that, and its intervals then exclude the truth. Three
checks, each run where the data allow it:

- ``replicates``: the classical lack-of-fit F test. Where some inputs were measured more
  than once (seeds), the spread within those groups is pure error; residuals of the group
  means beyond it are lack of fit.
- ``noise``: the residuals against a known per-point noise (the seed-to-seed noise a study
  measures from its ensemble members, or propagated bootstrap spread): the sum of squared
  standardised residuals is chi-square with n - p degrees of freedom when the form is right.
- ``runs``: a Wald-Wolfowitz runs test on the residuals' signs, ordered along the input (or
  the fitted loss, for laws of several inputs): a form that bends the wrong way leaves long
  runs of one sign (needs >= 10 points; reported below p = 0.001).

Residuals are measured on the raw loss (nats), where noise is measured. A check reports a
lack of fit below ``LACK_OF_FIT_P`` (and, for the noise check, residuals at least 1.5 times
the noise, so a negligible misfit that is merely statistically detectable stays quiet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LACK_OF_FIT_P = 0.01
# The runs test assumes residuals independent along the ordering, which a fitted curve only
# roughly leaves them: it speaks only when its evidence is strong.
RUNS_P = 0.001
MIN_RUNS_POINTS = 10
# The noise check also needs the residuals' RMS this many times the noise.
MIN_EXCESS = 1.5


@dataclass(frozen=True)
class LackOfFit:
    """The outcome of the lack-of-fit checks that could be run on one fit."""

    tests: tuple[tuple[str, float, float], ...]
    """(check, statistic, p-value) for every check run: replicates, noise, runs."""
    rms: float
    """Root mean square of the residuals, in nats."""
    noise: float | None
    """The typical per-point noise the residuals were compared with (None: none known)."""
    detected: bool
    message: str
    """One line: what was found, or which checks passed (or why none could run)."""

    def to_dict(self) -> dict[str, object]:
        return {"detected": self.detected, "rms": self.rms, "noise": self.noise,
                "tests": [{"test": t, "statistic": s, "p_value": p} for t, s, p in self.tests],
                "message": self.message}


def lack_of_fit(y: np.ndarray, fitted: np.ndarray, n_params: int, *,
                noise: float | np.ndarray | None = None, order: np.ndarray | None = None,
                groups: np.ndarray | None = None) -> LackOfFit:
    """Check the residuals y - fitted of a fit with `n_params` free parameters.

    `noise`: per-point (or one) standard deviation of y in nats, when it is known. `order`:
    the values to sort residuals by for the runs test (the main input). `groups`: a label
    per point; points sharing one are replicates of the same inputs.
    """
    y, fitted = np.asarray(y, dtype=float), np.asarray(fitted, dtype=float)
    resid = y - fitted
    n = resid.size
    rms = float(np.sqrt(np.mean(resid**2))) if n else math.nan
    tests: list[tuple[str, float, float]] = []
    found: list[str] = []
    if groups is not None:
        result = _replicates(resid, np.asarray(groups), n_params)
        if result is not None:
            tests.append(("replicates", *result))
            if result[1] < LACK_OF_FIT_P:
                found.append(f"the residuals of repeated points exceed their spread across "
                             f"seeds (F = {result[0]:.3g}, p {_p_text(result[1])})")
    typical = None
    if noise is not None:
        sigma = np.broadcast_to(np.asarray(noise, dtype=float), resid.shape)
        usable = np.isfinite(sigma) & (sigma > 0)
        dof = int(usable.sum()) - n_params
        if dof > 0:
            typical = float(np.sqrt(np.mean(sigma[usable] ** 2)))
            chi2 = float(np.sum((resid[usable] / sigma[usable]) ** 2))
            p = float(stats.chi2.sf(chi2, dof))
            tests.append(("noise", chi2, p))
            if p < LACK_OF_FIT_P and rms >= MIN_EXCESS * typical:
                found.append(f"residuals (RMS {rms:.3g} nats) are {rms / typical:.1f}x the "
                             f"measured noise ({typical:.3g}; chi2 = {chi2:.3g} on {dof} dof, "
                             f"p {_p_text(p)})")
    if n >= MIN_RUNS_POINTS:
        result = _runs(resid if order is None else resid[np.argsort(order, kind="stable")])
        if result is not None:
            tests.append(("runs", *result))
            if result[1] < RUNS_P:
                found.append(f"the residuals' signs come in long runs along the input (runs "
                             f"test z = {result[0]:.2f}, p {_p_text(result[1])}): the curve "
                             "bends differently from the points")
    if found:
        message = "lack of fit: " + "; ".join(found) + ": this law's form does not describe the points"
    elif tests:
        parts = []
        for test, _, p in tests:
            text = f"{test} p {_p_text(p)}"
            if test == "noise" and p < LACK_OF_FIT_P and typical is not None:
                text += f", but the residuals are only {rms / typical:.1f}x the noise"
            parts.append(text)
        message = "no lack of fit detected (" + "; ".join(parts) + ")"
    else:
        message = ("lack of fit not tested: no replicates, no known noise and fewer than "
                   f"{MIN_RUNS_POINTS} points")
    return LackOfFit(tuple(tests), rms, typical, bool(found), message)


def _replicates(resid: np.ndarray, groups: np.ndarray,
                n_params: int) -> tuple[float, float] | None:
    """(F, p) of the lack-of-fit F test, or None without enough replicates."""
    labels, index = np.unique(groups, return_inverse=True)
    c, n = labels.size, resid.size
    if c == n or c <= n_params or n <= c:
        return None
    means = np.bincount(index, weights=resid) / np.bincount(index)
    pure = float(np.sum((resid - means[index]) ** 2))
    lack = float(np.sum(np.bincount(index) * means**2))
    if pure <= 0:
        return None
    f = (lack / (c - n_params)) / (pure / (n - c))
    return f, float(stats.f.sf(f, c - n_params, n - c))


def _runs(resid: np.ndarray) -> tuple[float, float] | None:
    """(z, one-sided p) of too few sign runs, or None when all residuals share a sign."""
    signs = resid[resid != 0] > 0
    n_pos, n_neg = int(signs.sum()), int((~signs).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    runs = 1 + int(np.sum(signs[1:] != signs[:-1]))
    n = n_pos + n_neg
    mean = 2.0 * n_pos * n_neg / n + 1.0
    var = 2.0 * n_pos * n_neg * (2.0 * n_pos * n_neg - n) / (n**2 * (n - 1))
    if var <= 0:
        return None
    z = (runs - mean) / math.sqrt(var)
    return z, float(stats.norm.cdf(z))


def _p_text(p: float) -> str:
    """'= 0.012' or '< 1e-4', to follow a 'p'."""
    return f"= {p:.2g}" if p >= 1e-4 else "< 1e-4"
