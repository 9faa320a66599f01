"""The compute-matched view: every run's loss against the FLOPs it took to train.

Data-constrained studies compare recipes at equal unique data; a reader also asks what each
recipe costs. Every row that collect writes carries its training FLOPs (``train_flops``: a
model's own training; an ensemble's, the sum over its members; a student's, its own training
plus its teacher's sampling). The frontier is the best loss reached with at most a given
compute, whichever recipe reached it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["recipe", "role", "kind", "size", "budget_tokens", "K", "train_flops", "val_loss",
           "frontier"]


def compute_table(done: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Succeeded train, ensemble (of `rule`) and distill rows with finite FLOPs and loss,
    cheapest first, with `frontier` marking the rows that lower the best loss so far."""
    if "train_flops" not in done.columns:
        return pd.DataFrame(columns=COLUMNS)
    rows = done[done["kind"].isin(["train", "ensemble", "distill"])
                & ((done["kind"] != "ensemble") | (done["rule"] == rule))]
    rows = rows[np.isfinite(rows["train_flops"]) & (rows["train_flops"] > 0)
                & np.isfinite(rows["val_loss"])]
    out = rows.reindex(columns=COLUMNS[:-1]).sort_values(["train_flops", "val_loss"])
    best_before = out["val_loss"].cummin().shift(1, fill_value=np.inf)
    return out.assign(frontier=out["val_loss"] < best_before).reset_index(drop=True)
