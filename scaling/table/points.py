"""The points of a two-variable law, read from any table or from a dcsl results table.

From a plain table the user names the columns: N (parameters), D (tokens seen), U (unique
tokens, for the data-constrained law) and the loss. From a dcsl results table nothing needs
naming: the points are its succeeded training runs of the standard and regularized roles,
N = n_params (or --x-column), D = tokens_seen (budget_tokens x epochs where a row lacks
it), U = budget_tokens, and at each (recipe, N, D, U) the lowest loss over the other
hyperparameters (learning rate, weight decay): a law of the best loss a recipe reaches
with N parameters, D tokens seen and U unique tokens, which is what the field's laws describe.
A run that repeated its data more and ended worse than the same model with fewer epochs
counts at the better loss (the envelope over epochs): repeated data is never worth less
than stopping earlier, and the laws cannot describe a loss that rises with more data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling.table.contract import REQUIRED_COLUMNS, X_COLUMNS
from scaling.table.load import TableError, resolve_column, to_numeric

LAWS = ("chinchilla", "data-constrained")
LAW_ROLES = ("standard", "regularized")


@dataclass(frozen=True)
class JointPoints:
    """Rows n, d, (u,) y and, when grouped, group; one per usable point."""

    points: pd.DataFrame
    columns: dict[str, str]
    """Which column each input came from ({"n": "n_params", "d": ..., "y": ...})."""
    group: str | None
    n_rows: int
    n_skipped: int
    from_results: bool
    """Read from a dcsl results table (best loss per recipe and (N, D, U))."""

    def groups(self) -> list[tuple[object, pd.DataFrame]]:
        if self.group is None:
            return [(None, self.points)]
        values = sorted(set(self.points["group"]), key=str)
        return [(v, self.points[self.points["group"] == v]) for v in values]


def is_results_table(table: pd.DataFrame) -> bool:
    return all(c in table.columns for c in REQUIRED_COLUMNS)


def joint_points(table: pd.DataFrame, law: str, *, n: str | None = None, d: str | None = None,
                 u: str | None = None, y: str | None = None, group: str | None = None,
                 x_column: str = "n_params", source: str = "table") -> JointPoints:
    """The points of `law` from `table`: the named columns, or a results table's runs."""
    if law not in LAWS:
        raise TableError(f"{source}: unknown law {law!r} (choose {' or '.join(LAWS)})")
    table = table.rename(columns=str)
    named = {k: v for k, v in (("n", n), ("d", d), ("u", u), ("y", y)) if v is not None}
    if not named and is_results_table(table):
        return _from_results(table, law, x_column, group, source)
    needed = ["n", "d", "y"] + (["u"] if law == "data-constrained" else [])
    missing = [k for k in needed if k not in named]
    if missing:
        flags = " ".join(f"--{k} COLUMN" for k in missing)
        raise TableError(f"{source}: the {law} law needs {flags} (columns: "
                         f"{', '.join(map(str, table.columns))})")
    if law == "chinchilla" and "u" in named:
        raise TableError(f"{source}: --u is for the data-constrained law (L(N, D) has no "
                         "unique-token input)")
    columns = {k: resolve_column(table, named[k], source) for k in needed}
    frame = pd.DataFrame({k: to_numeric(table[c], c, source) for k, c in columns.items()})
    if group is not None:
        group = resolve_column(table, group, source)
        frame["group"] = table[group].astype(object).where(table[group].notna(), None)
    usable = frame.notna().all(axis=1)
    frame = frame[usable]
    _check_positive(frame, columns, source)
    return JointPoints(frame.reset_index(drop=True), columns, group, len(table),
                       int((~usable).sum()), False)


def best_loss_points(rows: pd.DataFrame, x_column: str = "n_params",
                     source: str = "results table") -> pd.DataFrame:
    """Training rows as law points: columns n, d, u, y, epochs, size, recipe; one point per
    (recipe, N, U, D) at its best loss, each the envelope over fewer epochs of the same
    (recipe, N, U)."""
    numbers = {c: to_numeric(rows[c], c, source) for c in (x_column, "budget_tokens", "val_loss")}
    epochs = (to_numeric(rows["epochs"], "epochs", source) if "epochs" in rows.columns
              else pd.Series(np.nan, index=rows.index))
    seen = (to_numeric(rows["tokens_seen"], "tokens_seen", source) if "tokens_seen" in rows.columns
            else pd.Series(np.nan, index=rows.index))
    tokens = seen.where(np.isfinite(seen) & (seen > 0), numbers["budget_tokens"] * epochs)
    # epochs as the runs were asked for (tokens seen fall a little short of budget x epochs:
    # whole batches only), so a message names the study's own epoch counts
    nominal = epochs.where(np.isfinite(epochs), tokens / numbers["budget_tokens"])
    frame = pd.DataFrame({"n": numbers[x_column], "d": tokens, "u": numbers["budget_tokens"],
                          "y": numbers["val_loss"], "epochs": nominal,
                          "size": rows["size"].astype(str) if "size" in rows.columns else "",
                          "recipe": rows["recipe"].astype(str)})
    frame = frame[frame[["n", "d", "u", "y"]].notna().all(axis=1) & np.isfinite(frame["y"])]
    if frame.empty:
        return frame
    best = frame.loc[frame.groupby(["recipe", "n", "u", "d"])["y"].idxmin()]
    best = best.sort_values(["recipe", "n", "u", "d"]).reset_index(drop=True)
    best["y"] = best.groupby(["recipe", "n", "u"])["y"].cummin()
    return best


def _from_results(table: pd.DataFrame, law: str, x_column: str, group: str | None,
                  source: str) -> JointPoints:
    if x_column not in X_COLUMNS or x_column not in table.columns:
        raise TableError(f"{source}: no column {x_column!r} for N")
    role = table["role"].astype(str) if "role" in table.columns else table["recipe"].astype(str)
    rows = table[(table["kind"].astype(str) == "train") & (table["status"].astype(str) == "succeeded")
                 & role.isin(LAW_ROLES)].copy()
    if group not in (None, "recipe"):
        # a law per recipe and value of the other column: "standard/0.1" for weight_decay 0.1
        column = resolve_column(rows, group, source)
        rows = rows.assign(recipe=rows["recipe"].astype(str) + "/" + rows[column].astype(str))
    frame = best_loss_points(rows, x_column, source)
    if frame.empty:
        raise TableError(f"{source}: no succeeded training runs of the standard or regularized "
                         "role to fit a law to")
    out = frame.rename(columns={"recipe": "group"})[["n", "d", "u", "y", "group"]]
    if law == "chinchilla":
        out = out.drop(columns="u")
    columns = {"n": x_column, "d": "tokens_seen", "y": "val_loss"}
    if law == "data-constrained":
        columns["u"] = "budget_tokens"
    _check_positive(out, columns, source)
    label = "recipe" if group in (None, "recipe") else f"recipe/{group}"
    return JointPoints(out.reset_index(drop=True), columns, label, len(table),
                       len(table) - len(rows), True)


def _check_positive(frame: pd.DataFrame, columns: dict[str, str], source: str) -> None:
    for key, column in columns.items():
        bad = ~np.isfinite(frame[key]) | (frame[key] <= 0)
        if bad.any():
            row = int(frame.index[bad][0])
            raise TableError(f"{source}: column {column!r} must be finite and positive to fit "
                             f"the law (data row {row + 1} has {frame.loc[row, key]})")
