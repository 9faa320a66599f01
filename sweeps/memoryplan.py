"""Micro-batches that fit the profile's GPUs: ``sweep plan`` shows each size's estimated memory
per GPU (pretrain.memory), and launch gives each run the micro-batch the plan picked.

Each size's strategy comes first: ``training.strategy``, or under ``auto`` on several GPUs
DDP when a whole replica fits one GPU, else FSDP, whose devices each keep 1/world of the
states (pretrain.memory.pick_strategy); launch gives each run that choice too.

A study that sets ``training.micro_batch_size`` keeps it (the plan warns when it overfills
a GPU and says which value would fit). One that leaves it unset gets, per size, the
largest divisor of the per-device batch whose estimate fits the profile's
``gpu_memory_gb``; without a GPU memory in the profile, runs take the whole per-device
batch at once. Micro-batch and strategy are operational: picking them never changes a run id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pretrain.memory import HEADROOM, fit_micro_batch, pick_strategy, training_memory
from sweeps.base import shape_of
from sweeps.profiles import ClusterProfile, load_profile
from sweeps.study import Executor, Study


@dataclass(frozen=True)
class SizeMemory:
    size: str
    micro_batch: int
    """What the runs use: training.micro_batch_size, else the plan's pick, else the per-device batch."""
    gb: float
    """Estimated memory per GPU at that micro-batch."""
    fits: int | None
    """The largest divisor of the per-device batch whose estimate fits; None when not even one does."""
    picked: bool
    """Whether micro_batch is the plan's pick (training.micro_batch_size unset)."""
    strategy: str = "single"
    """single, ddp or fsdp: training.strategy, or the plan's pick under auto."""


def _gpu_profile(executor: Executor) -> ClusterProfile | None:
    profile = load_profile(executor.profile)
    return profile if profile.gpus_per_run and profile.gpu_memory_gb else None


def _precision(study: Study) -> str:
    return "bf16-mixed" if study.training.precision == "auto" else study.training.precision


def size_memory(study: Study, profile: ClusterProfile, size: str, vocab: int) -> SizeMemory:
    t = study.training
    shape = shape_of(study, size, vocab)
    world = t.devices * t.nodes
    memory, precision, checkpointing = profile.gpu_memory_gb * 1e9, _precision(study), t.activation_checkpointing
    strategy = t.strategy
    if strategy == "auto":
        strategy = pick_strategy(shape, t.seq_len, world, memory, precision, checkpointing)
    shards = world if strategy == "fsdp" else 1
    local = t.batch_size // world
    fits = fit_micro_batch(shape, t.seq_len, local, memory, precision, checkpointing, shards)
    micro = t.micro_batch_size or fits or local
    gb = training_memory(shape, t.seq_len, micro, precision, checkpointing, shards).total / 1e9
    return SizeMemory(size, micro, gb, fits, picked=t.micro_batch_size is None and fits is not None,
                      strategy=strategy)


def gpu_memory(study: Study, sizes: list[str], vocab: int) -> tuple[tuple[SizeMemory, ...], list[tuple[str, str]]]:
    """Rows for the plan and (level, message) findings; nothing when the study's profile has
    no GPUs or does not say their memory."""
    profile = _gpu_profile(study.executor)
    if profile is None:
        return (), []
    limit = HEADROOM * profile.gpu_memory_gb
    rows, findings = [], []
    for size in sizes:
        m = size_memory(study, profile, size, vocab)
        rows.append(m)
        if m.fits is None:
            sharding = "" if m.strategy == "fsdp" else ", training.strategy: fsdp over several GPUs"
            findings.append(("error", f"size {size} needs more than {limit:.0f} GB per GPU ({HEADROOM:.0%} of the "
                                      f"profile's {profile.gpu_memory_gb:g} GB) even at micro-batch 1: set "
                                      f"training.activation_checkpointing: true{sharding} or use larger GPUs"))
        elif m.gb > limit:
            findings.append(("warning", f"size {size} at micro-batch {m.micro_batch} needs ~{m.gb:.0f} GB per GPU, "
                                        f"more than {HEADROOM:.0%} of {profile.gpu_memory_gb:g} GB: set "
                                        f"training.micro_batch_size: {m.fits} (or lower), or leave it unset "
                                        "for launch to pick per size"))
    return tuple(rows), findings


def with_planned_memory(study: Study, executor: Executor, specs: list, vocab: int) -> list:
    """Training specs (and students) with the plan's micro-batch and strategy for their size,
    where the study leaves them unset (micro_batch_size, strategy auto) and the profile says
    its GPUs' memory; others unchanged."""
    t = study.training
    if (t.micro_batch_size is not None and t.strategy != "auto") or executor.kind != "slurm" or not vocab:
        return specs
    profile = _gpu_profile(executor)
    if profile is None:
        return specs
    planned: dict[str, dict[str, Any]] = {}
    out: list[Any] = []
    for spec in specs:
        size = getattr(spec, "size", None)
        if size is None or not hasattr(spec, "micro_batch_size"):
            out.append(spec)
            continue
        if size not in planned:
            m = size_memory(study, profile, size, vocab)
            planned[size] = {"micro_batch_size": m.micro_batch} if m.picked else {}
            if t.strategy == "auto" and m.strategy != "single":
                planned[size]["strategy"] = m.strategy
        out.append(dataclasses.replace(spec, **planned[size]))
    return out
