"""Uniform model soups: one model whose weights are the mean of K members' weights.

In the paper's continued-pretraining setting, members continued from one base average
into a model that slightly beats their logit ensemble as K grows. Members trained from
different random inits (the pretraining setting) do not share a loss basin, so their soup
is expected to be poor; measured beside the ensemble rules (``uniform-soup`` in
``dcsl ensemble eval --rules``), it says which case a study is in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pretrain.data import validation_batches
from pretrain.load import TrainedRun
from pretrain.model import Llama


def nested_soups(members: Sequence[TrainedRun], device: str | torch.device = "cpu",
                 max_seq_len: int | None = None) -> Iterator[Llama]:
    """The soups of members 0..k for k = 0..K-1, in order. One model is built and its weights
    are overwritten in place with each new mean: between soups only that model and an fp32
    running sum of the members' weights are held (a member's file is read, added, dropped)."""
    if not members:
        raise ValueError("a soup needs at least one member")
    model = members[0].load_model(device, max_seq_len)
    total: dict[str, torch.Tensor] = {}
    for k, run in enumerate(members):
        for name, weight in run.read_weights().items():
            total[name] = total[name].add_(weight.float()) if name in total else weight.float()
        model.load_weights({name: w / (k + 1) for name, w in total.items()})
        yield model.eval()


def uniform_soup(members: Sequence[TrainedRun], device: str | torch.device = "cpu") -> Llama:
    """The soup of all the members (the last of the nested soups: the same model object)."""
    return deque(nested_soups(members, device), maxlen=1)[0]


@torch.no_grad()
def soup_nll(members: Sequence[TrainedRun], tokens: np.ndarray, seq_len: int, batch_size: int,
             device: torch.device, max_seq_len: int, autocast: bool = False) -> list[float]:
    """Summed NLL of each nested soup over ``tokens``, scored exactly as an ensemble's
    members are (full sequences, then the tail)."""
    sums = []
    for model in nested_soups(members, device, max_seq_len):
        total = 0.0
        for rows in validation_batches(tokens, seq_len, batch_size):
            rows_t = torch.from_numpy(rows).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(rows_t[:, :-1])
            nll = F.cross_entropy(logits.flatten(0, 1).float(), rows_t[:, 1:].flatten(), reduction="sum")
            total += nll.double().item()
        sums.append(total)
    return sums
