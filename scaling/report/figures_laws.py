"""Figures of fitted laws: loss over parameters, over ensemble members, joint scaling and data
scaling. Each function draws one figure and returns it unsaved, with its caption written from
what was drawn (see scaling.report.draw for the rules a law must pass to be drawn solid)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scaling.analysis.study import StudyAnalysis
from scaling.analysis.types import Curve
from scaling.report.draw import add_key_entries, draw_curve, law_caption
from scaling.report.style import (
    LABEL_BOX,
    LOSS_LABEL,
    DrawnFigure,
    finish_budget_axes,
    join_names,
    legend,
    marker_handle,
    new_figure,
    plain_log_axis,
    recipe_color,
    recipe_marker,
    set_loss_limits,
)
from scaling.units import format_count

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from scaling.fit.bootstrap import Estimate

DATA_LAW_LABELS = {"standard": "standard (best run)", "regularized": "regularized (N-asymptote)",
                   "joint": "ensembles (double limit)"}


def loss_vs_params(analysis: StudyAnalysis, budget: int) -> DrawnFigure:
    """Per-size standard, regularized and infinite-ensemble losses at one budget."""
    drawn = new_figure(f"loss_vs_params_{format_count(budget)}")
    axes, level = drawn.axes, analysis.settings.level
    shown = []
    standard = analysis.standard_curves.get(budget)
    if standard is not None:
        draw_curve(drawn, standard, recipe_color("standard"), "standard (best run per size)",
                   marker=recipe_marker("standard"), name="standard")
        shown.append("the best standard run per size")
        best = analysis.best_standard[budget]
        axes.axhline(best.loss, color=recipe_color("standard"), ls=":", lw=1.0)
        drawn.add_entry(marker_handle(recipe_color("standard"), "", ":", 1.0),
                        f"dotted: best standard run, {best.loss:.3f} ({best.size})")
    if budget in analysis.regularized:
        draw_curve(drawn, analysis.regularized[budget], recipe_color("regularized"),
                   "regularized (tuned per size)", marker=recipe_marker("regularized"),
                   name="regularized")
        shown.append("the tuned regularized loss per size")
    if budget in analysis.joint:
        draw_curve(drawn, analysis.joint[budget], recipe_color("joint"),
                   "ensembles (K-asymptote per size)", marker=recipe_marker("joint"),
                   name="ensembles")
        shown.append("each size's infinite-ensemble (K-asymptote) loss")
    add_key_entries(drawn, level)
    plain_log_axis(axes)
    axes.set_xlabel(analysis.n_unit.axis_label("parameters"))
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title(f"Loss vs parameters, D = {format_count(budget)} tokens", fontsize=10)
    set_loss_limits(drawn)
    legend(drawn)
    caption = f"Loss against parameters at D = {format_count(budget)} tokens: {join_names(shown)}"
    caption += ("; the dotted line is the best standard run over all sizes."
                if standard is not None else ".")
    drawn.caption = _join(caption, law_caption(drawn, level))
    return drawn


def loss_vs_members(analysis: StudyAnalysis, budget: int) -> DrawnFigure:
    """Ensemble loss over members K, one curve per size; fits never reach below K = 1."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    drawn = new_figure(f"loss_vs_members_{format_count(budget)}")
    curves = [c for (b, _), c in analysis.ensembles.items() if b == budget]
    palette = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(curves), 1)))
    for curve, color in zip(curves, palette, strict=False):
        draw_curve(drawn, curve, to_hex(color), str(curve.size), marker="o", x_floor=1.0)
    add_key_entries(drawn, analysis.settings.level)
    plain_log_axis(drawn.axes)
    drawn.axes.set_xlabel("ensemble members K")
    drawn.axes.set_ylabel(LOSS_LABEL)
    drawn.axes.set_title(f"Loss vs ensemble members, D = {format_count(budget)} tokens",
                         fontsize=10)
    set_loss_limits(drawn)
    legend(drawn)
    caption = (f"Ensemble loss against members K for each size at D = {format_count(budget)} "
               "tokens, fitted over K; a fit's asymptote is that size's infinite-ensemble loss.")
    drawn.caption = _join(caption, law_caption(drawn, analysis.settings.level))
    return drawn


