"""Drawing one study curve with its fitted law, by rules that keep a figure honest.

- A law is drawn solid, with its bootstrap band and asymptote line, only when its fit is
  identified (`PowerLawFit.identifiable`); the asymptote line only when E's interval stays
  clear of 0 (else E is only bounded above, and a line would read as a known floor). A fit the data do not identify is drawn dashed grey,
  without band or asymptote, and its legend entry says "fit not identified" instead of a law;
  if its exponent sits at a bound (a flat line through rising points), it is not drawn at all.
- A fitted curve stops at `MAX_EXTRAPOLATION` times its largest x, and never starts below
  `x_floor` (K = 1 for member counts).
- Every kind of mark gets a legend entry, and every exponent is printed to 3 significant
  digits, so a visibly sloping line never reads "N^0.00".
"""

from __future__ import annotations

import numpy as np

from scaling.analysis.types import Curve
from scaling.fit.bootstrap import tex_number
from scaling.fit.power_law import PowerLawFit
from scaling.report.style import (
    NOT_IDENTIFIED_COLOR,
    DrawnFigure,
    band_handle,
    join_names,
    marker_handle,
)

MAX_EXTRAPOLATION = 2.0
ASYMPTOTE_KNOWN = 0.01
"""An E interval whose low end is below this share of the smallest point reaches ~0."""
"""A fitted curve is drawn up to this many times its largest data x, no further."""
_REACH_BELOW = 1.3  # and down to the smallest x divided by this (never below x_floor)
# Why a fit is not identified, from the warnings fit.py writes, said in a few words.
_NOT_IDENTIFIED_REASONS = (("points for 3 parameters: the asymptote", "too few points"),
                           ("exponent at its bound", "exponent at a bound"),
                           ("asymptote pushed to ~0", "no floor in the data"),
                           ("near-optimal solutions disagree", "E not pinned down"))


def exponent_text(alpha: float) -> str:
    """3 significant digits: 0.133, 0.00620, 1.15, 0.690 (never 0.00 for a sloping line)."""
    return f"{alpha:#.3g}"


def law_label(fit: PowerLawFit, symbol: str) -> str:
    """The law as mathtext for a legend: '$L = 8.68\\,/\\,N^{0.823} + 2.718$'."""
    return (f"$L = {tex_number(fit.A)}\\,/\\,{symbol}^{{{exponent_text(fit.alpha)}}}"
            f" + {tex_number(fit.E)}$")


def not_identified_reason(fit: PowerLawFit) -> str:
    """The first reason fit.py gave, in a few words ('' when it gave none we know)."""
    for pattern, short in _NOT_IDENTIFIED_REASONS:
        if any(pattern in w for w in fit.warnings):
            return short
    return ""


def exponent_at_bound(fit: PowerLawFit) -> bool:
    return any("exponent at its bound" in w for w in fit.warnings)


def fit_grid(curve: Curve, x_floor: float | None = None,
             x_max_factor: float = MAX_EXTRAPOLATION) -> np.ndarray:
    """x values a fitted curve is drawn over: a little below the data, at most x_max_factor
    (capped at MAX_EXTRAPOLATION) beyond the largest point, never below x_floor."""
    low = float(curve.x.min()) / _REACH_BELOW
    if x_floor is not None:
        low = max(low, x_floor)
    high = float(curve.x.max()) * min(x_max_factor, MAX_EXTRAPOLATION)
    return np.geomspace(low, high, 200)


