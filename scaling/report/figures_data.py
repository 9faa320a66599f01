"""Figures of how recipes use data and compute: the value of repeated data (loss against
epochs with each recipe's data-constrained law) and loss against training FLOPs."""

from __future__ import annotations

import numpy as np

from scaling.analysis.study import StudyAnalysis
from scaling.fit.bootstrap import percentile_interval
from scaling.report.style import (
    LOSS_LABEL,
    DrawnFigure,
    band_handle,
    legend,
    marker_handle,
    new_figure,
    plain_log_axis,
    recipe_color,
    recipe_marker,
    set_loss_limits,
)
from scaling.units import format_count


def repeated_budget(analysis: StudyAnalysis) -> int | None:
    """The unique-token budget the figure shows: the main budget where a recipe has several
    epoch counts there, else the budget with the most; None where no budget has two."""
    counts: dict[int, int] = {}
    for law in analysis.repeated.values():
        per_budget = law.points.groupby("u")["epochs"].nunique()
        for budget, n in per_budget.items():
            if n > 1:
                counts[int(budget)] = counts.get(int(budget), 0) + int(n)
    if not counts:
        return None
    if analysis.main_budget in counts:
        return analysis.main_budget
    return max(counts, key=lambda b: (counts[b], b))


def repeated_data(analysis: StudyAnalysis) -> DrawnFigure:
    """Loss against epochs at one unique-token budget, for each recipe's best size, with the
    recipe's fitted data-constrained law where it is identified."""
    drawn = new_figure("repeated_data")
    axes, level = drawn.axes, analysis.settings.level
    budget = repeated_budget(analysis)
    described = []
    for recipe, law in analysis.repeated.items():
        at = law.points[law.points["u"] == budget]
        if at.empty:
            continue
        best_size = at.loc[at["y"].idxmin(), "n"]
        points = at[at["n"] == best_size].sort_values("epochs")
        size = str(points["size"].iloc[0])
        color, marker = recipe_color(recipe), recipe_marker(recipe)
        axes.plot(points["epochs"], points["y"], marker, color=color, ms=6, ls="none", zorder=3)
        drawn.visible_y += list(points["y"])
        decay = law.decay
        if law.fit is not None and decay is not None:
            epochs = np.geomspace(float(points["epochs"].min()), float(points["epochs"].max()) * 2, 80)
            curve = law.fit.predict(best_size, budget * epochs, budget)
            axes.plot(epochs, curve, color=color, lw=1.6, zorder=2)
            drawn.visible_y += list(curve)
            handles: tuple = (marker_handle(color, marker), marker_handle(color, "", "-"))
            if law.fit.samples is not None:
                samples = law.fit.predict_samples(np.full(epochs.size, best_size), budget * epochs,
                                                  np.full(epochs.size, budget))
                bounds = np.array([percentile_interval(col, level) for col in samples.T])
                axes.fill_between(epochs, bounds[:, 0], bounds[:, 1], color=color, alpha=0.15,
                                  lw=0, zorder=1)
                handles += (band_handle(color),)
            drawn.add_entry(handles, f"{recipe} ({size}): R_D* = {decay.format(3)} epochs")
            described.append(f"{recipe} (R_D* = {decay.format(3)})")
        else:
            why = "; ".join(law.missing) if law.missing else "R_D not identified"
            drawn.add_entry(marker_handle(color, marker), f"{recipe} ({size}): no law ({why})")
            drawn.not_identified.append(recipe)
    plain_log_axis(axes)
    axes.set_xlabel(f"epochs over U = {format_count(budget)} unique tokens" if budget else "epochs")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title("The value of repeated data")
    set_loss_limits(drawn)
    legend(drawn)
    caption = (f"Loss against epochs at U = {format_count(budget)} unique tokens for each "
               "recipe's best size there (each point: the best loss over the other "
               "hyperparameters, and never worse than fewer epochs of the same model).")
    if described:
        caption += (" Lines: each recipe's data-constrained law (Muennighoff et al.), fitted to "
                    "all its runs, with its decay constant R_D* in the legend"
                    + (f" and {level:.0%} bootstrap bands" if analysis.settings.n_boot else "")
                    + ".")
    if drawn.not_identified:
        caption += (f" No law is drawn for {', '.join(drawn.not_identified)}: its runs do not "
                    "identify one (the legend says what to vary).")
    drawn.caption = caption
    return drawn


