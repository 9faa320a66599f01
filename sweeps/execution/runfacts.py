"""What a run directory says about its progress, read at one moment (``RunFacts``): its
state, the steps it trains (status.json's ``total_steps``, else its spec's schedule), the
last step and tokens/s its ``metrics.csv`` reports, and when it started and finished.
``sweeps.execution.progress`` turns these into ETAs.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from pretrain.rundir import RunDir, RunFileError
from pretrain.spec import steps_per_epoch
from sweeps.runs import read_index, run_id_of_dir, run_state, runs_dir

METRICS_FILE = "metrics.csv"
TAIL_BYTES = 8192
"""The end of metrics.csv that is read: its last rows are all a view needs."""
SPEED_ROWS = 3
"""A running run's speed is over its last this many rows (each row's tokens/s is since the last)."""
KINDS_WITH_STEPS = ("train", "distill")
# How a display groups states: stale, never started and unreadable runs are work still to do.
CLASS_OF = {"succeeded": "done", "failed": "failed", "running": "running"}
CLASSES = ("done", "running", "pending", "failed")


@dataclass(frozen=True)
class RunFacts:
    """What one run directory says about its progress, read at one moment."""

    run_id: str
    name: str
    stage: str
    state: str
    kind: str = ""
    size: str = ""
    group: str = ""
    """Runs whose tokens/s compare: the kind, and a token-level student apart (its teachers
    score every token it trains on)."""
    total_steps: int | None = None
    step: int = 0
    """The last step metrics.csv reports (0 before any row)."""
    tokens_per_step: int | None = None
    seq_len: int = 0
    tokens_per_s: float | None = None
    """The last row's (for a finished run without rows, result.json's)."""
    reported_at: float | None = None
    """When that row was written (metrics.csv's modification time)."""
    started: float | None = None
    finished: float | None = None
    attempts: int = 0

    @property
    def klass(self) -> str:
        return CLASS_OF.get(self.state, "pending")


def total_steps_of(spec: dict) -> int | None:
    """Optimizer steps of a training run or student, as pretrain.train and distill.student
    schedule them (``steps_per_epoch`` x epochs; a sequence-level student's real steps
    / (1 - synthetic weight), as distill.mixture.mixture_steps); None for other kinds."""
    if spec.get("kind") not in KINDS_WITH_STEPS:
        return None
    try:
        real = steps_per_epoch(int(spec["tokens"]), int(spec["seq_len"]), int(spec["batch_size"]))
        real *= int(spec.get("epochs", 1))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    w = float(spec.get("synthetic_weight") or 0.0)
    if spec.get("kind") == "distill" and spec.get("mode", "sequence") == "sequence" and 0 < w < 1:
        return max(real, round(real / (1.0 - w)))
    return real


def last_rows(path: Path, n: int = 2) -> list[dict[str, str]]:
    """The last ``n`` complete rows of a metrics.csv (a row being written is skipped)."""
    try:
        with open(path, "rb") as f:
            header = f.readline().decode(errors="replace")
            size = f.seek(0, os.SEEK_END)
            f.seek(max(len(header), size - TAIL_BYTES))
            tail = f.read().decode(errors="replace")
    except OSError:
        return []
    lines = tail.split("\n")
    if not tail.endswith("\n"):
        lines = lines[:-1]  # the row being appended right now
    if size > TAIL_BYTES + len(header):
        lines = lines[1:]  # the first line of the tail may be cut
    lines = [line for line in lines if line.strip()]
    return list(csv.DictReader(io.StringIO(header + "\n".join(lines[-n:]))))


def _number(row: dict[str, str], key: str) -> float | None:
    try:
        value = float(row.get(key) or "nan")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def row_speed(rows: list[dict[str, str]]) -> float | None:
    """Tokens/s over the last rows. Each row's is since the row before, so they combine as the
    time their steps took (a mean weighted by steps, of time per token), not as a plain mean."""
    pairs = [(_number(r, "step"), _number(r, "tokens_per_s")) for r in rows]
    steps = seconds = 0.0
    for i, (step, rate) in enumerate(pairs):
        if step is None or not rate or rate <= 0:
            continue
        j = i - 1 if i else 1  # the oldest row's interval is taken as the next one's
        other = pairs[j][0] if j < len(pairs) else None
        span = abs(step - other) if other is not None and other != step else 1.0
        steps, seconds = steps + span, seconds + span / rate
    return steps / seconds if seconds else None


def read_run(run_dir: Path, stage: str = "", spec: dict | None = None) -> RunFacts:
    """One run's facts; a directory that cannot be read is an unreadable run, never an error."""
    run_dir = Path(run_dir)
    rid = run_id_of_dir(run_dir) or run_dir.name
    state = run_state(run_dir)
    run = RunDir(run_dir)
    try:
        spec = run.spec() or spec or {}
        status = run.status()
        result = run.result() if state == "succeeded" else None
    except RunFileError:
        return RunFacts(rid, run_dir.name, stage, "unreadable")
    facts = _from_spec(spec.get("id", rid), run_dir.name, stage, state, spec)
    rows = last_rows(run_dir / METRICS_FILE, SPEED_ROWS)
    step, tok_s, reported = 0, None, None
    if rows:
        last = rows[-1]
        step = int(_number(last, "step") or 0)
        tok_s = row_speed(rows)
        try:
            reported = (run_dir / METRICS_FILE).stat().st_mtime
        except OSError:  # moved aside meanwhile
            reported = None
        if facts.tokens_per_step is None and step:
            tokens = _number(last, "tokens")
            facts = replace(facts, tokens_per_step=int(tokens / step) if tokens else None)
    if result and isinstance(result.get("tokens_per_s"), int | float):
        tok_s = float(result["tokens_per_s"])  # a finished run's own average
    total = status.get("total_steps") or facts.total_steps
    return replace(facts, total_steps=int(total) if total else None, step=step,
                    tokens_per_s=tok_s if tok_s and tok_s > 0 else None, reported_at=reported,
                    started=status.get("started"),
                    finished=status.get("updated") if state in ("succeeded", "failed") else None,
                    attempts=int(status.get("attempts") or 0))


def _from_spec(rid: str, name: str, stage: str, state: str, spec: dict) -> RunFacts:
    kind = str(spec.get("kind", ""))
    group = "distill-token" if kind == "distill" and spec.get("mode") == "token" else kind
    per_step = (int(spec["batch_size"]) * int(spec["seq_len"])
                if kind in KINDS_WITH_STEPS and "batch_size" in spec and "seq_len" in spec else None)
    return RunFacts(rid, name, stage, state, kind, str(spec.get("size", "")), group, total_steps_of(spec),
                    tokens_per_step=per_step, seq_len=int(spec.get("seq_len") or 0))


def read_runs(dirs: list[Path], stage_of: dict[str, str] | None = None,
              done: dict[Path, RunFacts] | None = None) -> list[RunFacts]:
    """``read_run`` of each directory (its stage by directory name); a run found succeeded is
    kept in ``done`` and not read again (nothing changes a succeeded run)."""
    done = {} if done is None else done
    out = []
    for d in dirs:
        facts = done.get(d) or read_run(d, (stage_of or {}).get(Path(d).name, ""))
        if facts.state == "succeeded":
            done[d] = facts
        out.append(facts)
    return out


def study_runs(root: Path, done: dict[Path, RunFacts] | None = None) -> list[RunFacts]:
    """Every run the launch index holds (the study's planned runs), by stage; a planned run
    without a directory yet is pending. ``done`` as for ``read_runs``."""
    index = read_index(root)
    if index is None:
        return []
    done = {} if done is None else done
    base = runs_dir(root)
    dirs = {run_id_of_dir(d): d for d in (base.iterdir() if base.exists() else ()) if d.is_dir()}
    out = []
    for rid, entry in index.runs.items():
        d = dirs.get(rid)
        if d is None:
            out.append(_from_spec(rid, rid, entry.stage, "missing", entry.spec))
            continue
        facts = done.get(d) or read_run(d, entry.stage, entry.spec)
        if facts.state == "succeeded":
            done[d] = facts
        out.append(replace(facts, stage=entry.stage))
    return out