def draw_curve(drawn: DrawnFigure, curve: Curve, color: str, label: str, *, marker: str = "o",
               x_floor: float | None = None, x_max_factor: float = MAX_EXTRAPOLATION,
               asymptote: bool = True, name: str | None = None) -> None:
    """Points of one curve and, by the rules above, its fitted law, band and asymptote.

    Adds one legend entry for the curve (its marker overlaid on its line and band) and
    records in `drawn` what was drawn, under `name` (default: the label), for the caption.
    """
    name = name or label
    axes = drawn.axes
    axes.plot(curve.x, curve.y, marker, color=color, markersize=6, linestyle="none", zorder=3)
    drawn.visible_y += [float(v) for v in curve.y]
    points = marker_handle(color, marker)
    fit = curve.fit
    if fit is None:
        drawn.not_fitted.append(name)
        drawn.add_entry(points, f"{label}: no law fitted")
        return
    grid = fit_grid(curve, x_floor, x_max_factor)
    fitted = fit.predict(grid)
    if fit.floorless:
        # A pure power law (E pushed to 0): it describes the points, but has no asymptote.
        axes.plot(grid, fitted, "-.", color=color, lw=1.5, zorder=2)
        drawn.visible_y += [float(v) for v in fitted]
        drawn.floorless.append(name)
        drawn.add_entry((marker_handle(color, "", "-.", 1.5), points),
                        f"{label}: no floor, power law {law_label(fit, curve.x_symbol)}")
        return
    if not fit.identifiable:
        if exponent_at_bound(fit):
            # a flat (or cliff-steep) line says nothing about the points: leave it out
            drawn.not_drawn.append(name)
            drawn.add_entry(points, f"{label}: fit not identified (exponent at a bound), "
                                    "not drawn")
            return
        reason = not_identified_reason(fit)
        text = f"{label}: fit not identified" + (f" ({reason})" if reason else "")
        axes.plot(grid, fitted, "--", color=NOT_IDENTIFIED_COLOR, lw=1.4, zorder=2)
        drawn.not_identified.append(name)
        drawn.add_entry((marker_handle(NOT_IDENTIFIED_COLOR, "", "--", 1.4), points), text)
        return
    axes.plot(grid, fitted, "-", color=color, lw=1.8, zorder=2)
    drawn.visible_y += [float(v) for v in fitted]
    handle: tuple = (marker_handle(color, "", "-", 1.8), points)
    if fit.samples is not None:
        low, high = fit.band(grid)
        if np.isfinite(low).any() and np.isfinite(high).any():
            axes.fill_between(grid, low, high, color=color, alpha=0.15, lw=0, zorder=1)
            drawn.bands.append(name)
            handle = (band_handle(color), *handle)
    drawn.laws.append(name)
    # An asymptote whose interval reaches 0 is only bounded above: a line at E would read as
    # a known floor (and could sit below a rival's identified one), so none is drawn.
    open_low = fit.intervals.get("E", (np.nan, np.nan))[0] < ASYMPTOTE_KNOWN * float(curve.y.min())
    if open_low:
        drawn.open_asymptotes.append(name)
    drawn.add_entry(handle, f"{label}: {law_label(fit, curve.x_symbol)}"
                    + (" (E's interval reaches 0)" if open_low else ""))
    # An asymptote far below every point (E near 0 but still "identified") would squash the
    # figure into a line; it is left out, and so is its mention in the caption.
    if asymptote and not open_low and fit.E > 0.5 * float(curve.y.min()):
        axes.axhline(fit.E, color=color, ls="--", lw=1.0, alpha=0.8, zorder=1)
        drawn.asymptotes.append(name)
        drawn.visible_y.append(float(fit.E))


def add_key_entries(drawn: DrawnFigure, level: float) -> None:
    """Legend entries that explain the shading and the dashed lines, when there are any."""
    if drawn.bands:
        drawn.add_entry(band_handle("#777777"), f"shaded: {level:.0%} bootstrap band of a fit")
    if drawn.asymptotes:
        drawn.add_entry(marker_handle("#444444", "", "--", 1.0),
                        "dashed, in a fit's colour: its asymptote E")


def law_caption(drawn: DrawnFigure, level: float) -> str:
    """Caption sentences for the laws on a figure, from what draw_curve actually drew."""
    parts = []
    if drawn.bands:
        parts.append(f"Shaded: {level:.0%} bootstrap bands of {_the_fits(drawn.bands)}.")
    if drawn.asymptotes:
        parts.append(f"Dashed horizontal lines: the asymptotes E of {_the_fits(drawn.asymptotes)}.")
    if drawn.open_asymptotes:
        one = len(drawn.open_asymptotes) == 1
        parts.append(f"No asymptote line for {_the_fits(drawn.open_asymptotes)}: "
                     f"{'its' if one else 'their'} E's interval reaches 0, so E is only bounded "
                     "above.")
    if drawn.not_identified:
        one = len(drawn.not_identified) == 1
        parts.append(f"Grey dashed: {_the_fits(drawn.not_identified)}, which the data do not "
                     f"identify; {'it is not a law' if one else 'they are not laws'}, and no "
                     "asymptote is read from " + ("it." if one else "them."))
    if drawn.floorless:
        one = len(drawn.floorless) == 1
        parts.append(f"Dash-dotted: {_the_fits(drawn.floorless)}, whose points show no floor: "
                     f"{'its' if one else 'their'} asymptote is pushed to 0, so "
                     f"{'it is' if one else 'they are'} pure power "
                     f"law{'' if one else 's'} without an asymptote or band.")
    if drawn.not_drawn:
        one = len(drawn.not_drawn) == 1
        parts.append(f"Not drawn: {_the_fits(drawn.not_drawn)}, whose exponent sits at a bound "
                     f"of its range (the data do not determine {'it' if one else 'them'}).")
    if drawn.not_fitted:
        parts.append(f"Points only, no law fitted: {join_names(drawn.not_fitted)}.")
    if drawn.laws or drawn.not_identified or drawn.floorless:
        parts.append(f"Fitted curves stop at {MAX_EXTRAPOLATION:g}x the largest data x.")
    return " ".join(parts)


def _the_fits(names: list[str]) -> str:
    """'the regularized fit', 'the 16k and 50k fits'."""
    return f"the {join_names(names)} fit{'s' if len(set(names)) > 1 else ''}"
