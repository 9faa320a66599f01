"""Which sequences a run sees, and when.

The budget is cut into non-overlapping sequences of ``seq_len + 1`` tokens (inputs
and shifted targets). In epoch ``e`` they are visited in the order of a permutation
that is a pure function of ``(data_seed, e)``, so a position in a run is just
``(epoch, step)`` and resuming is a seek, not a replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from pretrain.spec import steps_per_epoch


class BatchSchedule(Protocol):
    """Anything that yields the global batch for each optimizer step of a run."""

    total_steps: int
    tokens_per_step: int

    def batch(self, step: int) -> np.ndarray:
        """Token ids of shape (batch_size, seq_len + 1) for optimizer step ``step``."""
        ...

    def epoch_of(self, step: int) -> int: ...


def epoch_permutation(n: int, data_seed: int, epoch: int) -> np.ndarray:
    """The visiting order of ``n`` sequences in ``epoch``: a pure function of its inputs."""
    return np.random.default_rng([data_seed, epoch]).permutation(n)


def gather_sequences(tokens: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Rows ``tokens[s : s + length]`` for each start, as int64 (one fancy-index read)."""
    return tokens[starts[:, None] + np.arange(length)].astype(np.int64)


class EpochSchedule:
    """``epochs`` passes over the sequences of one token budget, reshuffled each epoch."""

    def __init__(
        self, tokens: np.ndarray, seq_len: int, batch_size: int, epochs: int, data_seed: int
    ) -> None:
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.epochs, self.data_seed = epochs, data_seed
        self.n_sequences = (len(tokens) - 1) // seq_len
        self.steps_per_epoch = steps_per_epoch(len(tokens), seq_len, batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"a budget of {len(tokens):,} tokens makes {self.n_sequences} sequences of "
                f"{seq_len}, fewer than one batch of {batch_size}"
            )
        self.total_steps = self.steps_per_epoch * epochs
        self.tokens_per_step = batch_size * seq_len
        self._cached_epoch, self._cached_perm = -1, np.empty(0, dtype=np.int64)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def batch(self, step: int) -> np.ndarray:
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside 0..{self.total_steps - 1}")
        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch != self._cached_epoch:
            self._cached_epoch = epoch
            self._cached_perm = epoch_permutation(self.n_sequences, self.data_seed, epoch)
        chosen = self._cached_perm[within * self.batch_size : (within + 1) * self.batch_size]
        return gather_sequences(self.tokens, chosen * self.seq_len, self.seq_len + 1)


class StepDataset(torch.utils.data.IterableDataset):
    """Yields the global batches of a schedule from ``start_step`` on (the resume seek).

    With ``shard=(rank, world)`` it yields rank's contiguous share of each global batch, so
    the ranks together train on exactly the batches one device would, in the same order,
    at any world size.
    """

    def __init__(self, schedule: BatchSchedule, start_step: int = 0, shard: tuple[int, int] = (0, 1)) -> None:
        super().__init__()
        self.schedule, self.start_step = schedule, start_step
        self.rank, self.world = shard

    def __iter__(self) -> Iterator[torch.Tensor]:
        for step in range(self.start_step, self.schedule.total_steps):
            rows = self.schedule.batch(step)
            share = len(rows) // self.world
            yield torch.from_numpy(rows[self.rank * share : (self.rank + 1) * share])


def validation_batches(tokens: np.ndarray, seq_len: int, batch_size: int) -> Iterator[np.ndarray]:
    """The whole validation set as batches of (inputs + 1 target) rows.

    Full sequences first, then the remainder as one shorter row, so every validation
    token but the first is scored exactly once and the mean is token-weighted.
    """
    n_full = (len(tokens) - 1) // seq_len
    starts = np.arange(n_full) * seq_len
    for i in range(0, n_full, batch_size):
        yield gather_sequences(tokens, starts[i : i + batch_size], seq_len + 1)
    tail = len(tokens) - 1 - n_full * seq_len
    if tail > 0:
        yield np.asarray(tokens[n_full * seq_len :], dtype=np.int64)[None, :]
