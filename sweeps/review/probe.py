"""How fast this machine trains a study's models: a short measured probe of tokens/s.

``dcsl sweep plan`` trains the smallest and the largest planned size for a few steps in
this process (one step to warm up, then timed steps for about half a second each), on the
study's batch shape, its first training tokens and its thread count, and turns tokens/s
into an effective FLOP/s per size. Sizes in between are interpolated in log FLOPs per token
(small models use the CPU less well), sizes outside are held at the nearest measurement.
Without a store (before ``launch`` prepares it), with ``--no-probe``, or for a size whose
step alone would take seconds on a CPU, the rate is ``ASSUMED_CPU_FLOPS`` and the plan says so.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field

from pretrain.sizes import flops_per_token
from sweeps.study import Study, shape_of

# FLOP/s of one single-threaded training run when nothing was measured: the demo's runs
# trained at 2.8e10 (tiny-16k) to 6.9e10 (tiny-400k), 5.5e10 over all its FLOPs, on one core
# of an AVX-512 Xeon.
ASSUMED_CPU_FLOPS = 5e10
PROBE_SECONDS = 0.5
"""Timed training per probed size (after one warm-up step)."""
MAX_STEP_SECONDS = 1.0
"""A probe step longer than this (at the assumed rate, one sequence) is not attempted."""
MAX_TIMED_STEPS = 100


@dataclass(frozen=True)
class Throughput:
    """Effective training FLOP/s per size on this machine, measured or assumed."""

    cpu: str
    threads: int
    """Threads per run (the study's ``training.threads``, else the executor's share of cores)."""
    tokens_per_s: dict[str, float] = field(default_factory=dict)
    """Measured sizes only."""
    note: str = ""
    """Why something was assumed rather than measured (empty: all measured)."""
    seconds: float = 0.0
    flops_per_s: dict[str, float] = field(default_factory=dict)
    """Every planned size: measured, interpolated, or ``ASSUMED_CPU_FLOPS`` x threads."""

    @property
    def measured(self) -> bool:
        return bool(self.tokens_per_s)

    def rate(self, size: str) -> float:
        return self.flops_per_s.get(size, ASSUMED_CPU_FLOPS * self.threads)

    def to_dict(self) -> dict[str, object]:
        return {"cpu": self.cpu, "threads": self.threads, "measured": self.measured,
                "tokens_per_s": dict(self.tokens_per_s), "flops_per_s": dict(self.flops_per_s),
                "note": self.note, "probe_seconds": self.seconds}


def cpu_model_name() -> str:
    """lscpu's "Model name" (else /proc/cpuinfo's, else the platform's)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def run_threads(study: Study) -> int:
    """Threads each run uses: ``training.threads``, else the executor's share of the cores."""
    from sweeps.execution import worker_threads

    threads = study.training.threads
    if threads:
        return threads
    if study.executor.local_workers:
        return worker_threads(study.executor.local_workers)
    return os.cpu_count() or 1


def measure(study: Study, sizes: list[str], vocab: int, enabled: bool = True) -> Throughput:
    """Probe the smallest and the largest of ``sizes`` (by FLOPs per token), if allowed."""
    seq_len = study.training.seq_len
    threads = run_threads(study)
    cpu = cpu_model_name()
    by_cost = sorted(set(sizes), key=lambda s: flops_per_token(shape_of(study, s, vocab), seq_len))
    notes, measured = [], {}
    started = time.perf_counter()
    if not enabled:
        notes.append("probe skipped (--no-probe)")
    elif not (study.store / "manifest.json").exists():
        notes.append(f"no probe: the store {study.store} does not exist yet")
    elif by_cost:
        for size in dict.fromkeys([by_cost[0], by_cost[-1]]):
            try:
                tok_s = _probe(study, size, vocab, seq_len, threads)
            except (RuntimeError, ValueError, OSError) as exc:  # a plan never fails on its probe
                notes.append(f"{size} not probed ({type(exc).__name__}: {exc})")
                continue
            if tok_s is None:
                notes.append(f"{size} not probed (one step would take over {MAX_STEP_SECONDS:g} s on a CPU)")
            else:
                measured[size] = tok_s
    if not measured:
        notes.append(f"assumed {ASSUMED_CPU_FLOPS * threads:.2g} FLOP/s per run ({threads} thread"
                     f"{'s' if threads > 1 else ''})")
    rates = _rates(study, by_cost, measured, vocab, seq_len, threads)
    return Throughput(cpu, threads, measured, "; ".join(notes), time.perf_counter() - started, rates)


def _rates(study: Study, sizes: list[str], measured: dict[str, float], vocab: int, seq_len: int,
           threads: int) -> dict[str, float]:
    cost = {s: flops_per_token(shape_of(study, s, vocab), seq_len) for s in sizes}
    points = sorted((math.log(cost[s]), math.log(tok_s * cost[s])) for s, tok_s in measured.items())
    out = {}
    for s in sizes:
        if not points:
            out[s] = ASSUMED_CPU_FLOPS * threads
            continue
        x = math.log(cost[s])
        if len(points) == 1 or x <= points[0][0]:
            y = points[0][1]
        elif x >= points[-1][0]:
            y = points[-1][1]
        else:
            (x0, y0), (x1, y1) = points[0], points[-1]
            y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        out[s] = math.exp(y)
    return out


def _probe(study: Study, size: str, vocab: int, seq_len: int, threads: int) -> float | None:
    """Training tokens/s of ``size``: AdamW steps on the store's first tokens, as a run trains
    (fp32 on CPU, gradient clipping), timed after a warm-up step; None when too slow to try."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from pretrain.model import Llama
    from pretrain.store import TokenStore

    per_token = flops_per_token(shape_of(study, size, vocab), seq_len)
    batch = study.training.micro_batch_size or study.training.batch_size
    # Fewer sequences per step than the run uses when a full step would be slow: tokens/s of
    # a step hardly depends on its row count once rows are this long.
    affordable = int(MAX_STEP_SECONDS * ASSUMED_CPU_FLOPS * threads / (per_token * seq_len))
    if affordable < 1:
        return None
    rows = min(batch, affordable)
    tokens = np.asarray(TokenStore(study.store).train_tokens()[: rows * (seq_len + 1)], dtype=np.int64)
    if tokens.size < rows * (seq_len + 1):
        rows = max(1, tokens.size // (seq_len + 1))
        tokens = tokens[: rows * (seq_len + 1)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = Llama(shape_of(study, size, vocab), max_seq_len=seq_len)  # a base's shape too
        # The run's AdamW (pretrain.lit; not imported here: Lightning takes seconds to import).
        opt = torch.optim.AdamW(model.decay_groups(0.1), lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
        data = torch.from_numpy(tokens).view(rows, seq_len + 1)
        inputs, targets = data[:, :-1], data[:, 1:]

        def step() -> None:
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()  # warm-up: allocations and kernel choice
        steps, t0 = 0, time.perf_counter()
        while steps < MAX_TIMED_STEPS and (steps < 2 or time.perf_counter() - t0 < PROBE_SECONDS):
            step()
            steps += 1
        return steps * rows * seq_len / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
