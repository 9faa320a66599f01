"""Figures without fitted laws: distillation students and downstream accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaling.analysis import StudyAnalysis
from scaling.downstream import downstream_pivot
from scaling.plots import (
    LABEL_BOX,
    LOSS_LABEL,
    FigureFile,
    count_axis,
    legend,
    new_figure,
    recipe_color,
    save,
    set_loss_limits,
)
from scaling.units import format_count


def distillation(analysis: StudyAnalysis, out: Path) -> FigureFile:
    """Students against their teachers and the single-model baseline, per budget."""
    figure, axes = new_figure(7.0, 5.2)
    table = analysis.distill.sort_values("budget_tokens")
    per_budget = table.groupby("budget_tokens")[["teacher_loss", "single_loss"]].min()
    axes.plot(per_budget.index, per_budget["single_loss"], "s--", color="#555555",
              label="single model (baseline)")
    axes.plot(per_budget.index, per_budget["teacher_loss"], "D--", color="#d62728",
              label="teacher")
    visible = [*per_budget["single_loss"], *per_budget["teacher_loss"]]
    for recipe, rows in table.groupby("recipe"):
        best = rows.loc[rows.groupby("budget_tokens")["student_loss"].idxmin()]
        color = recipe_color(str(recipe))
        axes.plot(best["budget_tokens"], best["student_loss"], "o-", color=color,
                  label=f"student: {recipe}")
        visible += list(best["student_loss"])
        for _, row in best.iterrows():
            if np.isfinite(row["retained"]):
                axes.annotate(f"{row['retained']:.0%}", (row["budget_tokens"], row["student_loss"]),
                              textcoords="offset points", xytext=(5, 4), fontsize=7.5,
                              color=color, bbox=LABEL_BOX)
    count_axis(axes, sorted(int(b) for b in per_budget.index))
    axes.set_xlabel("unique training tokens D")
    axes.set_ylabel(LOSS_LABEL)
    axes.set_title("Distillation: students vs teachers (labels: share of gain retained)",
                   fontsize=10)
    set_loss_limits(axes, visible)
    legend(axes)
    return save(figure, out, "distillation",
                "Distilled students against their teachers and one single model of the "
                "teacher's size; labels give the share of the teacher's improvement over the "
                "single model that each student keeps.")


def downstream(analysis: StudyAnalysis, out: Path) -> FigureFile:
    """Grouped bars: accuracy per task (and the average) for every evaluated model."""
    pivot = downstream_pivot(analysis.downstream)
    rank = {size: i for i, size in enumerate(analysis.sizes)}
    pivot = pivot.assign(_rank=pivot["size"].map(lambda s: rank.get(str(s), len(rank))))
    pivot = pivot.sort_values(["recipe", "K", "_rank", "budget_tokens"]).drop(columns="_rank")
    tasks = [c for c in pivot.columns if c not in ("recipe", "size", "budget_tokens", "K")]
    stderr = analysis.downstream.pivot_table(index=["recipe", "size", "budget_tokens", "K"],
                                             columns="task", values="acc_stderr", aggfunc="mean")
    # the average of independent task accuracies has standard error sqrt(sum se^2) / n_tasks
    stderr["average"] = np.sqrt((stderr**2).sum(axis=1)) / stderr.shape[1]
    n_models = len(pivot)
    figure, axes = new_figure(max(6.4, 1.3 * len(tasks) + 0.25 * n_models), 4.6)
    width = 0.8 / max(n_models, 1)
    from matplotlib import colormaps

    palette = colormaps["tab20"](np.linspace(0, 1, max(n_models, 2)))
    several_budgets = pivot["budget_tokens"].nunique() > 1
    for i, (_, row) in enumerate(pivot.iterrows()):
        key = (row["recipe"], row["size"], row["budget_tokens"], row["K"])
        errors = [stderr.loc[key, t] if t in stderr.columns and key in stderr.index else 0.0
                  for t in tasks]
        label = f"{row['recipe']} {row['size']}" + (f" K={row['K']}" if row["K"] > 1 else "")
        if several_budgets:
            label += f" D={format_count(row['budget_tokens'])}"
        axes.bar(np.arange(len(tasks)) + (i - (n_models - 1) / 2) * width,
                 [100 * row[t] for t in tasks], width,
                 yerr=[100 * (e if np.isfinite(e) else 0.0) for e in errors],
                 color=palette[i], label=label, capsize=1.5, error_kw={"lw": 0.6})
    axes.set_xticks(np.arange(len(tasks)), tasks)
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Downstream zero-shot accuracy (error bars: standard error)", fontsize=10)
    values = 100 * pivot[tasks].to_numpy(float)
    if np.isfinite(values).any():
        axes.set_ylim(max(0.0, np.nanmin(values) - 10), min(100.0, np.nanmax(values) + 8))
    axes.legend(fontsize=7, ncols=2, loc="upper left", framealpha=0.9)
    return save(figure, out, "downstream",
                "Zero-shot downstream accuracy per task and averaged over tasks, for every "
                "evaluated model.")


__all__ = ["distillation", "downstream", "legend"]
