"""A student's data: the real budget mixed with a synthetic store at synthetic weight w.

The real data is still seen exactly ``epochs`` times (the paper's rule), so the run is
longer than a plain one: total steps = real steps x 1 / (1 - w), where real steps =
steps_per_epoch x epochs of the plain ``EpochSchedule`` on the same budget, rounded to
the nearest integer. Mixing is per row: of the run's T = total_steps x batch_size rows,
R = real steps x batch_size are real, spread evenly (row i is real when
floor((i + 1) R / T) > floor(i R / T)), so every batch holds round-down or round-up of
(1 - w) x batch_size real rows and the real epochs stay evenly spread over the run.

Real rows are taken in exactly the order a plain run with the same data seed visits
them; synthetic rows in their own per-epoch permutation (the synthetic store repeats
if the run needs more rows than it holds). Batch(step) is a pure function of
(data seed, step), so resuming a student is a seek, as for training.
"""

from __future__ import annotations

import numpy as np

from pretrain.data import epoch_permutation, gather_sequences


def mixture_steps(real_steps: int, synthetic_weight: float) -> int:
    """Total optimizer steps when ``real_steps`` of real data make up 1 - w of the run."""
    if not 0 <= synthetic_weight < 1:
        raise ValueError(f"synthetic weight must be in [0, 1), got {synthetic_weight}")
    return max(real_steps, round(real_steps / (1.0 - synthetic_weight)))


def synthetic_permutation(n: int, data_seed: int, epoch: int) -> np.ndarray:
    """Visiting order of the synthetic sequences in synthetic epoch ``epoch``; the extra
    entropy word keeps it independent of the real data's order for the same seed."""
    return np.random.default_rng([data_seed, epoch, 1]).permutation(n)


class _Stream:
    """Sequences of one token array visited epoch after epoch, each epoch permuted."""

    def __init__(self, tokens: np.ndarray, seq_len: int, per_epoch: int, n: int, permute) -> None:  # noqa: ANN001
        self.tokens, self.seq_len, self.per_epoch, self.n, self.permute = tokens, seq_len, per_epoch, n, permute
        self._perms: dict[int, np.ndarray] = {}

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows (inputs + shifted target) for stream positions ``index``."""
        epochs, within = np.divmod(index, self.per_epoch)
        starts = np.empty(len(index), dtype=np.int64)
        for e in np.unique(epochs):
            if int(e) not in self._perms:
                if len(self._perms) > 2:  # a batch spans at most two epochs; keep memory bounded
                    self._perms.clear()
                self._perms[int(e)] = self.permute(self.n, int(e))
            mask = epochs == e
            starts[mask] = self._perms[int(e)][within[mask]] * self.seq_len
        return gather_sequences(self.tokens, starts, self.seq_len + 1)


class MixtureSchedule:
    """The ``BatchSchedule`` of a sequence-level distillation student."""

    def __init__(self, real_tokens: np.ndarray, synthetic_tokens: np.ndarray | None, seq_len: int,
                 batch_size: int, epochs: int, synthetic_weight: float, data_seed: int) -> None:
        self.seq_len, self.batch_size, self.epochs = seq_len, batch_size, epochs
        self.synthetic_weight, self.data_seed = synthetic_weight, data_seed
        n_real = (len(real_tokens) - 1) // seq_len
        self.real_steps_per_epoch = n_real // batch_size
        if self.real_steps_per_epoch == 0:
            raise ValueError(f"a budget of {len(real_tokens):,} tokens makes {n_real} sequences of "
                             f"{seq_len}, fewer than one batch of {batch_size}")
        self.real_steps = self.real_steps_per_epoch * epochs
        self.total_steps = mixture_steps(self.real_steps, synthetic_weight)
        self.tokens_per_step = batch_size * seq_len
        # Lightning-side bookkeeping (epoch train loss, progress) counts real epochs in steps.
        self.steps_per_epoch = max(1, round(self.total_steps / epochs))
        self.real_rows = self.real_steps * batch_size
        self.total_rows = self.total_steps * batch_size
        self.synthetic_rows = self.total_rows - self.real_rows
        rows_per_epoch = self.real_steps_per_epoch * batch_size
        self._real = _Stream(real_tokens, seq_len, rows_per_epoch, n_real,
                             lambda n, e: epoch_permutation(n, data_seed, e))
        self.n_synthetic = 0
        if self.synthetic_rows:
            n_syn = 0 if synthetic_tokens is None else (len(synthetic_tokens) - 1) // seq_len
            if n_syn == 0:
                raise ValueError(f"synthetic weight {synthetic_weight} needs synthetic sequences of "
                                 f"{seq_len} tokens, but the synthetic store has none")
            self.n_synthetic = n_syn
            self._synthetic = _Stream(synthetic_tokens, seq_len, n_syn, n_syn,
                                      lambda n, e: synthetic_permutation(n, data_seed, e))

    @property
    def synthetic_epochs(self) -> float:
        """Passes over the synthetic store the run makes (fractional)."""
        return self.synthetic_rows / self.n_synthetic if self.n_synthetic else 0.0

    def real_before(self, rows: np.ndarray) -> np.ndarray:
        """How many of the run's first ``rows`` rows are real (the even spread)."""
        return rows * self.real_rows // self.total_rows

    def is_real(self, step: int) -> np.ndarray:
        rows = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        return self.real_before(rows + 1) > self.real_before(rows)

    def epoch_of(self, step: int) -> int:
        """The real epoch the step's first row belongs to."""
        first = self.real_before(np.array([step * self.batch_size], dtype=np.int64))[0]
        return min(int(first) // (self.real_steps_per_epoch * self.batch_size), self.epochs - 1)

    def batch(self, step: int) -> np.ndarray:
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside 0..{self.total_steps - 1}")
        rows = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        before = self.real_before(rows)
        real = self.real_before(rows + 1) > before
        out = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)
        if real.any():
            out[real] = self._real.rows(before[real])
        if not real.all():
            out[~real] = self._synthetic.rows(rows[~real] - before[~real])
        return out
