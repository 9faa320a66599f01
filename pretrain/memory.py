"""Training memory of one device, estimated from a model's shape (torch-free, for planners).

An estimate, counted tensor by tensor from what dcsl's training step keeps:

- states: fp32 weights, fp32 gradients and AdamW's two fp32 moments, 16 bytes a parameter
  (bf16-mixed keeps fp32 master weights). Under FSDP each device keeps 1/world of them, plus
  what it holds whole for a while: the root unit's weights (embedding, head) and two blocks'
  (gathered), and the root's and one block's gradients (before they are reduce-scattered;
  the sliced loss makes the head's in its forward). See pretrain.fsdp;
- weight copies: under autocast each matmul's low-precision copy of its weight is saved for
  backward, 2 bytes a matmul parameter, whole on every device even under FSDP; with
  activation checkpointing one block's at a time (with the head's);
- activations: what autograd saves in each block for backward, per token (below), or with
  activation checkpointing each block's input plus one block's worth during its recompute;
- logits: the head's output, its fp32 copy and its gradient, or one slice of them when the
  loss is sliced (pretrain.loss);
- teachers (token-level distillation only): the frozen members' fp32 weights, whole on
  every device, and what their forward leaves for the loss (distill/kd.py).

Backward's transients (each block's activation gradients while they are in use) come on
top, so activations and logits are scaled by ``TRANSIENT``, fitted to the live peak of fp32
CPU training (tests/test_memory_estimate.py: 1.11-1.13x the counted tensors without
checkpointing). The probe fixes glibc's mmap threshold, so its peak is the tensors'
and not the allocator's caching, which made unpinned peaks vary 0.8-1.1x between
identical runs. On a GPU the caching allocator and the CUDA context come on top of this;
``HEADROOM`` leaves room for them, an assumption until a device run measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.sizes import ModelShape, param_counts

CHUNK_LOGITS = 1 << 26  # pretrain.loss.CHUNK_LOGITS (that module imports torch)
HEADROOM = 0.85
"""Share of a device's memory the estimate may fill: the rest is for the CUDA context and
the caching allocator's fragmentation, which the estimate does not count."""
TRANSIENT = 1.15
"""Measured live peak over counted activations and logits (CPU, fp32; see the module text)."""


@dataclass(frozen=True)
class MemoryEstimate:
    states: int
    """Weights, gradients, optimizer moments and autocast's weight copies."""
    activations: int
    logits: int
    teachers: int = 0
    """A token-level distillation student's frozen teachers (teacher_memory)."""

    @property
    def total(self) -> int:
        return self.states + self.teachers + int(TRANSIENT * (self.activations + self.logits))


Teachers = tuple[ModelShape, int]
"""A token-level distillation student's teacher: the members' shape and how many there are."""


def teacher_memory(teachers: Teachers, tokens: int, element: int) -> int:
    """Bytes a token-level distillation student's device holds for its teachers: every member's
    fp32 weights, plus, for a micro-batch of ``tokens``, each member's final features (the
    sliced loss keeps them) or, unsliced, the combined teacher's fp32 log-probabilities."""
    shape, members = teachers
    total, _ = param_counts(shape)
    logits = tokens * shape.vocab_size
    if logits > CHUNK_LOGITS:
        held = members * element * shape.d_model * tokens
    else:
        held = 2 * 4 * logits  # the rule's running sum and the log-softmax of one member
    return members * 4 * total + held


def activation_bytes_per_token(shape: ModelShape, element: int) -> int:
    """Bytes autograd keeps for one token of one block, ``element`` bytes a value (2 under
    bf16 autocast, 4 in fp32). RMSNorm computes in fp32 whatever the precision."""
    d, f, kv = shape.d_model, shape.d_mlp, shape.n_kv_heads * shape.head_dim
    norms = 2 * (4 * d + element * d)           # each norm's fp32 input and its output
    attention = element * (d + 2 * kv)          # q, k, v (after RoPE)
    attention += element * d + 4 * shape.n_heads  # attention output, its log-sum-exp
    mlp = element * (2 * f) + element * 2 * f   # gate_up output, silu(gate) and the product
    residual = 4 * d                            # the block's residual stream between halves
    return norms + attention + mlp + residual


