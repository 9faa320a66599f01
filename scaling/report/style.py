"""The look shared by every figure: colours, markers, axes, legend, and saving PNG + PDF.

matplotlib is imported lazily and only through its object-oriented API with the Agg canvas,
so importing scaling stays fast and a notebook's pyplot backend is never switched.

A figure is drawn into a `DrawnFigure`, which records every legend entry and every kind of
thing drawn (bands, asymptotes, unidentified fits, annotations) as it is drawn, so the
legend and the caption describe exactly what is on the figure and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scaling.units import format_count

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LOSS_LABEL = "validation loss (nats/token)"
RECIPE_COLORS = {"standard": "#555555", "regularized": "#1f77b4", "ensemble": "#d62728",
                 "joint": "#d62728", "distill-ensemble": "#2ca02c", "self-distill": "#9467bd"}
RECIPE_MARKERS = {"standard": "s", "regularized": "o", "ensemble": "D", "joint": "D"}
DISTILL_MARKERS = ("P", "X", "^", "v", "h")
_EXTRA_COLORS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")
# A fit the data do not identify is drawn in this colour, dashed, whatever its recipe.
NOT_IDENTIFIED_COLOR = "#9a9a9a"
LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}


@dataclass(frozen=True)
class FigureFile:
    """One saved figure: its PNG and PDF, and the caption the report prints under it."""

    name: str
    png: Path
    pdf: Path
    caption: str


@dataclass(eq=False)
class DrawnFigure:
    """A figure being drawn, and the record of what has been drawn on it.

    `legend_entries` are (handle, label) pairs in legend order; the lists name the curves
    (by their legend label) drawn with an identified law, with a bootstrap band, with an
    asymptote line, with a fit drawn as not identified, with an unidentified fit left
    undrawn, or as points without any fit; `annotations` names the kinds of text labels
    placed on points. Figure functions write captions from these, never from intentions.
    """

    name: str
    figure: Figure
    axes: Axes
    legend_entries: list[tuple[object, str]] = field(default_factory=list)
    visible_y: list[float] = field(default_factory=list)
    laws: list[str] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    asymptotes: list[str] = field(default_factory=list)
    not_identified: list[str] = field(default_factory=list)
    floorless: list[str] = field(default_factory=list)
    not_drawn: list[str] = field(default_factory=list)
    not_fitted: list[str] = field(default_factory=list)
    open_asymptotes: list[str] = field(default_factory=list)
    """Identified fits whose asymptote's interval reaches 0: drawn without an E line."""
    annotations: list[str] = field(default_factory=list)
    caption: str = ""

    def add_entry(self, handle: object, label: str) -> None:
        self.legend_entries.append((handle, label))

    @property
    def legend_labels(self) -> list[str]:
        return [label for _, label in self.legend_entries]


def recipe_color(recipe: str) -> str:
    if recipe in RECIPE_COLORS:
        return RECIPE_COLORS[recipe]
    # stable across runs (unlike hash()), so a recipe keeps its colour from report to report
    return _EXTRA_COLORS[sum(map(ord, recipe)) % len(_EXTRA_COLORS)]


def recipe_marker(recipe: str) -> str:
    if recipe in RECIPE_MARKERS:
        return RECIPE_MARKERS[recipe]
    return DISTILL_MARKERS[sum(map(ord, recipe)) % len(DISTILL_MARKERS)]


def new_figure(name: str, width: float = 6.4, height: float = 5.2) -> DrawnFigure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.grid(True, which="major", alpha=0.3)
    return DrawnFigure(name, figure, axes)


def save(figure: Figure, out: Path, name: str, caption: str) -> FigureFile:
    """Write out/name.png and out/name.pdf; the FigureFile carries the caption to the report."""
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    figure.savefig(png, dpi=150)
    figure.savefig(pdf)
    return FigureFile(name, png, pdf, caption)


def marker_handle(color: str, marker: str, linestyle: str = "none", lw: float = 1.5) -> Artist:
    """A legend handle for a kind of marker or line that is not itself a labelled artist."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, marker=marker, linestyle=linestyle, lw=lw, markersize=6)


def band_handle(color: str) -> Artist:
    from matplotlib.patches import Patch

    return Patch(facecolor=color, alpha=0.2, edgecolor="none")


def legend(drawn: DrawnFigure, ncols: int = 1) -> None:
    """Legend below the axes from the recorded entries: fitted laws are long and must never
    hide data. A tuple handle (points, line, band) draws as one overlaid symbol."""
    if not drawn.legend_entries:
        return
    from matplotlib.legend_handler import HandlerTuple

    handles, labels = zip(*drawn.legend_entries, strict=True)
    drawn.axes.legend(list(handles), list(labels), fontsize=8, loc="upper center",
                      bbox_to_anchor=(0.5, -0.16), ncols=ncols, frameon=False,
                      handler_map={tuple: HandlerTuple(ndivide=1)})


def set_loss_limits(drawn: DrawnFigure) -> None:
    """y limits from the points and fitted curves only, so a wide band, a long error bar or a
    collapsed asymptote cannot squash the data into a line."""
    values = np.asarray([v for v in drawn.visible_y if np.isfinite(v)], dtype=float)
    if values.size:
        span = float(values.max() - values.min()) or 0.1 * float(abs(values.max()))
        drawn.axes.set_ylim(values.min() - 0.08 * span, values.max() + 0.08 * span)


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


def join_names(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def finish_budget_axes(drawn: DrawnFigure, budgets: list[int], title: str, labels: str) -> None:
    """A figure over data budgets: budget ticks, axis labels, the title (naming the point
    labels when any were placed), loss limits and the legend."""
    axes = drawn.axes
    count_axis(axes, budgets)
    axes.set_xlabel("unique training tokens D")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title(title + (f" (labels: {labels})" if drawn.annotations else ""), fontsize=10)
    set_loss_limits(drawn)
    legend(drawn)
