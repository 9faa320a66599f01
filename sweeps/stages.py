"""The stages of a study, in order; each asks for the specs it wants given the run store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pretrain.rundir import read_json
from sweeps.kinds import kind_of
from sweeps.plan import Snapshot, cell_points, cells, member_specs, train_spec
from sweeps.study import Study
from sweeps.tune import next_points


@dataclass(frozen=True)
class Stage:
    name: str
    next_specs: Callable[[Study, Snapshot, str, int], list]


def unfinished_specs(study: Study, snap: Snapshot, store_id: str, round_no: int) -> list:
    """Runs an earlier launch planned but that never finished (pending, or stale: job died)."""
    if round_no > 0:
        return []
    out = []
    for rid, state in snap.states.items():
        if state in ("pending", "stale"):
            spec_json = read_json(snap.dirs[rid] / "spec.json")
            out.append(kind_of(spec_json).spec_from_json(spec_json))
    return out


def tune_specs(study: Study, snap: Snapshot, store_id: str, round_no: int) -> list:
    """Next points of every tuning cell (the whole grid, or the adaptive frontier)."""
    out = []
    for recipe, budget, size in cells(study):
        losses, running, _ = cell_points(study, snap, store_id, recipe, budget, size)
        for p in next_points(recipe, study.lattice, losses, running, round_no):
            out.append(train_spec(study, store_id, budget, size, p))
    return out


def members(study: Study, snap: Snapshot, store_id: str, round_no: int) -> list:
    return [s for specs in member_specs(study, snap, store_id).values() for s in specs]


STAGES: list[Stage] = [
    Stage("resume", unfinished_specs),
    Stage("tune", tune_specs),
    Stage("members", members),
]