def sharded_states(shape: ModelShape, shards: int) -> int:
    """Bytes of weights, gradients and optimizer state one device keeps (16 a parameter), with
    the states split over ``shards`` devices (FSDP) and what it holds whole meanwhile: the
    root unit's and two blocks' gathered weights, the root's and one block's gradients."""
    total, _ = param_counts(shape)
    if shards == 1:
        return 16 * total
    root, block = _root_params(shape), _block_params(shape)
    return 16 * total // shards + 4 * (root + 2 * block) + 4 * (root + block)


def _root_params(shape: ModelShape) -> int:
    """The embedding, the head (unless tied) and the final norm: FSDP's root unit."""
    return (1 if shape.tie_embeddings else 2) * shape.vocab_size * shape.d_model + shape.d_model


def _block_params(shape: ModelShape) -> int:
    total, _ = param_counts(shape)
    return (total - _root_params(shape)) // shape.n_layers


def weight_copies(shape: ModelShape, element: int, activation_checkpointing: bool) -> int:
    """Bytes of the low-precision weight copies autocast saves for backward (none in fp32)."""
    if element == 4:
        return 0
    head = shape.vocab_size * shape.d_model
    block = _block_params(shape)
    return element * (head + (block if activation_checkpointing else shape.n_layers * block))


def training_memory(shape: ModelShape, seq_len: int, micro_batch: int, precision: str = "bf16-mixed",
                    activation_checkpointing: bool = False, shards: int = 1,
                    teachers: Teachers | None = None) -> MemoryEstimate:
    """The estimated peak of one device training ``shape`` on micro-batches of ``micro_batch``
    sequences of ``seq_len`` tokens, its states split over ``shards`` devices (FSDP), with
    ``teachers`` when it is a token-level distillation student."""
    element = 4 if precision in ("32-true", "32") else 2
    tokens = micro_batch * seq_len
    per_block = activation_bytes_per_token(shape, element) * tokens
    if activation_checkpointing:
        # Every block's input, plus, during one block's backward, its recomputed activations
        # (their gradients are the transient on top; measured 1.04 blocks' worth beyond inputs).
        activations = shape.n_layers * 4 * shape.d_model * tokens + per_block
    else:
        activations = shape.n_layers * per_block
    activations += 2 * element * shape.d_model * tokens  # embedding output and final features
    logits = tokens * shape.vocab_size
    if logits > CHUNK_LOGITS:  # sliced: one slice's fp32 logits and gradient, the features' gradient
        logits_bytes = 2 * 4 * CHUNK_LOGITS + element * shape.d_model * tokens
    else:  # the logits, their fp32 copy, log-softmax and gradient
        logits_bytes = (element + 3 * 4) * logits
    states = sharded_states(shape, shards) + weight_copies(shape, element, activation_checkpointing)
    held = teacher_memory(teachers, tokens, element) if teachers else 0
    return MemoryEstimate(states=states, activations=activations, logits=logits_bytes, teachers=held)


def pick_strategy(shape: ModelShape, seq_len: int, world: int, memory_bytes: float,
                  precision: str = "bf16-mixed", activation_checkpointing: bool = False,
                  teachers: Teachers | None = None) -> str:
    """What ``strategy: auto`` trains with: single on one device; on several, ddp when a whole
    replica trains one sequence at a time within ``HEADROOM`` of a device, else fsdp."""
    if world == 1:
        return "single"
    if precision == "16-mixed":  # FSDP here cannot train it (pretrain.spec)
        return "ddp"
    replica = training_memory(shape, seq_len, 1, precision, activation_checkpointing, teachers=teachers).total
    return "ddp" if replica <= HEADROOM * memory_bytes else "fsdp"


def fit_micro_batch(shape: ModelShape, seq_len: int, batch_size: int, memory_bytes: float,
                    precision: str = "bf16-mixed", activation_checkpointing: bool = False,
                    shards: int = 1, teachers: Teachers | None = None) -> int | None:
    """The largest divisor of ``batch_size`` whose estimate fits ``HEADROOM`` of
    ``memory_bytes``; None when not even one sequence fits."""
    for micro in sorted((m for m in range(1, batch_size + 1) if batch_size % m == 0), reverse=True):
        estimate = training_memory(shape, seq_len, micro, precision, activation_checkpointing, shards, teachers)
        if estimate.total <= HEADROOM * memory_bytes:
            return micro
    return None

