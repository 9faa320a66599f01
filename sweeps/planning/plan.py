"""From a study and the runs that exist to the specs that should run next.

The study's stages run in order, each from what the previous ones produced:

1. ``tune``: every (recipe, budget, size) cell, a grid or an adaptive certificate search;
2. ``members``: ensemble members at each cell's tuned point under the member rule;
3. later stages (ensemble evals, teachers, students, downstream evals) are added by
   ``sweeps.planning.stages`` from the kinds that their packages define.

Everything here is a pure function of the study and a ``Snapshot`` of the run store,
so planning is cheap, never imports torch, and a re-plan after a crash is exact.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from pretrain.spec import TrainSpec
from sweeps.planning.tune import Point, Tuned, next_points, point, tuned
from sweeps.runs import Snapshot, search_key
from sweeps.study import AXES, SEED_STRIDE, UNPINNED, Recipe, Study

UNPREPARED = "unprepared"


def store_identity(study: Study) -> tuple[str, int | None]:
    """(store id, vocab size) of the study's store, or ('unprepared', vocab) before it exists."""
    from pretrain.store import TokenStore

    if (study.store / "manifest.json").exists():
        store = TokenStore(study.store)
        return store.store_id, store.vocab_size
    vocab = study.vocab_size or (study.prepare or {}).get("vocab_size")
    if not vocab and study.base is not None:
        vocab = study.base.shape.vocab_size  # the base's tokenizer makes the store
    return UNPREPARED, vocab


def train_spec(study: Study, store_id: str, budget: int, size: str, p: Point, member: int = 0) -> TrainSpec:
    """The training run of one lattice point; ``member`` k > 0 is the k-th extra seed."""
    values = dict(p)
    seed = study.seed * SEED_STRIDE + member
    base = study.base
    continued = ({"init_from": base.path, "init_id": base.id or UNPINNED}
                 if base is not None and size == base.name else {})
    return TrainSpec(size=size, store=str(study.store), store_id=store_id, tokens=budget,
                     epochs=int(values["epochs"]), lr=float(values["lr"]),
                     weight_decay=float(values["weight_decay"]), init_seed=seed, data_seed=seed,
                     **continued, **study.training.spec_fields())


def cells(study: Study) -> list[tuple[Recipe, int, str]]:
    """Every (recipe, budget, size) the study tunes, in a stable order.

    A recipe's data-scaling repeats are cells too, searched for ``repeat_rounds`` rounds
    (the recipe they yield carries that round limit).
    """
    out = []
    for r in study.recipes.values():
        main_budgets = r.budgets or study.budgets
        out += [(r, b, s) for b in main_budgets for s in (r.sizes or study.sizes)]
        repeat = replace(r, max_rounds=r.repeat_rounds)
        out += [(repeat, b, s) for b in r.repeat_budgets if b not in main_budgets for s in r.repeat_sizes]
    return out


def lattice_points(study: Study, recipe: Recipe) -> list[Point]:
    """All lattice points that satisfy the recipe's fixed axes (candidates for its best)."""
    out: list[Point] = [()]
    for axis in AXES:
        values = (recipe.fixed[axis],) if axis in recipe.fixed else study.lattice.axis(axis)
        out = [p + ((axis, v),) for p in out for v in values]
    return out


class CellPoints(NamedTuple):
    """The lattice points of one cell as the run store has them."""

    losses: dict[Point, float]
    """Finished points: the validation loss, or inf for a run whose loss diverged."""
    running: set[Point]
    broken: set[Point]
    """Points whose run failed for another reason (a crash, out of memory, a lost node):
    not evidence about the hyperparameters, so they certify nothing, and they are not
    proposed again unless the launch retries failed runs."""
    ids: dict[Point, str]
    waiting: set[Point]
    """Points whose round is still open: the run directory exists but never finished
    (pending, or stale after its worker died), cannot be read, or is gone although an
    adaptive round proposed it (search.json)."""
    specs: dict[Point, object]
    """The training spec of every lattice point."""


def cell_points(study: Study, snap: Snapshot, store_id: str, recipe: Recipe, budget: int, size: str
                ) -> CellPoints:
    """Every lattice point of one cell with its state."""
    cell = CellPoints({}, set(), set(), {}, set(), {})
    for p in lattice_points(study, recipe):
        spec = train_spec(study, store_id, budget, size, p)
        rid = spec.run_id
        state = snap.state(rid)
        cell.ids[p], cell.specs[p] = rid, spec
        if state == "succeeded":
            cell.losses[p] = snap.loss(rid)
        elif state == "failed" and rid in snap.diverged:
            cell.losses[p] = float("inf")
        elif state == "failed":
            cell.broken.add(p)
        elif state == "running":
            cell.running.add(p)
        elif state in ("pending", "stale", "unreadable") or (state == "missing" and rid in snap.proposed):
            cell.waiting.add(p)
    return cell