def joint_scaling(analysis: StudyAnalysis) -> DrawnFigure:
    """Each budget's K-asymptotes over parameters; the asymptote is the double limit."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    drawn = new_figure("joint_scaling")
    palette = colormaps["plasma"](np.linspace(0.0, 0.8, max(len(analysis.joint), 1)))
    for (budget, curve), color in zip(analysis.joint.items(), palette, strict=False):
        draw_curve(drawn, curve, to_hex(color), f"D={format_count(budget)}", marker="D")
    add_key_entries(drawn, analysis.settings.level)
    plain_log_axis(drawn.axes)
    drawn.axes.set_xlabel(analysis.n_unit.axis_label("parameters"))
    drawn.axes.set_ylabel("K-asymptote loss (nats/token)")
    drawn.axes.set_title("Joint scaling: infinite-ensemble loss vs parameters", fontsize=10)
    set_loss_limits(drawn)
    legend(drawn)
    caption = ("Joint scaling: each size's infinite-ensemble (K-asymptote) loss against "
               "parameters, fitted per budget; an identified fit's asymptote is the double "
               "limit (infinitely many infinitely large members).")
    drawn.caption = _join(caption, law_caption(drawn, analysis.settings.level))
    return drawn


def data_scaling(analysis: StudyAnalysis) -> DrawnFigure:
    """Every recipe's value at every budget it has one, its data law where one was fitted,
    and effective-data multipliers where the standard data law is identified."""
    drawn = new_figure("data_scaling", 7.0, 5.6)
    axes, level = drawn.axes, analysis.settings.level
    values = analysis.recipe_values()
    order = [r for r in DATA_LAW_LABELS if r in values] + sorted(set(values) - set(DATA_LAW_LABELS))
    with_intervals = False
    for recipe in order:
        per_budget = values[recipe]
        budgets = sorted(per_budget)
        curve = analysis.data_laws.get(recipe)
        if curve is None or sorted(int(x) for x in curve.x) != budgets:
            # a recipe without a data law (a distillation recipe) is drawn as its points
            curve = Curve(name=recipe, recipe=recipe, x_symbol="D",
                          x=np.asarray(budgets, dtype=float),
                          y=np.asarray([per_budget[b].value for b in budgets]))
        color = recipe_color(recipe)
        draw_curve(drawn, curve, color, DATA_LAW_LABELS.get(recipe, f"{recipe} (best student)"),
                   marker=recipe_marker(recipe), name=recipe)
        with_intervals |= _interval_bars(axes, per_budget, color)
    if with_intervals:
        drawn.add_entry(marker_handle("#444444", "|", "none"),
                        f"bars: {level:.0%} bootstrap interval of a value")
    add_key_entries(drawn, level)
    multiplier_note = _annotate_multipliers(drawn, analysis, values)
    finish_budget_axes(drawn, list(analysis.budgets), "Data scaling laws", "effective-data multipliers")
    caption = ("Each recipe's value at every data budget where it has one (standard: best run; "
               "regularized: asymptote over parameters; ensembles: double limit; distillation: "
               "best student), fitted over D where a recipe has values at 3 or more budgets.")
    if with_intervals:
        caption += f" Vertical bars: {level:.0%} bootstrap intervals of the values."
    drawn.caption = _join(caption, law_caption(drawn, level), multiplier_note)
    return drawn


def _interval_bars(axes: Axes, per_budget: dict[int, Estimate], color: str) -> bool:
    """Error bars for the values that have a bootstrap interval; True when any was drawn."""
    rows = [(b, e.value, e.low, e.high) for b, e in sorted(per_budget.items())
            if e.has_interval and np.isfinite(e.low) and np.isfinite(e.high)]
    if not rows:
        return False
    x, y, low, high = (np.asarray(column, dtype=float) for column in zip(*rows, strict=True))
    spread = np.vstack([np.maximum(y - low, 0.0), np.maximum(high - y, 0.0)])
    axes.errorbar(x, y, yerr=spread, fmt="none", ecolor=color, elinewidth=1.0, capsize=2.5,
                  alpha=0.8, zorder=2)
    return True


def _annotate_multipliers(drawn: DrawnFigure, analysis: StudyAnalysis,
                          values: dict[str, dict[int, Estimate]]) -> str:
    """Label each recipe's point with its multiplier; returns the caption's sentence on them.

    A multiplier inverts the standard data law, so it is shown only when that law is
    identified, or is a pure power law (no floor): read off a law the data do not pin down,
    the number would mean nothing.
    """
    if not analysis.multipliers:
        return ""
    standard_law = analysis.data_laws.get("standard")
    fit = standard_law.fit if standard_law is not None else None
    if fit is None or not (fit.identifiable or fit.floorless):
        return ("No effective-data multipliers are shown: the standard data law they would be "
                "read from is not identified.")
    for multiplier in analysis.multipliers:
        estimate = values.get(multiplier.recipe, {}).get(multiplier.budget)
        if estimate is None:
            continue
        text = "unbounded" if multiplier.unbounded else f"{multiplier.value.value:.3g}x"
        drawn.axes.annotate(text, (multiplier.budget, estimate.value), textcoords="offset points",
                            xytext=(7, -3), fontsize=7.5, color=recipe_color(multiplier.recipe),
                            bbox=LABEL_BOX)
        drawn.annotations.append(f"{multiplier.recipe} at {format_count(multiplier.budget)}")
    if not drawn.annotations:
        return ""
    note = (" They invert a standard data law without a floor, which a floor would only raise."
            if fit.floorless else "")
    return ("Labels: effective-data multipliers against the standard recipe at the same budget "
            "(how many times more data the standard recipe would need to reach that loss)." + note)


def _join(*sentences: str) -> str:
    return " ".join(s for s in sentences if s)
