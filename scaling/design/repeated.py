"""Design review of the data-constrained law: can a recipe's planned runs identify R_D*?

The review first asks the analysis's own question (``scaling.analysis.repeated.needed_axes``:
enough sizes, budgets and epoch counts, some repeating the data); a recipe that fails it is
reported with what to vary, and nothing is simulated. Otherwise it draws losses from an
assumed law at exactly the planned (N, D, U) points, adds the seed-to-seed noise, refits
each draw with ``fit_data_constrained_law`` and counts how often R_D* comes out identified.

The assumed law is Muennighoff et al.'s shape scaled to the design: exponents 0.35, an
asymptote of 3 nats, the smallest size 0.4 nats above it and one epoch of the smallest
budget 0.6 nats above it; R_N* = 5.3 (theirs) and R_D* = 15 (theirs, 15.4), which a recipe
that overfits (the standard one) may well not reach: the review says what a design can
identify, not what a recipe will show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling.analysis.repeated import needed_axes
from scaling.design.fits import fit_all
from scaling.fit.bootstrap import derive_seed, json_number
from scaling.fit.forms import data_constrained_loss
from scaling.fit.joint import JointLawFit, fit_data_constrained_law
from scaling.fit.power_law import FitInputError

ASSUMED_ALPHA, ASSUMED_E, SIZE_GAP, DATA_GAP = 0.35, 3.0, 0.4, 0.6
ASSUMED_R_D, ASSUMED_R_N = 15.0, 5.3
# The 7-parameter fit costs about a second with its bootstrap: the review draws fewer.
MAX_SIMS, MAX_BOOT = 8, 30


@dataclass(frozen=True, eq=False)
class RepeatedSimulation:
    """How one recipe's data-constrained law fared over the simulated draws."""

    recipe: str
    n_points: int
    missing: tuple[str, ...]
    """What the design must vary before the law can be fitted (then nothing is simulated)."""
    truth: dict[str, float] = field(default_factory=dict)
    n_sims: int = 0
    identified: int = 0
    """Draws whose fit identified R_D."""
    median_R_D: float | None = None
    fits: tuple[JointLawFit | None, ...] = field(default=(), repr=False)

    @property
    def identified_share(self) -> float:
        return self.identified / self.n_sims if self.n_sims else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"recipe": self.recipe, "n_points": self.n_points, "missing": list(self.missing),
                "truth": self.truth, "n_sims": self.n_sims, "identified": self.identified,
                "identified_share": self.identified_share,
                "median_R_D": json_number(self.median_R_D)}


def assumed_law(points: np.ndarray) -> dict[str, float]:
    """Muennighoff et al.'s shape scaled to the planned points (N, D, U)."""
    n_min, u_min = float(points[:, 0].min()), float(points[:, 2].min())
    return {"E": ASSUMED_E, "A": SIZE_GAP * n_min**ASSUMED_ALPHA,
            "B": DATA_GAP * u_min**ASSUMED_ALPHA, "alpha": ASSUMED_ALPHA, "beta": ASSUMED_ALPHA,
            "R_D": ASSUMED_R_D, "R_N": ASSUMED_R_N}


def simulate_repeated(recipe: str, points: tuple | np.ndarray, *, noise: float, n_sims: int,
                      n_boot: int, seed: int, workers: int, bootstrap: str) -> RepeatedSimulation:
    """Check, and where the checks pass simulate, one recipe's planned (N, D, U) points."""
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    frame = pd.DataFrame({"n": pts[:, 0], "d": pts[:, 1], "u": pts[:, 2], "y": 1.0,
                          "epochs": pts[:, 1] / pts[:, 2]})
    missing = tuple(needed_axes(frame))
    if missing or n_sims < 1:
        return RepeatedSimulation(recipe, len(pts), missing)
    truth = assumed_law(pts)
    clean = data_constrained_loss(pts[:, 0], pts[:, 1], pts[:, 2], **truth)
    sims = min(n_sims, MAX_SIMS)
    label = f"design:repeated:{recipe}:{len(pts)}"
    rng = np.random.default_rng(derive_seed(seed, label))
    tasks = [(pts, clean + rng.normal(0.0, noise, clean.size), min(n_boot, MAX_BOOT),
              derive_seed(seed, f"{label}:{i}"), bootstrap) for i in range(sims)]
    fits = fit_all(tasks, workers, fit=_fit)
    done = [f for f in fits if f is not None]
    ok = [f for f in done if f.identified.get("R_D", False)]
    median = float(np.median([f.params["R_D"] for f in done])) if done else None
    return RepeatedSimulation(recipe, len(pts), (), truth, sims, len(ok), median, tuple(fits))


def _fit(points: np.ndarray, y: np.ndarray, n_boot: int, seed: int,
         bootstrap: str) -> JointLawFit | None:
    if not np.all(y > 0) or not all(math.isfinite(v) for v in y):
        return None
    try:
        return fit_data_constrained_law(points[:, 0], points[:, 1], points[:, 2], y,
                                        n_boot=n_boot, seed=seed, bootstrap=bootstrap)
    except FitInputError:
        return None
