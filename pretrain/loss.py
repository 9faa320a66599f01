"""Next-token cross-entropy that never holds a large micro-batch's logits at once.

At the paper's vocabulary (128,256), one micro-batch of 16 x 4096 tokens has 8.4G logits:
34 GB in fp32, more than the model. When a micro-batch's logits would exceed
``CHUNK_LOGITS``, the output head and the loss run over slices of its tokens, and each
slice's gradients (for the features and the head) are computed in the forward pass, as
fused linear cross-entropy kernels do: one slice of logits exists at a time, and nothing is
recomputed in backward. Below that size the plain path runs (one head matmul, autograd),
so small models train exactly as they always have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

CHUNK_LOGITS = 1 << 26
"""Logits per slice, and the size above which a micro-batch is sliced: 64M logits (256 MiB
in fp32), 523 tokens at vocab 128,256; at the demo's sizes (1M logits) nothing is sliced."""


class HasHead(Protocol):
    """What the loss needs of a model: dcsl's ``Llama`` (or the compiled one)."""

    shape: object
    head: torch.nn.Linear

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...
    def features(self, inputs: torch.Tensor) -> torch.Tensor: ...


def summed_cross_entropy(model: HasHead, inputs: torch.Tensor, targets: torch.Tensor,
                         features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                         chunk_logits: int | None = None) -> torch.Tensor:
    """Summed next-token loss on (B, T) ids. ``features`` is the model's feature function to
    call (a compiled one, when training compiles); ``chunk_logits`` overrides CHUNK_LOGITS."""
    limit = CHUNK_LOGITS if chunk_logits is None else chunk_logits
    n, vocab = targets.numel(), model.shape.vocab_size
    if n * vocab <= limit:
        logits = model(inputs)
        return F.cross_entropy(logits.reshape(-1, vocab).float(), targets.reshape(-1), reduction="sum")
    h = (features or model.features)(inputs)
    h, targets, step = h.reshape(n, h.shape[-1]), targets.reshape(-1), max(1, limit // vocab)
    if not torch.is_grad_enabled():  # validation: the loss alone, no gradients to make
        return sum(F.cross_entropy(F.linear(h[s:s + step], model.head.weight).float(), targets[s:s + step],
                                   reduction="sum") for s in range(0, n, step))
    return SlicedLinearCrossEntropy.apply(h, model.head.weight, targets, step)


class SlicedLinearCrossEntropy(torch.autograd.Function):
    """sum CE(features @ weight.T, targets), one slice of tokens at a time; the gradients are
    made in forward and only scaled in backward."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # noqa: ANN001
                slice_tokens: int) -> torch.Tensor:
        # Under autocast the matmuls run in the autocast dtype, as the head's Linear would;
        # softmax, the loss and the weight gradient's running sum are fp32.
        dtype = torch.get_autocast_dtype(features.device.type) if torch.is_autocast_enabled(
            features.device.type) else features.dtype
        w = weight.to(dtype)
        grad_features = torch.empty_like(features)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        total = torch.zeros((), dtype=torch.float32, device=features.device)
        for start in range(0, features.shape[0], slice_tokens):
            h = features[start:start + slice_tokens].to(dtype)
            t = targets[start:start + slice_tokens]
            logits = (h @ w.T).float()
            log_z = torch.logsumexp(logits, dim=-1)
            total += (log_z - logits.gather(1, t[:, None]).squeeze(1)).sum()
            # d loss / d logits = softmax - one_hot(target), in place over the logits.
            grad = logits.sub_(log_z[:, None]).exp_()
            grad[torch.arange(len(t), device=t.device), t] -= 1.0
            grad = grad.to(dtype)
            grad_features[start:start + slice_tokens] = (grad @ w).to(features.dtype)
            grad_weight += (grad.T @ h).float()
        ctx.save_for_backward(grad_features, grad_weight.to(weight.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # noqa: ANN001, ANN205
        grad_features, grad_weight = ctx.saved_tensors
        return grad_features * grad_output, grad_weight * grad_output, None, None
