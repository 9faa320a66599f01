"""Learning curves: validation (and training) loss over a run's epochs, per recipe and size.

The reference study's basic picture: at the main budget, the standard recipe's validation loss
turns up as epochs repeat the data, while the regularized recipe's keeps falling. For each
recipe and size the curve shown is the longest run at the recipe's tuned learning rate and
weight decay (the standard recipe's tuned point may stop before its turn; its longer runs show
it), read from the runs' metrics (``curves.parquet``, written by collect).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RECIPES = ("standard", "regularized")


@dataclass(frozen=True, eq=False)
class LearningCurve:
    recipe: str
    """The recipe's role: standard or regularized."""
    size: str
    n_params: float
    run_id: str
    epochs: float
    """The run's epochs (its curve's last x)."""
    points: pd.DataFrame = field(repr=False)
    """Columns epoch, val_loss, train_loss: the rows where the run validated, and the
    training loss averaged since the previous logged step."""


def learning_curves(done: pd.DataFrame, curves: pd.DataFrame | None, budget: int | None,
                    x_column: str = "n_params") -> tuple[LearningCurve, ...]:
    """One curve per (recipe, size) at ``budget`` whose run logged validation more than once."""
    if curves is None or curves.empty or budget is None:
        return ()
    out = []
    train = done[(done["kind"] == "train") & (done["budget_tokens"] == budget)
                 & done["role"].isin(RECIPES)]
    for role in RECIPES:
        rows = train[train["role"] == role]
        for size, of_size in rows.groupby("size", sort=False):
            best = of_size.loc[of_size["val_loss"].idxmin()]
            same = of_size[np.isclose(of_size["lr"], best["lr"])
                           & np.isclose(of_size["weight_decay"], best["weight_decay"])]
            longest = same.loc[same["epochs"].idxmax()]
            points = curves[curves["run_id"] == longest["run_id"]]
            validated = points[np.isfinite(points["val_loss"])]
            if len(validated) < 2:
                continue
            out.append(LearningCurve(role, str(size), float(longest[x_column]), str(longest["run_id"]),
                                     float(longest["epochs"]),
                                     points[["epoch", "val_loss", "train_loss"]].reset_index(drop=True)))
    return tuple(sorted(out, key=lambda c: (RECIPES.index(c.recipe), c.n_params)))
