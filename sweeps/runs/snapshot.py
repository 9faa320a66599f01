"""The run store as planning reads it: a ``Snapshot`` of every run's state and result, read
once, and ``search.json``, the adaptive rounds launched per tuning cell.

Reading the store never imports torch: planning is a pure function of the study and a
snapshot (``sweeps.planning``), so a re-plan after a crash is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pretrain.rundir import read_json
from pretrain.runkind import final_loss
from sweeps.runs.runstore import last_error, run_state, runs_dir

SEARCH_FILE = "search.json"


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

    @classmethod
    def read(cls, root: Path, pinned: dict[str, str] | None = None) -> Snapshot:
        snap = cls(root, rounds={key: entry["rounds"] for key, entry in read_search(root).items()},
                   pinned=dict(pinned or {}))
        base = runs_dir(root)
        if not base.exists():
            return snap
        for d in sorted(base.iterdir()):
            spec = read_json(d / "spec.json")
            if not spec or "id" not in spec:
                continue
            state = run_state(d)
            snap.states[spec["id"]], snap.dirs[spec["id"]], snap.specs[spec["id"]] = state, d, spec
            if state == "succeeded":
                snap.results[spec["id"]] = read_json(d / "result.json") or {}
            elif state == "failed":
                snap.errors[spec["id"]] = last_error(d)
        return snap

    def state(self, run_id: str) -> str:
        return self.states.get(run_id, "missing")

    def loss(self, run_id: str) -> float | None:
        return final_loss(self.results.get(run_id))
