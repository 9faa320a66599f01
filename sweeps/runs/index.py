"""What launch knew, recorded for the commands that only read: ``index.json``.

Each round, ``dcsl sweep launch`` records every run the study's stages planned (its stage,
the labels the results table shows it under, its spec) and the identities it pinned once
(the token store, the eval data, the base model). ``collect`` and ``status`` then read the
run store and this index and nothing else: no planner re-run, no dataset loaded, no spec
re-hashed to find a run's recipe. A run in the store but not in the index is not this
study's (another study sharing the store left it).

Several launchers may work one study: the index is merged, never replaced, under the same
lock as search.json, so each one's runs stay recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pretrain.rundir import atomic_write_json, locked, read_json

INDEX_FILE = "index.json"
LOCK_FILE = ".search.lock"
VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One planned run: the stage that planned it, its table labels, and its spec."""

    stage: str
    labels: tuple[str, ...]
    spec: dict


@dataclass(frozen=True)
class Index:
    runs: dict[str, Entry] = field(default_factory=dict)
    pinned: dict[str, object] = field(default_factory=dict)
    """Identities pinned at launch: store_id, vocab, eval data, base id."""

    def labels(self, run_id: str) -> tuple[str, ...]:
        entry = self.runs.get(run_id)
        return entry.labels if entry else ()


def read_index(root: Path) -> Index | None:
    """The study's launch index, or None before any launch recorded one."""
    data = read_json(Path(root) / INDEX_FILE)
    if data is None:
        return None
    runs = {rid: Entry(e["stage"], tuple(e["labels"]), e["spec"]) for rid, e in data.get("runs", {}).items()}
    return Index(runs, dict(data.get("pinned", {})))


def record(root: Path, planned: dict[str, tuple[str, tuple[str, ...], dict]],
           pinned: dict[str, object]) -> None:
    """Merge this round's planned runs (run id -> (stage, labels, spec json)) and the pins
    into index.json. The first stage to plan a run names it ("resume" gives way to the stage
    that planned it); labels accumulate."""
    with locked(Path(root) / LOCK_FILE):
        current = read_json(Path(root) / INDEX_FILE) or {}
        runs = dict(current.get("runs", {}))
        changed = current.get("pinned") != pinned or current.get("version") != VERSION
        for rid, (stage, labels, spec) in planned.items():
            entry = runs.get(rid)
            if entry is None:
                runs[rid] = {"stage": stage, "labels": list(labels), "spec": spec}
                changed = True
                continue
            if entry["stage"] == "resume" and stage != "resume":
                entry["stage"], changed = stage, True
            new = [label for label in labels if label not in entry["labels"]]
            if new:
                entry["labels"] = [*entry["labels"], *new]
                changed = True
        if changed:
            atomic_write_json(Path(root) / INDEX_FILE, {"version": VERSION, "pinned": pinned,
                                                        "runs": runs})
