"""How far a study's runs are, and how long the rest will take: ETAs from what runs report.

Each run directory says where it is: status.json (state, ``total_steps`` once training
starts, when it started), ``metrics.csv`` (a row every few optimizer steps: step, tokens,
tokens/s, ...) and, once finished, result.json (its training tokens/s). From those:

- a running run has ``(total_steps - step) / steps per second`` left, its speed being its
  last row's tokens/s over the tokens of one step, less the time since that row was written;
- a pending run (or a running one that has not reported yet) has its steps left at the
  tokens/s measured for runs of the same kind and size (running ones and finished ones);
  for a size none has reported, a measured size is converted through FLOPs per token, and
  where the plan's probe (``prior``, FLOP/s per size) is at hand it shapes that conversion
  (small models use a CPU less well), or stands in alone before anything has reported. Each
  pending run also pays the start-up, validation and checkpoint time that finished runs
  measured beyond their training steps;
- a run of a kind without steps (ensemble losses, teachers' sampling, downstream evals)
  takes as long as finished runs of its kind took;
- a round's ETA is those times worked off by ``parallelism`` workers, the running runs
  first, then the pending ones longest first (as the launcher hands them out).

No ETA ignores partial progress, and none is unknown once any run has reported (a run
that cannot be estimated is counted and said, never silently dropped).
"""

from __future__ import annotations

import csv
import heapq
import io
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pretrain.rundir import RunDir, RunFileError
from pretrain.spec import steps_per_epoch
from sweeps.runs import read_index, run_id_of_dir, run_state, runs_dir

METRICS_FILE = "metrics.csv"
TAIL_BYTES = 8192
"""The end of metrics.csv that is read: its last rows are all a view needs."""
KINDS_WITH_STEPS = ("train", "distill")
# How a display groups states: stale, never started and unreadable runs are work still to do.
CLASS_OF = {"succeeded": "done", "failed": "failed", "running": "running"}
CLASSES = ("done", "running", "pending", "failed")

Cost = Callable[[str, int], "float | None"]
"""(size, seq_len) -> training FLOPs per token, or None when the size is unknown."""


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
    rows = last_rows(run_dir / METRICS_FILE)
    step, tok_s, reported = 0, None, None
    if rows:
        last = rows[-1]
        step = int(_number(last, "step") or 0)
        tok_s = _number(last, "tokens_per_s")
        reported = (run_dir / METRICS_FILE).stat().st_mtime
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


@dataclass(frozen=True)
class RunEta:
    facts: RunFacts
    remaining_s: float | None
    """None: nothing to estimate it from."""
    steps_per_s: float | None = None


@dataclass(frozen=True)
class ProgressView:
    """Every run's time left and the round's ETA, at one moment."""

    runs: tuple[RunEta, ...]
    parallelism: int
    eta_s: float | None
    """None only when work is left and no run of it can be estimated."""
    unestimated: int = 0
    """Unfinished runs with nothing to estimate their time from (left out of ``eta_s``)."""
    stages: tuple[str, ...] = field(default=())

    def counts(self, stage: str | None = None) -> dict[str, int]:
        out = dict.fromkeys(CLASSES, 0)
        for r in self.runs:
            if stage is None or r.facts.stage == stage:
                out[r.facts.klass] += 1
        return out

    @property
    def running(self) -> list[RunEta]:
        return [r for r in self.runs if r.facts.klass == "running"]

    @property
    def finished(self) -> bool:
        """Nothing running and nothing a worker was given (runs that are stale or were never
        started wait for a launcher, not for this view)."""
        return not any(r.facts.state in ("running", "pending") for r in self.runs)


def estimate(runs: list[RunFacts], parallelism: int, now: float | None = None, cost: Cost | None = None,
             prior: dict[str, float] | None = None, reference: list[RunFacts] = ()) -> ProgressView:
    """Time left of every run and the ETA of all of them over ``parallelism`` workers; see the
    module docstring. ``cost`` converts between sizes, ``prior`` is FLOP/s per size, and
    ``reference`` runs (finished in earlier rounds) only lend their measurements."""
    now = time.time() if now is None else now
    rates = _Rates([*runs, *reference], cost, prior or {})
    etas = tuple(RunEta(r, *_remaining(r, rates, now)) for r in runs)
    todo = [e for e in etas if e.facts.klass in ("running", "pending")]
    unknown = sum(e.remaining_s is None for e in todo)
    running = [e.remaining_s or 0.0 for e in todo if e.facts.klass == "running"]
    pending = [e.remaining_s or 0.0 for e in todo if e.facts.klass == "pending"]
    eta = None if todo and unknown == len(todo) else work_off(running, pending, parallelism)
    stages = tuple(dict.fromkeys(r.stage for r in runs))
    return ProgressView(etas, parallelism, eta, unknown, stages)


