"""The fits of a design simulation: many small, independent fits of simulated draws, each
with the analysis's own fitter and the study's bootstrap, spread over forked processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from functools import partial

import numpy as np

from scaling.fit.power_law import FitInputError, PowerLawFit, fit_power_law


def default_workers() -> int:
    """Processes for the fits: the cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def fit_all(tasks: list[tuple | None], workers: int, bootstrap: str = "residual",
            fit: Callable[..., object] | None = None) -> list:
    """``fit`` (by default the analysis's one-variable fit, with the study's `bootstrap`) of
    every task, in ``workers`` forked processes where the platform forks safely (Linux): the
    fits are independent and each costs tens of milliseconds of Python."""
    todo = [t for t in tasks if t is not None]
    fit = fit or partial(_fit, bootstrap=bootstrap)
    fitted: list = []
    if workers > 1 and len(todo) > 1 and sys.platform == "linux":
        try:
            with multiprocessing.get_context("fork").Pool(min(workers, len(todo))) as pool:
                fitted = pool.starmap(fit, todo, chunksize=max(1, len(todo) // (4 * workers)))
        except OSError:  # no processes here (a sandbox): fit in this one
            fitted = []
    if len(fitted) != len(todo):
        fitted = [fit(*t) for t in todo]
    results = iter(fitted)
    return [None if t is None else next(results) for t in tasks]


def _fit(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int,
         y_samples: np.ndarray | None = None, *, bootstrap: str = "residual") -> PowerLawFit | None:
    try:
        return fit_power_law(x, y, n_boot=n_boot if x.size >= 4 else 0, seed=seed,
                             bootstrap=bootstrap, y_samples=y_samples if x.size >= 4 else None)
    except FitInputError:
        return None  # too few points, or noise pushed a loss to <= 0: no fit, as in the analysis
