"""Figures of evaluated models, without fitted laws: distillation students against their
teachers, ensemble rules (soups among them) against K, and downstream accuracy. Each function returns its figure unsaved, with a caption
written from what was drawn."""

from __future__ import annotations

import numpy as np

from scaling.analysis.evals import MODEL_KEYS, downstream_pivot
from scaling.analysis.study import StudyAnalysis
from scaling.report.style import (
    LABEL_BOX,
    DrawnFigure,
    finish_budget_axes,
    join_names,
    legend,
    marker_handle,
    new_figure,
    recipe_color,
    set_loss_limits,
)
from scaling.units import format_count

BASELINE_COLOR, TEACHER_COLOR = "#555555", "#d62728"


def distillation(analysis: StudyAnalysis) -> DrawnFigure:
    """Best student per recipe and budget, against its teacher and the single-model baseline."""
    drawn = new_figure("distillation", 7.0, 5.2)
    axes = drawn.axes
    table = analysis.distill.sort_values("budget_tokens")
    per_budget = table.groupby("budget_tokens")[["teacher_loss", "single_loss"]].min()
    for column, color, marker, label in (
            ("single_loss", BASELINE_COLOR, "s", "single model (baseline)"),
            ("teacher_loss", TEACHER_COLOR, "D", "teacher")):
        axes.plot(per_budget.index, per_budget[column], marker, ls="-", lw=1.0, color=color)
        drawn.add_entry(marker_handle(color, marker, "-", 1.0), label)
        drawn.visible_y += list(per_budget[column])
    for recipe, rows in table.groupby("recipe"):
        best = rows.loc[rows.groupby("budget_tokens")["student_loss"].idxmin()]
        color = recipe_color(str(recipe))
        axes.plot(best["budget_tokens"], best["student_loss"], "o", ls="-", lw=1.0, color=color)
        drawn.add_entry(marker_handle(color, "o", "-", 1.0), f"best student: {recipe}")
        drawn.visible_y += list(best["student_loss"])
        for _, row in best.iterrows():
            if np.isfinite(row["retained"]):
                axes.annotate(f"{row['retained']:.0%}", (row["budget_tokens"], row["student_loss"]),
                              textcoords="offset points", xytext=(7, -3), fontsize=7.5,
                              color=color, bbox=LABEL_BOX)
                drawn.annotations.append(f"{recipe} at {format_count(row['budget_tokens'])}")
    finish_budget_axes(drawn, sorted(int(b) for b in per_budget.index),
                       "Distillation: students vs teachers", "share of gain retained")
    drawn.caption = ("Best distilled student per recipe and budget, against its teacher and one "
                     "single model of the teacher's size (lines join budgets; no law is fitted).")
    if drawn.annotations:
        drawn.caption += (" Labels: the share of the teacher's improvement over the single "
                          "model that the student keeps.")
    return drawn


RULE_STYLES = {"logit-mean": ("#d62728", "o", "-"), "prob-mean": ("#ff7f0e", "s", "--"),
               "uniform-soup": ("#2ca02c", "^", ":")}
OTHER_RULE = ("#7f7f7f", "x", "-.")


def combination_rules(analysis: StudyAnalysis) -> DrawnFigure:
    """Validation loss over members K under every rule measured (output ensembles and weight
    soups), at the main budget: one color and marker per rule, one line per size (named at
    its end)."""
    rows = analysis.ensemble_rules
    with_soups = set(rows.loc[rows["rule"] == "uniform-soup", "budget_tokens"])
    budget = analysis.main_budget if analysis.main_budget in with_soups else int(max(with_soups))
    # Several ensembles of one size (K = 1..2 and 1..5, say): the best loss at each K.
    rows = rows[rows["budget_tokens"] == budget].groupby(["rule", "size", "K"], as_index=False)["val_loss"].min()
    drawn = new_figure(f"combination_rules_{format_count(budget)}", 7.0, 5.2)
    rules = _rule_lines(drawn, rows, "val_loss")
    drawn.visible_y += list(rows["val_loss"])
    drawn.axes.set_ylabel("validation loss (nats/token)")
    drawn.axes.set_title(f"Ensembles and soups vs members, D = {format_count(budget)} tokens", fontsize=10)
    set_loss_limits(drawn)
    legend(drawn)
    drawn.caption = (f"Validation loss against members K at D = {format_count(budget)} tokens under "
                     f"{join_names(rules)}, one line per size (named at its end; points joined, no law "
                     "fitted). A soup is one model whose weights are the members' mean: it can help "
                     "only when the members share a basin (continued from one base), and is poor for "
                     "members trained from different inits.")
    return drawn


def _rule_lines(drawn: DrawnFigure, rows, value: str) -> list[str]:  # noqa: ANN001 - a DataFrame
    """``value`` against K: one color and marker per rule, one line per size named at its end;
    returns the rules drawn, in legend order."""
    rules = [r for r in RULE_STYLES if r in set(rows["rule"])] + sorted(set(rows["rule"]) - set(RULE_STYLES))
    for rule in rules:
        color, marker, style = RULE_STYLES.get(rule, OTHER_RULE)
        drawn.add_entry(marker_handle(color, marker, style, 1.0), rule)
        for size, line in rows[rows["rule"] == rule].groupby("size"):
            line = line.sort_values("K")
            drawn.axes.plot(line["K"], line[value], marker, ls=style, lw=1.0, color=color)
            drawn.axes.annotate(str(size), (line["K"].iloc[-1], line[value].iloc[-1]),
                                textcoords="offset points", xytext=(5, -3), fontsize=7, color=color)
    drawn.axes.set_xlabel("members K")
    drawn.axes.set_xticks(sorted(int(k) for k in rows["K"].unique()))
    return rules


