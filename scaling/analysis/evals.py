"""Distillation and downstream-evaluation summaries (tables, no fits)."""

from __future__ import annotations

import numpy as np
import pandas as pd

DISTILL_COLUMNS = ["run_id", "recipe", "size", "budget_tokens", "synthetic_weight",
                   "student_loss", "teacher_loss", "single_loss", "retained"]
DOWNSTREAM_COLUMNS = ["recipe", "size", "budget_tokens", "K", "rule", "task", "acc",
                      "acc_stderr", "acc_norm", "acc_norm_stderr"]


def distill_table(done: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """One row per succeeded distillation student, with the share of the teacher's gain kept.

    retained = (single_loss - student_loss) / (single_loss - teacher_loss): 1 means the student
    matches its teacher, 0 means it is no better than one single model. It is undefined (NaN)
    when the teacher is not better than the single model.
    """
    rows = done[done["kind"] == "distill"]
    if rows.empty:
        return pd.DataFrame(columns=DISTILL_COLUMNS)
    out = pd.DataFrame({
        "run_id": rows["run_id"].astype(str),
        "recipe": rows["recipe"].astype(str),
        "size": rows["size"].astype(str),
        "budget_tokens": rows["budget_tokens"],
        "synthetic_weight": rows["synthetic_weight"] if "synthetic_weight" in rows else np.nan,
        "student_loss": rows["val_loss"],
        "teacher_loss": rows["teacher_loss"],
        "single_loss": rows["single_loss"],
    })
    gain = out["single_loss"] - out["teacher_loss"]
    out["retained"] = np.where(gain > 0, (out["single_loss"] - out["student_loss"])
                               / gain.where(gain > 0, 1.0), np.nan)
    undefined = int((~(gain > 0)).sum())
    if undefined:
        warnings.append(f"distill: {undefined} students have a teacher no better than the single "
                        "model, so their retained share is undefined")
    return out.sort_values(["budget_tokens", "recipe", "size", "synthetic_weight"]
                           ).reset_index(drop=True)


def downstream_table(done: pd.DataFrame) -> pd.DataFrame:
    """Succeeded eval rows in long form (one row per model and task)."""
    rows = done[done["kind"] == "eval"]
    if rows.empty:
        return pd.DataFrame(columns=DOWNSTREAM_COLUMNS)
    out = pd.DataFrame({c: rows[c] if c in rows else np.nan for c in DOWNSTREAM_COLUMNS})
    out["K"] = out["K"].fillna(1).astype(int)
    out["rule"] = out["rule"].fillna("").astype(str)  # a key (MODEL_KEYS): never NaN
    return out.sort_values(["budget_tokens", "recipe", "size", "K", "task"]).reset_index(drop=True)


MODEL_KEYS = ["recipe", "size", "budget_tokens", "K", "rule"]
"""What tells one evaluated model from another: an ensemble's rules at the same K are
different models (nested evals score each)."""


def downstream_pivot(downstream: pd.DataFrame, largest_k: bool = False) -> pd.DataFrame:
    """Accuracy per model (rows) and task (columns), with the average over tasks last: the
    evals' own (eval.downstream.paper_average), else the mean of the tasks. ``largest_k``:
    only each ensemble's largest K under each rule (nested evals score every K)."""
    if downstream.empty:
        return pd.DataFrame()
    rows = downstream
    if largest_k:
        ensemble = ["recipe", "size", "budget_tokens", "rule"]
        rows = rows[rows["K"] == rows.groupby(ensemble)["K"].transform("max")]
    pivot = rows.pivot_table(index=MODEL_KEYS, columns="task", values="acc", aggfunc="mean")
    tasks = [c for c in pivot.columns if c != "average"]
    average = pivot.pop("average") if "average" in pivot.columns else pivot[tasks].mean(axis=1)
    pivot["average"] = average
    return pivot.reset_index()
