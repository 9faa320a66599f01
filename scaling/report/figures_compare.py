"""The overlay figure of ``dcsl compare``: two studies' losses against parameters at their
main budgets on one axes, study A solid with filled markers, study B dashed with hollow ones."""

from __future__ import annotations

from scaling.analysis.study import StudyAnalysis
from scaling.report.draw import fit_grid
from scaling.report.style import (
    LOSS_LABEL,
    DrawnFigure,
    legend,
    marker_handle,
    new_figure,
    plain_log_axis,
    recipe_color,
    recipe_marker,
    set_loss_limits,
)
from scaling.units import format_count


def overlay(a: StudyAnalysis, b: StudyAnalysis, labels: tuple[str, str]) -> DrawnFigure:
    drawn = new_figure("compare_loss_vs_params", 7.0, 5.6)
    axes = drawn.axes
    for analysis, label, line, filled in ((a, labels[0], "-", True), (b, labels[1], "--", False)):
        budget = analysis.main_budget
        scale = analysis.n_unit.scale
        for recipe, curve in (("standard", analysis.standard_curves.get(budget)),
                              ("regularized", analysis.regularized.get(budget)),
                              ("joint", analysis.joint.get(budget))):
            if curve is None or not len(curve.x):
                continue
            color, marker = recipe_color(recipe), recipe_marker(recipe)
            x = curve.x * scale  # in parameters, so two studies' units never differ
            axes.plot(x, curve.y, marker, color=color, ms=6, ls="none",
                      mfc=color if filled else "none", zorder=3)
            drawn.visible_y += list(curve.y)
            if curve.fit is not None and curve.fit.identifiable:
                grid = fit_grid(curve)
                axes.plot(grid * scale, curve.fit.predict(grid), line, color=color, lw=1.5, zorder=2)
            drawn.add_entry(marker_handle(color, marker, line), f"{label}: {recipe} at "
                            f"D = {format_count(budget)}")
    plain_log_axis(axes)
    axes.set_xscale("log")
    axes.set_xlabel("parameters N")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title(f"{labels[0]} (solid) and {labels[1]} (dashed)")
    set_loss_limits(drawn)
    legend(drawn, ncols=2)
    drawn.caption = (f"Loss against parameters at each study's main budget: {labels[0]} solid with "
                     f"filled markers, {labels[1]} dashed with hollow ones; lines are the identified "
                     "laws (standard best per size, regularized tuned per size, ensembles' "
                     "K-asymptotes).")
    return drawn


