"""What each process of a multi-device run does alone, and what the processes agree on.

One run may train on several processes (Lightning's DDP; ranks started by
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


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK")
"""Set by torchrun or by Lightning's launcher for the processes it starts (the first has none,
or 0s)."""


def is_main_process() -> bool:
    """Whether this process is global rank 0, read before any process group exists: every rank
    its launcher gave it is 0 (torchrun's or Lightning's variables, and a Slurm task's
    SLURM_PROCID in a job of several tasks)."""
    ranks = [os.environ[v] for v in RANK_VARIABLES if v in os.environ]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        ranks.append(os.environ["SLURM_PROCID"])
    return all(int(r) == 0 for r in ranks)


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

