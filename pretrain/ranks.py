"""What each process of a multi-device run does alone, and what the processes agree on.

One run may train on several processes (Lightning's DDP or FSDP; ranks started by
Lightning's launcher on one machine, or by Slurm as tasks). Global rank 0 owns the run
directory: it claims the run, writes status, checkpoints, weights and the result; the
other ranks train and write nothing. Decisions that would otherwise depend on a
process's own clock or signals (checkpoint now?) are agreed over the process group,
because a collective that only some ranks enter hangs them all.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the run directory code reads ranks too
    import torch


def is_main_process() -> bool:
    """Whether this process is global rank 0, read before any process group exists: torchrun's
    RANK, a Slurm task's SLURM_PROCID (in a job of several tasks), or Lightning's launcher
    (the processes it starts carry LOCAL_RANK and NODE_RANK; the first has neither, or 0s)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"]) == 0
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over ranks (the values themselves on one process)."""
    if not distributed():
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()

