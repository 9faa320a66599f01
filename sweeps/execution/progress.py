"""How far a study's runs are, and how long the rest will take: ETAs from what runs report
(``sweeps.execution.runfacts`` reads it).

Each run directory says where it is: status.json (state, ``total_steps`` once training
starts, when it started), ``metrics.csv`` (a row every few optimizer steps: step, tokens,
tokens/s, ...) and, once finished, result.json (its training tokens/s). From those:

- a running run has ``(total_steps - step) / steps per second`` left, its speed being its
  last rows' tokens/s over the tokens of one step, less the time since the last row was
  written;
- a pending run (or a running one that has not reported yet) has its steps left at the
  tokens/s measured for runs of the same kind and size (running ones and finished ones);
  for a size none has reported, a measured size is converted through FLOPs per token, and
  where the plan's probe (``prior``, FLOP/s per size) is at hand it shapes that conversion
  (small models use a CPU less well), or stands in alone before anything has reported. Each
  pending run also pays the start-up, validation and checkpoint time that finished runs
  measured beyond their training steps;
- a run of a kind without steps (ensemble losses, teachers' sampling, downstream evals)
  takes as long as finished runs of its kind took; a run with nothing of its kind measured
  yet, as long as the mean finished run (a guess, counted as one);
- a round's ETA is those times worked off by ``parallelism`` workers, the running runs
  first, then the pending ones longest first (as the launcher hands them out).

No ETA ignores partial progress, and none is unknown once any run has reported (a run
that cannot be estimated is counted and said, never silently dropped).
"""

from __future__ import annotations

import heapq
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sweeps.execution.runfacts import CLASSES, RunFacts

Cost = Callable[[str, int], "float | None"]
"""(size, seq_len) -> training FLOPs per token, or None when the size is unknown."""


@dataclass(frozen=True)
class RunEta:
    facts: RunFacts
    remaining_s: float | None
    """None: nothing to estimate it from."""
    steps_per_s: float | None = None
    guessed: bool = False
    """Timed as the mean finished run: nothing of its kind (and size) has been measured."""


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
    guessed: int = 0
    """Unfinished runs timed as the mean finished run (see ``RunEta.guessed``)."""

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
    return ProgressView(etas, parallelism, eta, unknown, stages, sum(e.guessed for e in todo))


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
        overheads, durations, walls = [], defaultdict(list), []
        for r in runs:
            if r.tokens_per_s and r.klass in ("running", "done"):
                speeds[(r.group, r.size)].append(r.tokens_per_s)
            whole = r.klass == "done" and r.attempts == 1 and r.started and r.finished
            if whole:
                walls.append(r.finished - r.started)
            if whole and r.total_steps is None:
                durations[r.kind].append(r.finished - r.started)
            elif whole and r.tokens_per_s and r.tokens_per_step:
                training = r.total_steps * r.tokens_per_step / r.tokens_per_s
                overheads.append(max(0.0, r.finished - r.started - training))
        self.speed = {key: sum(v) / len(v) for key, v in speeds.items()}
        self.seq_len = {(r.group, r.size): r.seq_len for r in runs}
        self.overhead = sum(overheads) / len(overheads) if overheads else 0.0
        self.duration = {kind: sum(v) / len(v) for kind, v in durations.items()}
        self.any_run = sum(walls) / len(walls) if walls else None

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


def _remaining(r: RunFacts, rates: _Rates, now: float) -> tuple[float | None, float | None, bool]:
    """(seconds left, steps per second, guessed) of one run: measured where anything of its
    kind (and size) was, else as long as the mean finished run, a guess that says so."""
    seconds, sps = _measured(r, rates, now)
    if seconds is None and rates.any_run is not None and r.klass in ("running", "pending"):
        return max(0.0, rates.any_run - _since_start(r, now)), None, True
    return seconds, sps, False


def _since_start(r: RunFacts, now: float) -> float:
    return max(0.0, now - r.started) if r.klass == "running" and r.started else 0.0


def _measured(r: RunFacts, rates: _Rates, now: float) -> tuple[float | None, float | None]:
    if r.klass in ("done", "failed"):
        return 0.0, None
    since_start = _since_start(r, now)
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
