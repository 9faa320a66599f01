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
from pretrain.spec import auto_precision
from sweeps.study import ClusterProfile, Distill, Executor, Study, load_profile, shape_of


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
    student_of: str = ""
    """For a token-level distillation student: its teacher ("4 x 300m"), held on every GPU."""

    @property
    def label(self) -> str:
        return f"{self.size} student of {self.student_of}" if self.student_of else self.size


def _gpu_profile(executor: Executor) -> ClusterProfile | None:
    profile = load_profile(executor.profile)
    return profile if profile.gpus_per_run and profile.gpu_memory_gb else None


def size_memory(study: Study, profile: ClusterProfile, size: str, vocab: int,
                teacher: Distill | None = None) -> SizeMemory:
    """One size's row; with ``teacher``, a token-level distillation student of that entry."""
    t = study.training
    shape = shape_of(study, size, vocab)
    teachers = (shape_of(study, teacher.teacher_size, vocab), teacher.n_teachers) if teacher else None
    world = t.world_size
    memory, checkpointing = profile.gpu_memory_gb * 1e9, t.activation_checkpointing
    precision = auto_precision(t.precision, on_gpu=True)  # the profile's runs train on its GPUs
    strategy = t.strategy
    if strategy == "auto":
        strategy = pick_strategy(shape, t.seq_len, world, memory, precision, checkpointing, teachers)
    shards = world if strategy == "fsdp" else 1
    local = t.local_batch_size
    fits = fit_micro_batch(shape, t.seq_len, local, memory, precision, checkpointing, shards, teachers)
    micro = t.micro_batch_size or fits or local
    gb = training_memory(shape, t.seq_len, micro, precision, checkpointing, shards, teachers).total / 1e9
    return SizeMemory(size, micro, gb, fits, picked=t.micro_batch_size is None and fits is not None,
                      strategy=strategy, student_of=f"{teacher.n_teachers} x {teacher.teacher_size}" if teacher else "")


def _token_students(study: Study) -> list[Distill]:
    """Distillation entries whose students hold their teachers while training (token level)."""
    return [d for d in study.distill if d.method == "token"]


def gpu_memory(study: Study, sizes: list[str], vocab: int) -> tuple[tuple[SizeMemory, ...], list[tuple[str, str]]]:
    """Rows for the plan and (level, message) findings; nothing when the study's profile has
    no GPUs or does not say their memory."""
    profile = _gpu_profile(study.executor)
    if profile is None:
        return (), []
    limit = HEADROOM * profile.gpu_memory_gb
    rows, findings = [], []
    students = [(d.student_size, d) for d in _token_students(study)]
    for size, teacher in [(size, None) for size in sizes] + students:
        m = size_memory(study, profile, size, vocab, teacher)
        rows.append(m)
        if m.fits is None:
            sharding = "" if m.strategy == "fsdp" else ", training.strategy: fsdp over several GPUs"
            findings.append(("error", f"size {m.label} needs more than {limit:.0f} GB per GPU ({HEADROOM:.0%} of the "
                                      f"profile's {profile.gpu_memory_gb:g} GB) even at micro-batch 1: set "
                                      f"training.activation_checkpointing: true{sharding} or use larger GPUs"))
        elif m.gb > limit:
            findings.append(("warning", f"size {m.label} at micro-batch {m.micro_batch} needs ~{m.gb:.0f} GB per GPU, "
                                        f"more than {HEADROOM:.0%} of {profile.gpu_memory_gb:g} GB: set "
                                        f"training.micro_batch_size: {m.fits} (or lower), or leave it unset "
                                        "for launch to pick per size"))
    return tuple(rows), findings


def with_planned_memory(study: Study, executor: Executor, specs: list, vocab: int) -> list:
    """Training specs (and students) with the plan's micro-batch and strategy for their size,
    where the study leaves them unset (micro_batch_size, strategy auto) and the profile says
    its GPUs' memory; others unchanged."""
    t = study.training
    if (t.micro_batch_size is not None and t.strategy != "auto") or executor.runs_here or not vocab:
        return specs
    profile = _gpu_profile(executor)
    if profile is None:
        return specs
    planned: dict[tuple, dict[str, Any]] = {}
    out: list[Any] = []
    for spec in specs:
        size = getattr(spec, "size", None)
        if size is None or not hasattr(spec, "micro_batch_size"):
            out.append(spec)
            continue
        teacher = _teacher_of(study, spec)
        key = (size, teacher)
        if key not in planned:
            m = size_memory(study, profile, size, vocab, teacher)
            planned[key] = {"micro_batch_size": m.micro_batch} if m.picked else {}
            if t.strategy == "auto" and m.strategy != "single":
                planned[key]["strategy"] = m.strategy
        out.append(dataclasses.replace(spec, **planned[key]))
    return out


def _teacher_of(study: Study, spec: Any) -> Distill | None:
    """The study's entry a token-level student comes from (by its size and member count; the
    one with the largest teacher when several match); None for every other run."""
    if getattr(spec, "mode", None) != "token":
        return None
    matches = [d for d in _token_students(study)
               if d.student_size == spec.size and d.n_teachers == len(spec.teacher_ids)]
    by_size = {name: i for i, name in enumerate(study.sizes)}
    return max(matches, key=lambda d: by_size.get(d.teacher_size, -1), default=None)
