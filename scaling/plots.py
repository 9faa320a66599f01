"""Figures in the style of the paper, each saved as PNG and PDF.

matplotlib is imported lazily and only through its object-oriented API with the Agg canvas,
so importing scaling stays fast and a notebook's pyplot backend is never switched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scaling.analysis import StudyAnalysis
from scaling.curves import Curve
from scaling.units import format_count

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LOSS_LABEL = "validation loss (nats/token)"
RECIPE_COLORS = {"standard": "#555555", "regularized": "#1f77b4", "ensemble": "#d62728",
                 "joint": "#d62728", "distill-ensemble": "#2ca02c", "self-distill": "#9467bd"}
LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}
_EXTRA_COLORS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")


@dataclass(frozen=True)
class FigureFile:
    """One saved figure: its PNG and PDF, and a caption for the report."""

    name: str
    png: Path
    pdf: Path
    caption: str


def recipe_color(recipe: str) -> str:
    if recipe in RECIPE_COLORS:
        return RECIPE_COLORS[recipe]
    return _EXTRA_COLORS[sum(map(ord, recipe)) % len(_EXTRA_COLORS)]


def make_figures(analysis: StudyAnalysis, out_dir: str | Path) -> list[FigureFile]:
    """Draw every figure the analysis has data for into out_dir; returns them in report order."""
    from scaling import plots_extra

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for budget in analysis.budgets:
        if budget in analysis.standard_curves or budget in analysis.regularized:
            figures.append(loss_vs_params(analysis, budget, out))
        if any(b == budget for b, _ in analysis.ensembles):
            figures.append(loss_vs_members(analysis, budget, out))
    if analysis.joint:
        figures.append(joint_scaling(analysis, out))
    if analysis.data_laws:
        figures.append(data_scaling(analysis, out))
    if not analysis.distill.empty:
        figures.append(plots_extra.distillation(analysis, out))
    if not analysis.downstream.empty:
        figures.append(plots_extra.downstream(analysis, out))
    return figures


def new_figure(width: float = 6.4, height: float = 5.2) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.grid(True, which="major", alpha=0.3)
    return figure, axes


def save(figure: Figure, out: Path, name: str, caption: str) -> FigureFile:
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    figure.savefig(png, dpi=150)
    figure.savefig(pdf)
    return FigureFile(name, png, pdf, caption)


def draw_law(axes: Axes, curve: Curve, color: str, label: str, x_max_factor: float = 4.0,
             marker: str = "o", asymptote: bool = True) -> list[float]:
    """Points, fitted curve, bootstrap band and asymptote line of one curve.

    Returns the y values that should stay visible (points and fitted curve), so the caller
    can set limits that a wide band or a collapsed asymptote does not blow up.
    """
    visible = list(curve.y)
    axes.plot(curve.x, curve.y, marker, color=color, markersize=6, zorder=3,
              label=label if curve.fit is None else None)
    law = curve.fit
    if law is None:
        return visible
    grid = np.geomspace(curve.x.min() / 1.3, curve.x.max() * x_max_factor, 200)
    fitted = law.predict(grid)
    axes.plot(grid, fitted, "-", color=color, lw=1.8,
              label=f"{label}: {law.law_tex(curve.x_symbol)}")
    visible += list(fitted)
    if law.samples is not None:
        low, high = law.band(grid)
        axes.fill_between(grid, low, high, color=color, alpha=0.15, lw=0)
    if asymptote and law.E > 0.5 * float(curve.y.min()):
        axes.axhline(law.E, color=color, ls="--", lw=1.0, alpha=0.8)
        visible.append(law.E)
    return visible


def set_loss_limits(axes: Axes, visible: list[float]) -> None:
    values = np.asarray([v for v in visible if np.isfinite(v)])
    if values.size:
        span = float(values.max() - values.min()) or 0.1 * float(values.max())
        axes.set_ylim(values.min() - 0.08 * span, values.max() + 0.08 * span)


def count_axis(axes: Axes, ticks: list[float]) -> None:
    """Log x axis with ticks at the given counts, labelled 200M, 1.6B, ... ."""
    from matplotlib.ticker import NullLocator

    axes.set_xscale("log")
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticks(ticks, [format_count(t) for t in ticks])
    axes.margins(x=0.08)  # room for the labels annotated next to the outermost points


def plain_log_axis(axes: Axes) -> None:
    """Log x axis with plain numbers at 1, 2, 5 x 10^k (no overlapping minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.xaxis.set_minor_locator(LogLocator(subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    axes.xaxis.set_minor_formatter(NullFormatter())


def legend(axes: Axes) -> None:
    """Legend below the axes: fitted laws are long and must never hide data."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                    ncols=1, frameon=False)


def loss_vs_params(analysis: StudyAnalysis, budget: int, out: Path) -> FigureFile:
    figure, axes = new_figure()
    visible: list[float] = []
    standard = analysis.standard_curves.get(budget)
    if standard is not None:
        axes.plot(standard.x, standard.y, "s-", color=recipe_color("standard"), lw=1.2,
                  label="standard (best per size)")
        best = analysis.best_standard[budget]
        axes.axhline(best.loss, color=recipe_color("standard"), ls=":", lw=1.0,
                     label=f"standard best: {best.loss:.3f} ({best.size})")
        visible += list(standard.y)
    if budget in analysis.regularized:
        visible += draw_law(axes, analysis.regularized[budget], recipe_color("regularized"),
                            "regularized")
    if budget in analysis.joint:
        visible += draw_law(axes, analysis.joint[budget], recipe_color("joint"),
                            "ensemble K-limit", marker="D")
    plain_log_axis(axes)
    axes.set_xlabel(analysis.n_unit.axis_label("parameters"))
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title(f"Loss vs parameters, D = {format_count(budget)} tokens (dashed: asymptotes)",
                   fontsize=10)
    set_loss_limits(axes, visible)
    legend(axes)
    return save(figure, out, f"loss_vs_params_{format_count(budget)}",
                f"Loss against parameters at D = {format_count(budget)} tokens: per-size best "
                "standard run, tuned regularized runs and infinite-ensemble limits, with fitted "
                "laws, bootstrap bands and asymptotes (dashed).")


def loss_vs_members(analysis: StudyAnalysis, budget: int, out: Path) -> FigureFile:
    from matplotlib import colormaps

    figure, axes = new_figure()
    curves = [c for (b, _), c in analysis.ensembles.items() if b == budget]
    palette = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(curves), 1)))
    visible: list[float] = []
    for curve, color in zip(curves, palette, strict=False):
        visible += draw_law(axes, curve, color, str(curve.size), x_max_factor=3.0)
    plain_log_axis(axes)
    axes.set_xlabel("ensemble members K")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title(f"Loss vs ensemble members, D = {format_count(budget)} tokens", fontsize=10)
    set_loss_limits(axes, visible)
    legend(axes)
    return save(figure, out, f"loss_vs_members_{format_count(budget)}",
                f"Ensemble loss against members K for each size at D = {format_count(budget)} "
                "tokens; dashed lines are the infinite-ensemble (K-asymptote) losses.")


def joint_scaling(analysis: StudyAnalysis, out: Path) -> FigureFile:
    from matplotlib import colormaps

    figure, axes = new_figure()
    palette = colormaps["plasma"](np.linspace(0.0, 0.8, max(len(analysis.joint), 1)))
    visible: list[float] = []
    for (budget, curve), color in zip(analysis.joint.items(), palette, strict=False):
        visible += draw_law(axes, curve, color, f"D={format_count(budget)}", marker="D")
    plain_log_axis(axes)
    axes.set_xlabel(analysis.n_unit.axis_label("parameters"))
    axes.set_ylabel("K-asymptote loss (nats/token)")
    axes.set_title("Joint scaling: infinite-ensemble loss vs parameters", fontsize=10)
    set_loss_limits(axes, visible)
    legend(axes)
    return save(figure, out, "joint_scaling",
                "Joint scaling: each size's infinite-ensemble loss fitted over parameters; the "
                "dashed asymptote is the double limit (infinitely many infinitely large members).")


def data_scaling(analysis: StudyAnalysis, out: Path) -> FigureFile:
    figure, axes = new_figure(7.0, 5.4)
    visible: list[float] = []
    labels = {"standard": "standard (best run)", "regularized": "regularized (N-asymptote)",
              "joint": "ensembles (double limit)"}
    for recipe, curve in analysis.data_laws.items():
        visible += draw_law(axes, curve, recipe_color(recipe), labels.get(recipe, recipe),
                            x_max_factor=2.0, marker="s" if recipe == "standard" else "o")
    by_key = {(m.recipe, m.budget): m for m in analysis.multipliers}
    for recipe, curve in analysis.data_laws.items():
        for x, y in zip(curve.x, curve.y, strict=True):
            mult = by_key.get((recipe, int(x)))
            if mult is not None:
                text = "unbounded" if mult.unbounded else f"{mult.value.value:.3g}x"
                axes.annotate(text, (x, y), textcoords="offset points", xytext=(6, 6),
                              fontsize=7.5, color=recipe_color(recipe), bbox=LABEL_BOX)
    count_axis(axes, list(analysis.budgets))
    axes.set_xlabel("unique training tokens D")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title("Data scaling laws (annotations: effective-data multipliers)", fontsize=10)
    set_loss_limits(axes, visible)
    legend(axes)
    return save(figure, out, "data_scaling",
                "Each recipe's value per data budget fitted over D; labels give the "
                "effective-data multiplier against the standard recipe at the same budget.")
