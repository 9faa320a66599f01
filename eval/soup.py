"""Uniform model soups: one model whose weights are the mean of K members' weights.

In the paper's continued-pretraining setting, members fine-tuned from one base average
into a model that slightly beats their logit ensemble as K grows. Members trained from
different random inits (the pretraining setting) do not share a loss basin, so their soup
is expected to be poor; the comparison beside the ensemble rules says which case a study
is in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pretrain.load import TrainedRun
from pretrain.model import Llama


def uniform_soup(members: Sequence[TrainedRun], device: str | torch.device = "cpu") -> Llama:
    """Load the members one at a time and average their weights in fp32."""
    if not members:
        raise ValueError("a soup needs at least one member")
    total: dict[str, torch.Tensor] = {}
    for run in members:
        model = run.load_model("cpu")
        for name, weight in model.weights().items():
            total[name] = total[name] + weight.float() if name in total else weight.float().clone()
    model.load_weights({name: w / len(members) for name, w in total.items()})
    return model.to(device).eval()
