"""The building blocks of a study analysis: settings, curves, best runs and multipliers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.fit.bootstrap import DEFAULT_LEVEL, DEFAULT_N_BOOT, Estimate, derive_seed
from scaling.fit.power_law import FitInputError, PowerLawFit, fit_power_law
from scaling.units import format_count


@dataclass(frozen=True)
class Settings:
    """How the analysis was run; recorded in every report."""

    method: str = "huber-log"
    n_boot: int = DEFAULT_N_BOOT
    seed: int = 0
    level: float = DEFAULT_LEVEL
    x_column: str = "n_params"
    rule: str = "logit-mean"
    bootstrap: str = "pairs"
    noise: float | None = None
    """The seed-to-seed noise of a loss (nats) that every fit's lack-of-fit check compares its
    residuals with: given, or measured from the study's ensemble members (None: unknown)."""


@dataclass(frozen=True, eq=False)
class Curve:
    """The points of one study curve and, when it could be fitted, its law."""

    name: str
    recipe: str
    x_symbol: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    point_labels: tuple[str, ...] = ()
    budget: int | None = None
    size: str | None = None
    fit: PowerLawFit | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def asymptote(self) -> Estimate | None:
        """E with its (propagated) bootstrap interval; None when the curve was not fitted or
        its asymptote is not identifiable (too few points: the fit's warnings say why), so
        no derived number (a double limit, a multiplier) is built on it."""
        if self.fit is None or not self.fit.identifiable:
            return None
        samples = None if self.fit.samples is None else self.fit.samples[:, 2]
        return Estimate.from_samples(self.fit.E, samples, self.fit.level)


@dataclass(frozen=True)
class BestRun:
    """The standard recipe's value at one budget: its best succeeded run over all sizes."""

    loss: float
    size: str
    run_id: str


@dataclass(frozen=True, eq=False)
class Multiplier:
    """How many times more data the standard recipe needs to match `recipe` at `budget`."""

    recipe: str
    budget: int
    loss: Estimate
    standard_loss: float
    value: Estimate

    @property
    def unbounded(self) -> bool:
        """The recipe's loss is at or below the standard law's asymptote: no amount of data
        lets the standard recipe reach it."""
        return self.value.unbounded


def fit_curve(
    name: str, recipe: str, x_symbol: str, x: np.ndarray, y: np.ndarray,
    point_labels: tuple[str, ...], settings: Settings, *, budget: int | None = None,
    size: str | None = None, y_samples: np.ndarray | None = None, what: str = "points",
) -> Curve:
    """Fit one curve, turning every failure into a warning on the returned Curve.

    The lack-of-fit check compares the residuals with `settings.noise`; a point that carries
    upstream replicates (`y_samples`) adds their spread to it.
    """
    warnings: list[str] = []
    law = None
    if len(x) < 3:
        warnings.append(f"{len(x)} {what}, need >= 3 to fit")
    else:
        try:
            law = fit_power_law(x, y, method=settings.method, n_boot=settings.n_boot,
                                seed=derive_seed(settings.seed, name), level=settings.level,
                                bootstrap=settings.bootstrap,
                                y_samples=y_samples if settings.n_boot > 0 else None,
                                noise=point_noise(settings.noise, y_samples))
            warnings += law.warnings
        except FitInputError as exc:
            warnings.append(f"not fitted: {exc}")
    return Curve(name=name, recipe=recipe, x_symbol=x_symbol, x=np.asarray(x, dtype=float),
                 y=np.asarray(y, dtype=float), point_labels=point_labels, budget=budget,
                 size=size, fit=law, warnings=warnings)


def point_noise(noise: float | None, y_samples: np.ndarray | None) -> float | np.ndarray | None:
    """Each point's noise: the seed-to-seed noise, plus the spread of its upstream replicates."""
    if noise is None:
        return None
    if y_samples is None:
        return noise
    with np.errstate(invalid="ignore"):
        spread = np.nanvar(np.asarray(y_samples, dtype=float), axis=0)
    return np.sqrt(noise**2 + np.where(np.isfinite(spread), spread, 0.0))


def budget_label(budget: int) -> str:
    return f"D={format_count(budget)}"