def loss_vs_compute(analysis: StudyAnalysis) -> DrawnFigure:
    """Every run's loss against its training FLOPs, per recipe, with the best loss reached at
    each compute marked."""
    drawn = new_figure("loss_vs_compute", 7.0, 5.6)
    axes = drawn.axes
    frame = analysis.compute
    for recipe, rows in frame.groupby("recipe", sort=False):
        color, marker = recipe_color(str(recipe)), recipe_marker(str(recipe))
        axes.plot(rows["train_flops"], rows["val_loss"], marker, color=color, ms=4, alpha=0.6,
                  ls="none", zorder=2)
        drawn.add_entry(marker_handle(color, marker), str(recipe))
        drawn.visible_y += list(rows["val_loss"])
    front = frame[frame["frontier"]].sort_values("train_flops")
    axes.step(front["train_flops"], front["val_loss"], where="post", color="#222222", lw=1.2,
              zorder=3)
    axes.plot(front["train_flops"], front["val_loss"], "o", mfc="none", mec="#222222", ms=8,
              ls="none", zorder=4)
    drawn.add_entry(marker_handle("#222222", "o", "-", 1.2), "best loss reached at this compute")
    axes.set_xscale("log")
    axes.set_xlabel("training FLOPs (ensembles: all members; students: own training and the "
                    "teacher's sampling)")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title("Loss against training compute")
    set_loss_limits(drawn)
    legend(drawn, ncols=2)
    holders = list(dict.fromkeys(front["recipe"]))
    drawn.caption = ("Every succeeded run's loss against the FLOPs it took to train, at every "
                     "budget. The black steps mark the best loss reached with at most that "
                     f"much compute; it is held by {', '.join(holders)} along the way.")
    return drawn


def learning_curves(analysis: StudyAnalysis) -> DrawnFigure:
    """Validation loss over epochs at the main budget, one line per size, the standard and the
    regularized recipe side by side; training loss dotted where it was logged."""
    from matplotlib import colormaps

    drawn = new_figure("learning_curves", 10.0, 4.8)
    figure = drawn.figure
    figure.clear()
    panels = [r for r in ("standard", "regularized") if any(c.recipe == r for c in analysis.learning_curves)]
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    sizes = sorted({(c.n_params, c.size) for c in analysis.learning_curves})
    palette = colormaps["viridis"]
    color_of = {size: palette(i / max(1, len(sizes) - 1) * 0.85) for i, (_, size) in enumerate(sizes)}
    with_train = False
    for axes, recipe in zip(axes_list, panels, strict=True):
        for curve in (c for c in analysis.learning_curves if c.recipe == recipe):
            color = color_of[curve.size]
            validated = curve.points[np.isfinite(curve.points["val_loss"])]
            axes.plot(validated["epoch"], validated["val_loss"], "o-", color=color, ms=3.5, lw=1.5,
                      label=f"{curve.size} ({curve.epochs:g} epochs)")
            drawn.visible_y += list(validated["val_loss"])
            trained = curve.points[np.isfinite(curve.points["train_loss"])]
            if len(trained):
                axes.plot(trained["epoch"], trained["train_loss"], ":", color=color, lw=1.0)
                with_train = True
        axes.set_title(f"{recipe} recipe")
        axes.set_xlabel("epochs")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7.5, frameon=False)
    axes_list[0].set_ylabel(LOSS_LABEL)
    values = np.asarray(drawn.visible_y, dtype=float)
    if values.size:
        span = float(values.max() - values.min()) or 0.1
        axes_list[0].set_ylim(values.min() - 0.25 * span, values.max() + 0.08 * span)
    figure.suptitle(f"Learning curves at D = {format_count(analysis.main_budget)} unique tokens")
    drawn.axes = axes_list[0]
    drawn.caption = (f"Validation loss over training at the main budget (D = "
                     f"{format_count(analysis.main_budget)} unique tokens), for each size's longest "
                     "run at its recipe's tuned learning rate and weight decay: the standard "
                     "recipe's loss turns up where more epochs overfit, the regularized recipe's "
                     "keeps falling."
                     + (" Dotted: the training loss (averaged between logged steps); the gap to "
                        "the validation loss is what repetition memorises." if with_train else ""))
    return drawn
