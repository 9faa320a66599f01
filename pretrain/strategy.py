"""How one run trains on its devices: Lightning's strategy (one device, DDP or FSDP;
docs/multi-device.md) and its precision."""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import Strategy

from pretrain.memory import pick_strategy
from pretrain.spec import TrainSpec, auto_precision


def strategy_name(spec: TrainSpec, vocab_size: int) -> str:
    """single, ddp or fsdp. ``auto`` on several devices: ddp when a whole replica trains on one
    GPU (the memory estimate against this machine's GPU), else fsdp; ddp on CPUs."""
    if spec.strategy != "auto":
        return spec.strategy
    if spec.world_size == 1:
        return "single"
    if not torch.cuda.is_available():
        return "ddp"
    memory = torch.cuda.get_device_properties(0).total_memory
    return pick_strategy(spec.shape(vocab_size), spec.seq_len, spec.world_size, memory, precision(spec),
                         spec.activation_checkpointing)


def precision(spec: TrainSpec) -> str:
    """Lightning's precision for the run on this machine (``auto``: bf16-mixed on a GPU)."""
    return auto_precision(spec.precision, torch.cuda.is_available())


def lightning_strategy(name: str, world_size: int) -> str | Strategy:
    """The Lightning strategy (or its name) for ``strategy_name``'s answer."""
    if name == "single":
        return "auto"
    if name == "fsdp":
        from lightning.pytorch.strategies import ModelParallelStrategy

        # FSDP2 over all ranks; full state dicts on rank 0, so checkpoints are single files
        # in the format of every other run (pretrain.fsdp).
        return ModelParallelStrategy(data_parallel_size=world_size, tensor_parallel_size=1,
                                     save_distributed_checkpoint=False)
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy()

