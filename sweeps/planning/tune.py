"""Tuning on the lattice: best points, convex certificates, and the adaptive search.

A point is a dict over the axes (epochs, lr, weight_decay). A best point is
*certified* when every one-step lattice neighbour along the recipe's free axes was
trained and none is better (the paper's "convex certificate"). A best point on the
lattice's edge has fewer neighbours; it is flagged ``at_edge`` because the optimum may
lie beyond the lattice.

The adaptive search is coordinate descent on the lattice: start at a point and its
neighbours, then repeatedly add the missing neighbours of the current best, until the
best is certified or the round limit is hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sweeps.study import AXES, Lattice, Recipe

Point = tuple[tuple[str, float], ...]  # hashable, sorted by axis


def point(values: dict[str, float]) -> Point:
    return tuple((a, values[a]) for a in AXES)


def neighbours(p: Point, lattice: Lattice, free: tuple[str, ...]) -> list[Point]:
    """The one-step lattice neighbours of ``p`` along the free axes (those that exist)."""
    values = dict(p)
    out = []
    for axis in free:
        grid = lattice.axis(axis)
        i = grid.index(values[axis])
        for j in (i - 1, i + 1):
            if 0 <= j < len(grid):
                out.append(point({**values, axis: grid[j]}))
    return out


def on_edge(p: Point, lattice: Lattice, free: tuple[str, ...]) -> bool:
    values = dict(p)
    return any(values[a] in (lattice.axis(a)[0], lattice.axis(a)[-1]) for a in free)


@dataclass(frozen=True)
class Tuned:
    """The outcome of tuning one (recipe, budget, size) cell."""

    best: Point | None
    loss: float | None
    certified: bool
    at_edge: bool
    runs_used: int
    lattice_size: int
    missing_neighbours: tuple[Point, ...]


def tuned(recipe: Recipe, lattice: Lattice, losses: dict[Point, float]) -> Tuned:
    """Best point among trained ``losses`` and whether it is certified."""
    size = lattice.size(recipe.fixed)
    if not losses:
        return Tuned(None, None, False, False, 0, size, ())
    best = min(losses, key=lambda p: (losses[p], p))
    nbrs = neighbours(best, lattice, recipe.free_axes())
    missing = tuple(n for n in nbrs if n not in losses)
    better = any(losses[n] < losses[best] for n in nbrs if n in losses)
    return Tuned(best, losses[best], not missing and not better, on_edge(best, lattice, recipe.free_axes()),
                 len(losses), size, missing)


def grid_points(recipe: Recipe, lattice: Lattice) -> list[Point]:
    axes = [((recipe.fixed[a],) if a in recipe.fixed else recipe.grid.get(a) or lattice.axis(a)) for a in AXES]
    out: list[Point] = [()]
    for axis, values in zip(AXES, axes, strict=True):
        out = [p + ((axis, v),) for p in out for v in values]
    return out


def next_points(recipe: Recipe, lattice: Lattice, losses: dict[Point, float],
                pending: set[Point], rounds_done: int) -> list[Point]:
    """Points to train next for one cell; empty when the cell's search is finished.

    ``losses`` are the finished points (a diverged run's loss is inf), ``pending`` those
    not to propose now (running, or failed for reasons other than divergence). Grid
    search asks for the whole grid at once.
    """
    if recipe.search == "grid":
        return [p for p in grid_points(recipe, lattice) if p not in losses and p not in pending]
    if rounds_done >= recipe.max_rounds:
        return []
    if losses and all(v == float("inf") for v in losses.values()):
        return []  # every point diverged: walking around divergence would only spend compute
    if not losses:
        start = point({**recipe.start, **recipe.fixed})
        candidates = [start, *neighbours(start, lattice, recipe.free_axes())]
    else:
        candidates = list(tuned(recipe, lattice, losses).missing_neighbours)
    return [p for p in candidates if p not in losses and p not in pending]
