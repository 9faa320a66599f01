"""Combine the predictions of ensemble members, one member at a time.

Two rules, always named in results:

- ``logit-mean``: average the members' logits, then softmax (what the paper's authors
  used);
- ``prob-mean``: average the members' probabilities, i.e. log-mean-exp of log-probs.

``MemberAccumulator`` holds one running buffer per rule, the size of one member's
output, so memory does not grow with the number of members K; after adding member
k it gives the log-probabilities of the ensemble of members 0..k (nested ensembles).
"""

from __future__ import annotations

import math

import torch

from eval.rules import check_rules


class MemberAccumulator:
    """Running combination of member logits (any shape ending in the vocabulary)."""

    def __init__(self, rules: tuple[str, ...] = ("logit-mean",)) -> None:
        self.rules = check_rules(rules)
        self.k = 0
        self._logit_sum: torch.Tensor | None = None
        self._logprob_lse: torch.Tensor | None = None

    def add(self, logits: torch.Tensor) -> None:
        logits = logits.float()
        if "logit-mean" in self.rules:
            self._logit_sum = logits.clone() if self._logit_sum is None else self._logit_sum.add_(logits)
        if "prob-mean" in self.rules:
            logp = torch.log_softmax(logits, dim=-1)
            self._logprob_lse = logp if self._logprob_lse is None else torch.logaddexp(self._logprob_lse, logp)
        self.k += 1

    def log_probs(self, rule: str) -> torch.Tensor:
        """Log-probabilities of the ensemble of the members added so far under ``rule``."""
        if self.k == 0:
            raise ValueError("no members added")
        if rule == "logit-mean" and self._logit_sum is not None:
            return torch.log_softmax(self._logit_sum / self.k, dim=-1)
        if rule == "prob-mean" and self._logprob_lse is not None:
            return self._logprob_lse - math.log(self.k)
        raise ValueError(f"rule {rule!r} was not accumulated (rules: {self.rules})")