def work_off(running: list[float], pending: list[float], parallelism: int) -> float:
    """When the last of these runs ends: each running run holds a worker, and each pending run
    (longest first) goes to the worker that frees up first."""
    workers = sorted(running) + [0.0] * max(0, parallelism - len(running))
    if not workers:
        workers = [0.0]
    heapq.heapify(workers)
    for seconds in sorted(pending, reverse=True):
        heapq.heappush(workers, heapq.heappop(workers) + seconds)
    return max(workers)


class _Rates:
    """Measured speeds: tokens/s per (group, size), the start-up overhead of a run, and the
    duration of a run of each kind without steps."""

    def __init__(self, runs: list[RunFacts], cost: Cost | None, prior: dict[str, float]) -> None:
        self.cost, self.prior = cost, prior
        speeds: dict[tuple[str, str], list[float]] = defaultdict(list)
        overheads, durations = [], defaultdict(list)
        for r in runs:
            if r.tokens_per_s and r.klass in ("running", "done"):
                speeds[(r.group, r.size)].append(r.tokens_per_s)
            whole = r.klass == "done" and r.attempts == 1 and r.started and r.finished
            if whole and r.total_steps is None:
                durations[r.kind].append(r.finished - r.started)
            elif whole and r.tokens_per_s and r.tokens_per_step:
                training = r.total_steps * r.tokens_per_step / r.tokens_per_s
                overheads.append(max(0.0, r.finished - r.started - training))
        self.speed = {key: sum(v) / len(v) for key, v in speeds.items()}
        self.seq_len = {(r.group, r.size): r.seq_len for r in runs}
        self.overhead = sum(overheads) / len(overheads) if overheads else 0.0
        self.duration = {kind: sum(v) / len(v) for kind, v in durations.items()}

    def _fpt(self, size: str, seq_len: int) -> float | None:
        if self.cost is None:
            return None
        try:
            value = self.cost(size, seq_len)
        except (KeyError, TypeError, ValueError):
            return None
        return value if value and value > 0 else None

    def tokens_per_s(self, r: RunFacts) -> float | None:
        """Measured for the run's group and size, else converted from the nearest measured
        size (in FLOPs per token; same group first), else the probe's."""
        if (r.group, r.size) in self.speed:
            return self.speed[(r.group, r.size)]
        fpt = self._fpt(r.size, r.seq_len)
        if fpt is None:
            return None
        measured = [(key, f) for key in self.speed if (f := self._fpt(key[1], self.seq_len[key]))]
        same = [(key, f) for key, f in measured if key[0] == r.group] or measured
        if same:
            (group, size), ref = min(same, key=lambda kf: abs(math.log(kf[1] / fpt)))
            flops = self.speed[(group, size)] * ref  # FLOP/s measured at the reference size
            if r.size in self.prior and self.prior.get(size):
                flops *= self.prior[r.size] / self.prior[size]
            return flops / fpt
        return self.prior[r.size] / fpt if self.prior.get(r.size) else None


def _remaining(r: RunFacts, rates: _Rates, now: float) -> tuple[float | None, float | None]:
    """(seconds left, steps per second) of one run."""
    if r.klass in ("done", "failed"):
        return 0.0, None
    since_start = max(0.0, now - r.started) if r.klass == "running" and r.started else 0.0
    if r.total_steps is None or not r.tokens_per_step:
        if r.kind in rates.duration:
            return max(0.0, rates.duration[r.kind] - since_start), None
        return None, None
    left = max(0, r.total_steps - r.step)
    if r.klass == "running" and r.tokens_per_s and r.reported_at is not None:
        sps = r.tokens_per_s / r.tokens_per_step
        return max(0.0, left / sps - max(0.0, now - r.reported_at)), sps
    tok_s = rates.tokens_per_s(r)
    if not tok_s:
        return None, None
    start_up = max(0.0, rates.overhead - since_start)
    return left * r.tokens_per_step / tok_s + start_up, tok_s / r.tokens_per_step


def study_cost(study, vocab: int | None) -> Cost | None:  # noqa: ANN001 - a Study
    """FLOPs per token of the study's sizes (custom ones and a base included)."""
    if not vocab:
        return None
    from pretrain.sizes import flops_per_token
    from sweeps.study import shape_of

    cache: dict[tuple[str, int], float | None] = {}

    def cost(size: str, seq_len: int) -> float | None:
        if (size, seq_len) not in cache:
            try:
                cache[(size, seq_len)] = flops_per_token(shape_of(study, size, vocab), seq_len or
                                                         study.training.seq_len)
            except (KeyError, TypeError, ValueError):
                cache[(size, seq_len)] = None
        return cache[(size, seq_len)]

    return cost
