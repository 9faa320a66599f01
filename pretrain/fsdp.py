"""Sharded training (FSDP2, torch's ``fully_shard``) of dcsl's Llama, under Lightning's
``ModelParallelStrategy``.

Each block is its own FSDP unit, so only one block's full weights exist at a time; the
embedding, final norm and output head belong to the root unit. FSDP gathers a unit's
weights around its forward methods only: ``Llama.forward`` and ``Llama.head_loss`` (the
sliced loss applies the head itself) are registered, and nothing else may read the weights
of a sharded model. Training code reaches the model only through those two.

Checkpoints are full state dicts gathered on rank 0, in the format of a one-device or DDP
run (Lightning re-keys the optimizer state by parameter index): a sharded run resumes at any
world size, and unsharded too; an unsharded checkpoint does not resume sharded
(pretrain.strategy.check_resumable).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh


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
