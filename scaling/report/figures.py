"""The study's figures, each saved as PNG and PDF with a caption written from what it shows.

The pieces, one job each: `style` (colours, axes, legend, saving), `draw` (drawing a curve
and its fitted law honestly), `figures_laws` (figures of fitted laws), `figures_data`
(repeated data and compute) and `figures_evals` (distillation and downstream figures, no
laws). This module only decides which figures a study has data for, in report order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from scaling.analysis.study import StudyAnalysis
from scaling.report.figures_data import (
    learning_curves,
    loss_vs_compute,
    repeated_budget,
    repeated_data,
)
from scaling.report.figures_evals import (
    combination_rules,
    combination_rules_downstream,
    distillation,
    downstream,
    rules_by_k,
)
from scaling.report.figures_laws import data_scaling, joint_scaling, loss_vs_members, loss_vs_params
from scaling.report.style import DrawnFigure, FigureFile, save

__all__ = ["FigureFile", "draw_figures", "make_figures"]


def draw_figures(analysis: StudyAnalysis) -> list[Callable[[], DrawnFigure]]:
    """A drawing function for every figure the analysis has data for, in report order
    (functions, so a caller can draw, save and free one figure at a time)."""
    drawers: list[Callable[[], DrawnFigure]] = []
    for budget in analysis.budgets:
        if budget in analysis.standard_curves or budget in analysis.regularized:
            drawers.append(partial(loss_vs_params, analysis, budget))
        if any(b == budget for b, _ in analysis.ensembles):
            drawers.append(partial(loss_vs_members, analysis, budget))
    if analysis.joint:
        drawers.append(partial(joint_scaling, analysis))
    if analysis.data_laws:
        drawers.append(partial(data_scaling, analysis))
    if analysis.learning_curves:
        drawers.append(partial(learning_curves, analysis))
    if analysis.repeated and repeated_budget(analysis) is not None:
        drawers.append(partial(repeated_data, analysis))
    if analysis.compute["frontier"].any():
        drawers.append(partial(loss_vs_compute, analysis))
    if (analysis.ensemble_rules["rule"] == "uniform-soup").any():
        drawers.append(partial(combination_rules, analysis))
    if not analysis.downstream.empty and not rules_by_k(analysis).empty:
        drawers.append(partial(combination_rules_downstream, analysis))
    if not analysis.distill.empty:
        drawers.append(partial(distillation, analysis))
    if not analysis.downstream.empty:
        drawers.append(partial(downstream, analysis))
    return drawers


def make_figures(analysis: StudyAnalysis, out_dir: str | Path) -> list[FigureFile]:
    """Draw every figure the analysis has data for into out_dir; returns them in report order,
    each with the caption that describes what it actually shows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for draw in draw_figures(analysis):
        drawn = draw()
        files.append(save(drawn.figure, out, drawn.name, drawn.caption))
    return files
