"""Sharded training (FSDP2, torch's ``fully_shard``) of dcsl's Llama, under Lightning's
``ModelParallelStrategy``.

Each block is its own FSDP unit, so only one block's full weights exist at a time; the
embedding, final norm and output head belong to the root unit. FSDP gathers a unit's
weights around its forward methods only: ``Llama.forward`` and ``Llama.head_loss`` (the
sliced loss applies the head itself) are registered, and nothing else may read the weights
of a sharded model. Training code reaches the model only through those two.

Checkpoints are full state dicts gathered on rank 0. Lightning numbers the optimizer state's
tensors in the model's parameter order when it saves or loads a sharded run, but in the
optimizer's order (dcsl's decayed matrices first) for an unsharded one. An unsharded
checkpoint's optimizer is renumbered once before it resumes sharded
(``renumber_for_sharding``), so a run moves freely between one device, DDP and FSDP, at any
world size. Each checkpoint records its numbering under ``OPTIMIZER_IDS``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

OPTIMIZER_IDS = "dcsl_optimizer_ids"
"""Checkpoint key: how its optimizer state is numbered, "model" or "optimizer" (order)."""


def shard_model(model: nn.Module, mesh: DeviceMesh, compile_blocks: bool = False) -> None:
    """Shard ``model`` (a Llama) in place over the 1-D data-parallel ``mesh``.

    ``compile_blocks`` compiles each block before it is wrapped (torch.compile of a whole
    sharded model would trace FSDP's hooks; per block is the pattern torch documents).
    """
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for block in model.blocks:
        if compile_blocks:
            block.compile()
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    register_fsdp_forward_method(model, "head_loss")


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on rank 0 (on CPU), empty on the other ranks. Every rank
    must call it: the shards are gathered."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def renumber_for_sharding(checkpoint: Path, module: nn.Module) -> bool:
    """Renumber an unsharded checkpoint's optimizer state in the model's parameter order, in
    place (atomically), so that FSDP reads each moment with its own weight; whether it had to.

    ``module``: the run's LightningModule, not yet sharded, whose ``configure_optimizers``
    builds the optimizer that wrote the checkpoint. Without this, FSDP would pair moments with
    the wrong weights (tried: it fails on a shape deep in torch).
    """
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import OptimStateKeyType

    # Memory-mapped: every sharded resume reads the marker, and only a renumbering reads more.
    state = torch.load(checkpoint, mmap=True, map_location="cpu", weights_only=True)
    if state.get(OPTIMIZER_IDS, "optimizer") == "model":
        return False
    optimizer = module.configure_optimizers()["optimizer"]
    renumbered = []
    for saved in state["optimizer_states"]:
        by_name = FSDP.rekey_optim_state_dict(saved, OptimStateKeyType.PARAM_NAME, module, optim=optimizer)
        renumbered.append(FSDP.rekey_optim_state_dict(by_name, OptimStateKeyType.PARAM_ID, module))
    state["optimizer_states"], state[OPTIMIZER_IDS] = renumbered, "model"
    tmp = checkpoint.with_name(f".{checkpoint.name}.renumbered.tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, checkpoint)
    return True
