"""The run store as planning reads it: a ``Snapshot`` of every run's state and result, read
once, and ``search.json``, the adaptive rounds launched per tuning cell.

Reading the store never imports torch: planning is a pure function of the study and a
snapshot (``sweeps.planning``), so a re-plan after a crash is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.rundir import RunDir, RunFileError, read_json
from pretrain.runkind import final_loss
from pretrain.spec import ID_LENGTH
from sweeps.runs.runstore import last_error, run_state_and_reason, runs_dir

SEARCH_FILE = "search.json"


def run_id_of_dir(path: Path) -> str | None:
    """The run id a run directory's name ends in (``<readable name>-<id>``), or None."""
    tail = Path(path).name.rsplit("-", 1)[-1]
    return tail if re.fullmatch(f"[0-9a-f]{{{ID_LENGTH}}}", tail) else None


def search_key(recipe: str, budget: int, size: str) -> str:
    """The name of a tuning cell in search.json."""
    return f"{recipe}|{budget}|{size}"


def read_search(root: Path) -> dict[str, dict]:
    """search.json: per tuning cell, the adaptive rounds launched and the runs they proposed
    ({"rounds": n, "runs": [run ids]}; an older file holds the round count alone)."""
    raw = read_json(Path(root) / SEARCH_FILE) or {}
    return {key: (entry if isinstance(entry, dict) else {"rounds": int(entry), "runs": []})
            for key, entry in raw.items()}


@dataclass
class Snapshot:
    """The run store as read once: run id -> (state, result)."""

    root: Path
    states: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    """Adaptive-search rounds launched per cell (``search_key``), kept in search.json."""
    errors: dict[str, str] = field(default_factory=dict)
    """First line of the error of each failed run."""
    specs: dict[str, dict] = field(default_factory=dict)
    """spec.json of every run."""
    pinned: dict[str, str] = field(default_factory=dict)
    """Data identities pinned once per launch (the eval data), so planning opens no dataset."""
    proposed: set[str] = field(default_factory=set)
    """Run ids that adaptive rounds proposed (search.json): a decision the search rests on,
    so one whose directory is gone is lost work to retrain, not a point never tried."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Run id -> which file of its directory cannot be read, and why (state "unreadable")."""
    diverged: set[str] = field(default_factory=set)
    """Failed runs whose loss went NaN or infinite (status.json's ``diverged``)."""

    @classmethod
    def read(cls, root: Path, pinned: dict[str, str] | None = None) -> Snapshot:
        search = read_search(root)
        snap = cls(root, rounds={key: entry["rounds"] for key, entry in search.items()},
                   pinned=dict(pinned or {}),
                   proposed={rid for entry in search.values() for rid in entry["runs"]})
        base = runs_dir(root)
        if not base.exists():
            return snap
        for d in sorted(base.iterdir()):
            if not d.is_dir():
                continue
            try:
                spec = read_json(d / "spec.json")
            except RunFileError as e:
                # A damaged spec: the run is still this directory's (its name ends in its id).
                rid = run_id_of_dir(d)
                if rid is not None:
                    snap.states[rid], snap.dirs[rid], snap.unreadable[rid] = "unreadable", d, str(e)
                continue
            if not spec or "id" not in spec:
                continue
            rid = spec["id"]
            state, why = run_state_and_reason(d)
            snap.states[rid], snap.dirs[rid], snap.specs[rid] = state, d, spec
            if state == "succeeded":
                try:
                    snap.results[rid] = read_json(d / "result.json") or {}
                except RunFileError as e:
                    state, why = "unreadable", str(e)
                    snap.states[rid] = state
            if state == "unreadable":
                snap.unreadable[rid] = why
            elif state == "failed":
                snap.errors[rid] = last_error(d)
                if RunDir(d).status().get("diverged"):
                    snap.diverged.add(rid)
        return snap

    def state(self, run_id: str) -> str:
        return self.states.get(run_id, "missing")

    def loss(self, run_id: str) -> float | None:
        return final_loss(self.results.get(run_id))
