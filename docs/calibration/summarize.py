"""Tables and figures of the calibration scans (sweeps/studies/calibration/*.yaml).

    python docs/calibration/summarize.py ROOT     # ROOT: the --root every scan was launched with

Each scan is an ordinary dcsl study; they share one run store, so a run asked for by two
scans is trained once. This script collects each scan through `sweeps.collect`, prints one
pivot table per scan (validation loss by hyperparameters and size, nats/token) and draws
docs/calibration/*.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sweeps.collect import collect  # noqa: E402
from sweeps.planning import grid_points  # noqa: E402
from sweeps.study import AXES, load_study  # noqa: E402

HERE = Path(__file__).resolve().parent
SCANS = sorted((HERE.parents[1] / "sweeps" / "studies" / "calibration").glob("*.yaml"))


def scan_table(path: Path, root: Path) -> pd.DataFrame:
    study = load_study(path, root=root)
    table, _, _ = collect(study)
    # This scan's own grid points (runs of other scans in the shared store are labelled "other",
    # or lie outside the grid).
    grid = {(recipe.name, *(dict(p)[a] for a in AXES))
            for recipe in study.recipes.values() for p in grid_points(recipe, study.lattice)}
    keys = zip(table["recipe"], table["epochs"], table["lr"], table["weight_decay"], strict=True)
    own = pd.Series([k in grid for k in keys], index=table.index)
    done = table[(table["kind"] == "train") & (table["status"] == "succeeded") & own].copy()
    done["batch"] = study.training.batch_size
    return done.drop_duplicates("run_id")


def pivot(done: pd.DataFrame) -> str:
    sizes = done.sort_values("n_params")["size"].unique()
    p = done.pivot_table(index=["budget_tokens", "epochs", "lr", "weight_decay"], columns="size",
                         values="val_loss")
    return p[[s for s in sizes if s in p.columns]].round(3).to_markdown()


def size_figure(done: pd.DataFrame, out: Path, title: str) -> None:
    """Best loss per size: the usual weight decay (0.1, best over epochs) against weight decay
    tuned at each epoch count that the scans tried beyond it."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = "n_params_non_embedding"

    def line(rows: pd.DataFrame, style: str, label: str) -> None:
        best = rows.loc[rows.groupby("size")["val_loss"].idxmin()].sort_values(x)
        ax.plot(best[x], best["val_loss"], style, label=label)

    line(done[done["weight_decay"] == 0.1], "s--", "weight decay 0.1, best epochs")
    tuned = done[done["weight_decay"] != 0.1]
    for epochs, rows in tuned.groupby("epochs"):
        if rows["size"].nunique() >= 2 and epochs >= 16:
            line(rows, "o-", f"weight decay tuned, {epochs} epochs")
    _finish(fig, ax, "non-embedding parameters", title, out)


def decay_figure(done: pd.DataFrame, epochs: int, out: Path, title: str) -> None:
    rows = done[done["epochs"] == epochs]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for size, g in rows.sort_values("n_params").groupby("size", sort=False):
        g = g.groupby("weight_decay")["val_loss"].min()
        ax.plot(g.index, g.values, "o-", label=size)
    _finish(fig, ax, "weight decay", title, out)


def _finish(fig, ax, xlabel: str, title: str, out: Path) -> None:  # noqa: ANN001
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(root: str) -> None:
    tables = {}
    for path in SCANS:
        done = scan_table(path, Path(root))
        tables[path.stem] = done
        batch = int(done["batch"].iloc[0]) if len(done) else 0
        print(f"## {path.stem} (batch {batch} x 128 tokens, {len(done)} runs)\n")
        print(pivot(done) + "\n")
    every = pd.concat(tables.values()).drop_duplicates("run_id")
    speed = every.groupby("size").agg(non_embedding=("n_params_non_embedding", "first"),
                                      tokens_per_s=("tokens_per_s", "median"))
    print("## tokens/s per run (1 thread, two runs side by side; median)\n")
    print(speed.sort_values("non_embedding").round(0).to_markdown() + "\n")
    for budget in sorted(every["budget_tokens"].unique()):
        at = every[(every["batch"] == 8) & (every["budget_tokens"] == budget)]
        if at["size"].nunique() >= 4:
            size_figure(at, HERE / f"sizes-{budget // 1000}k.png",
                        f"{budget // 1000}k tokens, batch 8 x 128, best over the scans' points")
            decay_figure(at, 16, HERE / f"decay-{budget // 1000}k.png",
                         f"{budget // 1000}k tokens, batch 8, 16 epochs")


if __name__ == "__main__":
    main(sys.argv[1])
