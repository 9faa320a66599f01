"""``sweep plan``'s memory check: each size's estimated memory on one of the profile's GPUs at
the micro-batch its runs will use, and the largest micro-batch that would fit
(pretrain.memory). Runs use ``training.micro_batch_size``, or the whole batch when it is
unset; the plan says which value to set when that does not fit."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.memory import HEADROOM, fit_micro_batch, training_memory
from sweeps.base import shape_of
from sweeps.profiles import load_profile
from sweeps.study import Study


@dataclass(frozen=True)
class SizeMemory:
    size: str
    micro_batch: int
    """What the runs use: training.micro_batch_size, or batch_size when it is unset."""
    gb: float
    """Estimated memory per GPU at that micro-batch."""
    fits: int | None
    """The largest divisor of batch_size whose estimate fits; None when not even one does."""


def gpu_memory(study: Study, sizes: list[str], vocab: int) -> tuple[tuple[SizeMemory, ...], list[tuple[str, str]]]:
    """Rows for the plan and (level, message) findings; nothing when the study's profile has
    no GPUs or does not say their memory."""
    profile = load_profile(study.executor.profile)
    if not (profile.gpus_per_run and profile.gpu_memory_gb):
        return (), []
    t = study.training
    precision = "bf16-mixed" if t.precision == "auto" else t.precision
    limit = HEADROOM * profile.gpu_memory_gb
    rows, findings = [], []
    for size in sizes:
        shape = shape_of(study, size, vocab)
        micro = t.micro_batch_size or t.batch_size
        gb = training_memory(shape, t.seq_len, micro, precision, t.activation_checkpointing).total / 1e9
        fits = fit_micro_batch(shape, t.seq_len, t.batch_size, limit * 1e9 / HEADROOM, precision,
                               t.activation_checkpointing)
        rows.append(SizeMemory(size, micro, gb, fits))
        if gb <= limit:
            continue
        if fits is None:
            findings.append(("error", f"size {size} needs more than {limit:.0f} GB per GPU ({HEADROOM:.0%} of the "
                                      f"profile's {profile.gpu_memory_gb:g} GB) even at micro-batch 1: set "
                                      "training.activation_checkpointing: true or use larger GPUs"))
        else:
            findings.append(("warning", f"size {size} at micro-batch {micro} needs ~{gb:.0f} GB per GPU, more than "
                                        f"{HEADROOM:.0%} of {profile.gpu_memory_gb:g} GB: set "
                                        f"training.micro_batch_size: {fits} (or lower)"))
    return tuple(rows), findings