def cell_recipes(study: Study, spec: dict, store_id: str) -> list[str]:
    """The recipes whose cells contain this training run: the run is exactly the one the study
    asks for at that lattice point (same seed, batch, sequence length, store), so runs that
    other studies left in a shared run store are not mistaken for this study's."""
    if spec.get("kind") != "train":
        return []
    names = []
    cell_keys = {(r.name, b, s) for r, b, s in cells(study)}
    for recipe in study.recipes.values():
        if (recipe.name, spec["tokens"], spec["size"]) not in cell_keys:
            continue
        on_lattice = all(spec[a] in study.lattice.axis(a) for a in AXES)
        fixed_ok = all(spec[a] == v for a, v in recipe.fixed.items())
        if on_lattice and fixed_ok:
            p = point({a: spec[a] for a in AXES})
            if train_spec(study, store_id, spec["tokens"], spec["size"], p).run_id == spec.get("id"):
                names.append(recipe.name)
    return names


def cell_tuned(study: Study, snap: Snapshot, store_id: str, recipe: Recipe, budget: int, size: str
               ) -> tuple[Tuned, str | None]:
    """The cell's tuning outcome and the run id of its best point."""
    cell = cell_points(study, snap, store_id, recipe, budget, size)
    finite = {p: v for p, v in cell.losses.items() if v != float("inf")}
    result = tuned(recipe, study.lattice, finite)
    if result.best is not None:
        # Diverged neighbours were trained and are not better: they count toward the certificate.
        diverged = {p: v for p, v in cell.losses.items() if v == float("inf")}
        result = tuned(recipe, study.lattice, {**diverged, **finite})
    return result, (cell.ids[result.best] if result.best is not None else None)


def group_open(study: Study, snap: Snapshot, store_id: str, budget: int, size: str) -> bool:
    """Whether any tuning cell of this (budget, size) has a run open (running, pending or
    stale): recipes share these runs, so no cell of the group walks on or settles until
    they have finished (see ``sweeps.planning.stages.tune``)."""
    for r, b, s in cells(study):
        if (b, s) == (budget, size):
            cell = cell_points(study, snap, store_id, r, b, s)
            if cell.running or cell.waiting:
                return True
    return False


def settled(study: Study, snap: Snapshot, store_id: str, recipe: Recipe, budget: int, size: str
            ) -> tuple[Tuned, str | None]:
    """``cell_tuned`` once the cell's search has ended (nothing to propose, nothing running);
    (empty, None) before, so later stages never build on a best point that may still move."""
    cell = cell_points(study, snap, store_id, recipe, budget, size)
    rounds = snap.rounds.get(search_key(recipe.name, budget, size), 0)
    if (group_open(study, snap, store_id, budget, size)
            or next_points(recipe, study.lattice, cell.losses, cell.broken, rounds)):
        return tuned(recipe, study.lattice, {}), None
    return cell_tuned(study, snap, store_id, recipe, budget, size)


def member_cells(study: Study) -> list[tuple[int, str]]:
    """The (budget, size) cells that get an ensemble, in a stable order."""
    ens = study.ensembles
    if ens is None:
        return []
    recipe = study.recipes[ens.from_recipe]
    return [(b, s) for b in ens.budgets or recipe.budgets or study.budgets
            for s in ens.sizes or recipe.sizes or study.sizes]


def member_specs(study: Study, snap: Snapshot, store_id: str) -> dict[tuple[int, str], list[TrainSpec]]:
    """Ensemble members per (budget, size), from the settled tuned point of the source recipe.

    Member k has init and data seed k, starting at 0 only when the member rule keeps the
    tuned point (member 0 is then the tuned run itself); a shifted member set starts at
    seed 1, so no member ever lands on a lattice point that tuning would count as its own.
    """
    ens = study.ensembles
    if ens is None:
        return {}
    recipe = study.recipes[ens.from_recipe]
    out = {}
    for budget, size in member_cells(study):
        t, _ = settled(study, snap, store_id, recipe, budget, size)
        if t.best is None:
            continue
        best = dict(t.best)
        shifted = point(ens.member_point(best))
        first = 0 if shifted == t.best else 1
        out[(budget, size)] = [train_spec(study, store_id, budget, size, shifted, member=first + k)
                               for k in range(ens.members)]
    return out
