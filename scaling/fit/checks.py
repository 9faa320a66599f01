"""What a law's x values alone say, before any loss is measured.

The fit prints these warnings about its points, and ``dcsl sweep plan``'s design review prints
them about the x values a study plans, from these same functions: so the review and the fit
cannot disagree on them (the review once passed a size span that the fit then warned about,
because one counted non-embedding parameters and the other all of them).
"""

from __future__ import annotations

import math

import numpy as np

MIN_POINTS = 4
MIN_DECADES = 1.0


def too_few_points(n: int, n_params: int = 3) -> str | None:
    """Too few points to identify an asymptote: the curve interpolates them."""
    if n >= n_params + 1:
        return None
    return (f"{n} points for {n_params} parameters: the asymptote is not identifiable "
            "(the curve interpolates the points)")


def few_degrees_of_freedom(n: int, n_params: int = 3) -> str | None:
    """One residual degree of freedom: the bootstrap has almost nothing to resample."""
    if n != n_params + 1:
        return None
    return (f"{n} points for {n_params} parameters leave 1 residual degree of freedom: "
            "bootstrap intervals are likely too narrow")


def narrow_span(x: np.ndarray, symbol: str = "x") -> str | None:
    """Points within one decade: the exponent and the asymptote trade off."""
    xs = np.asarray(x, dtype=float)
    decades = math.log10(float(xs.max() / xs.min()))
    if decades >= MIN_DECADES:
        return None
    return f"{symbol} spans {decades:.2f} decades (< 1): exponent and asymptote trade off"


def planned_warnings(x: np.ndarray | tuple, symbol: str = "x") -> list[str]:
    """Every warning the one-variable fit will give about these x values, whatever the losses."""
    xs = np.asarray(x, dtype=float)
    found = [too_few_points(xs.size), few_degrees_of_freedom(xs.size),
             narrow_span(xs, symbol) if xs.size > 1 else None]
    return [w for w in found if w]