def rules_by_k(analysis: StudyAnalysis):  # noqa: ANN201 - a DataFrame
    """Average downstream accuracy (over the paper's tasks) per rule, size and K, from nested
    evals: rules measured at two or more K only."""
    rows = analysis.downstream
    rows = rows[rows["task"] == "average"].groupby(["rule", "size", "K"], as_index=False)["acc"].mean()
    counts = rows.groupby("rule")["K"].nunique()
    return rows[rows["rule"].isin(counts[counts > 1].index)]


def combination_rules_downstream(analysis: StudyAnalysis) -> DrawnFigure:
    """Downstream accuracy over members K under every rule scored for every K (nested evals):
    the accuracy panel beside ``combination_rules``'s validation loss."""
    rows = rules_by_k(analysis)
    drawn = new_figure("combination_rules_downstream", 7.0, 5.2)
    rules = _rule_lines(drawn, rows, "acc")
    drawn.axes.set_ylabel("downstream accuracy (mean over tasks)")
    drawn.axes.set_title("Ensembles and soups vs members: downstream accuracy", fontsize=10)
    legend(drawn)
    drawn.caption = (f"Mean accuracy over the evaluated tasks against members K under {join_names(rules)}, "
                     "one line per size (nested downstream evals; points joined, no law fitted). With few "
                     "examples per task, differences of a point or two are within noise: see the per-task "
                     "standard errors in the results table.")
    return drawn


def downstream(analysis: StudyAnalysis) -> DrawnFigure:
    """Grouped bars: accuracy per task (and the average, last) for every evaluated model."""
    from matplotlib import colormaps

    # Nested evals score an ensemble at every K: its bars are the largest K (the K curve has
    # its own figure), one bar per rule.
    pivot = downstream_pivot(analysis.downstream, largest_k=True)
    rank = {size: i for i, size in enumerate(analysis.sizes)}
    pivot = pivot.assign(_rank=pivot["size"].map(lambda s: rank.get(str(s), len(rank))))
    pivot = pivot.sort_values(["recipe", "K", "_rank", "budget_tokens", "rule"]).drop(columns="_rank")
    keys = tuple(MODEL_KEYS)
    tasks = sorted(c for c in pivot.columns if c not in (*keys, "average")) + ["average"]
    stderr = analysis.downstream.pivot_table(index=list(keys), columns="task", values="acc_stderr",
                                             aggfunc="mean")
    several_rules = pivot.groupby(["recipe", "size", "budget_tokens", "K"])["rule"].transform("nunique") > 1
    if "average" not in stderr.columns:
        # the average of independent task accuracies has standard error sqrt(sum se^2) / n_tasks
        stderr["average"] = np.sqrt((stderr**2).sum(axis=1, min_count=1)) / stderr.shape[1]
    n_models = len(pivot)
    drawn = new_figure("downstream", max(6.4, 1.3 * len(tasks) + 0.25 * n_models), 5.2)
    axes = drawn.axes
    width = 0.8 / max(n_models, 1)
    palette = colormaps["tab20"](np.linspace(0, 1, max(n_models, 2)))
    several_budgets = pivot["budget_tokens"].nunique() > 1
    with_errors = False
    for i, (index, row) in enumerate(pivot.iterrows()):
        key = tuple(row[k] for k in keys)
        errors = np.array([stderr.loc[key, t] if t in stderr.columns and key in stderr.index
                           else np.nan for t in tasks], dtype=float)
        with_errors |= bool(np.any(np.isfinite(errors) & (errors > 0)))
        label = f"{row['recipe']} {row['size']}" + (f" K={row['K']}" if row["K"] > 1 else "")
        if several_rules[index]:
            label += f" {row['rule']}"
        if several_budgets:
            label += f" D={format_count(row['budget_tokens'])}"
        bars = axes.bar(np.arange(len(tasks)) + (i - (n_models - 1) / 2) * width,
                        [100 * row[t] for t in tasks], width,
                        yerr=100 * np.nan_to_num(errors, nan=0.0), color=palette[i],
                        capsize=1.5, error_kw={"lw": 0.6})
        drawn.add_entry(bars, label)
    if with_errors:
        drawn.add_entry(marker_handle("#000000", "|", "none"), "bars: one standard error")
    axes.set_xticks(np.arange(len(tasks)), tasks)
    axes.set_ylabel("accuracy (%)")
    title = "Downstream zero-shot accuracy"
    if with_errors:
        title += " (error bars: standard error)"
    axes.set_title(title, fontsize=10)
    values = 100 * pivot[tasks].to_numpy(float)
    if np.isfinite(values).any():
        axes.set_ylim(max(0.0, np.nanmin(values) - 10), min(100.0, np.nanmax(values) + 8))
    legend(drawn, ncols=2)
    drawn.caption = ("Zero-shot downstream accuracy per task and averaged over tasks (last), "
                     "for every evaluated model.")
    if with_errors:
        drawn.caption += " Error bars: one standard error."
    return drawn
