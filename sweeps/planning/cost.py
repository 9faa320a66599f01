"""What a run costs in FLOPs: training (~6N per token plus attention, over every token the run
sees) and forward passes only (scoring, sampling: a third of that per token).

Launch orders each round's runs by this estimate and ``sweep plan`` totals it per stage, so
both count the same FLOPs.
"""

from __future__ import annotations

from pretrain.sizes import flops_per_token
from pretrain.spec import TrainSpec, steps_per_epoch
from sweeps.study import Study, shape_of


def run_flops(spec: TrainSpec, vocab: int, study: Study) -> float:
    """Training FLOPs of one run: every token of every epoch, forward and backward."""
    shape = shape_of(study, spec.size, vocab)
    steps = steps_per_epoch(spec.tokens, spec.seq_len, spec.batch_size) * spec.epochs
    return flops_per_token(shape, spec.seq_len) * steps * spec.batch_size * spec.seq_len


def forward_flops(study: Study, size: str, vocab: int, seq_len: int, tokens: float) -> float:
    """Forward passes only (scoring, sampling): a third of training's FLOPs per token."""
    return flops_per_token(shape_of(study, size, vocab), seq_len) / 3.0 * tokens
