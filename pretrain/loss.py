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

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor: ...
    def head_loss(self, inputs: torch.Tensor, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor: ...


SliceLoss = Callable[[torch.Tensor, slice], tuple[torch.Tensor, torch.Tensor]]
"""A loss over one slice of tokens: (its fp32 logits, which tokens) -> (the summed loss, its
gradient with respect to those logits). It may overwrite the logits it is given."""


def summed_cross_entropy(model: HasHead, inputs: torch.Tensor, targets: torch.Tensor,
                         features: Callable[[torch.Tensor], torch.Tensor] | None = None,
                         chunk_logits: int | None = None) -> torch.Tensor:
    """Summed next-token loss on (B, T) ids. ``features`` is the model's feature function to
    call (a compiled one, when training compiles); ``chunk_logits`` overrides CHUNK_LOGITS."""
    n, vocab = targets.numel(), model.shape.vocab_size
    if not sliced(n, vocab, chunk_logits):
        logits = model(inputs)
        return F.cross_entropy(logits.reshape(-1, vocab).float(), targets.reshape(-1), reduction="sum")
    slices, tokens = cross_entropy_slices(targets.reshape(-1)), slice_tokens(vocab, chunk_logits)
    return model.head_loss(inputs, lambda h, weight: sliced_linear_loss(h, weight, slices, tokens), features)


def sliced(n_tokens: int, vocab: int, chunk_logits: int | None = None) -> bool:
    """Whether a micro-batch's logits are too many to hold at once (see CHUNK_LOGITS)."""
    return n_tokens * vocab > (CHUNK_LOGITS if chunk_logits is None else chunk_logits)


def slice_tokens(vocab: int, chunk_logits: int | None = None) -> int:
    return max(1, (CHUNK_LOGITS if chunk_logits is None else chunk_logits) // vocab)


def cross_entropy_slices(targets: torch.Tensor) -> SliceLoss:
    """Next-token cross-entropy, slice by slice: d loss / d logits = softmax - one_hot(target)."""
    def loss(logits: torch.Tensor, tokens: slice) -> tuple[torch.Tensor, torch.Tensor]:
        t = targets[tokens]
        log_z = torch.logsumexp(logits, dim=-1)
        total = (log_z - logits.gather(1, t[:, None]).squeeze(1)).sum()
        grad = logits.sub_(log_z[:, None]).exp_()  # in place over the logits
        grad[torch.arange(len(t), device=t.device), t] -= 1.0
        return total, grad
    return loss


def sliced_linear_loss(features: torch.Tensor, weight: torch.Tensor, slice_loss: SliceLoss,
                       slice_tokens: int) -> torch.Tensor:
    """The summed ``slice_loss`` of ``features @ weight.T`` (N, V), one slice of tokens at a
    time; with gradients enabled, theirs are made in the forward pass (SlicedLinearLoss)."""
    if torch.is_grad_enabled():
        return SlicedLinearLoss.apply(features, weight, slice_loss, slice_tokens)
    dtype = _matmul_dtype(features)  # validation: the loss alone
    w = weight.to(dtype)
    return sum(slice_loss((features[s:s + slice_tokens].to(dtype) @ w.T).float(), slice(s, s + slice_tokens))[0]
               for s in range(0, features.shape[0], slice_tokens))


def _matmul_dtype(features: torch.Tensor) -> torch.dtype:
    # Under autocast the matmuls run in the autocast dtype, as the head's Linear would.
    device = features.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else features.dtype


class SlicedLinearLoss(torch.autograd.Function):
    """sum slice_loss(features @ weight.T), one slice of tokens at a time; the gradients are
    made in forward and only scaled in backward. The softmax, the loss and the weight
    gradient's running sum are fp32."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, weight: torch.Tensor, slice_loss: SliceLoss,  # noqa: ANN001
                slice_tokens: int) -> torch.Tensor:
        dtype = _matmul_dtype(features)
        w = weight.to(dtype)
        grad_features = torch.empty_like(features)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        total = torch.zeros((), dtype=torch.float32, device=features.device)
        for start in range(0, features.shape[0], slice_tokens):
            tokens = slice(start, start + slice_tokens)
            h = features[tokens].to(dtype)
            loss, grad = slice_loss((h @ w.T).float(), tokens)
            total += loss
            grad = grad.to(dtype)
            grad_features[tokens] = (grad @ w).to(features.dtype)
            grad_weight += (grad.T @ h).float()
        ctx.save_for_backward(grad_features, grad_weight.to(weight.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # noqa: ANN001, ANN205
        grad_features, grad_weight = ctx.saved_tensors
        return grad_features * grad_output, grad_weight * grad_output, None, None
