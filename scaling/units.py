"""Readable units for parameter counts and token budgets."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Thousands are "k" (as study files write budgets, 8k): "K" is the ensemble members.
_PREFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


@dataclass(frozen=True)
class Unit:
    """A scale for an axis: values are divided by `scale` and labelled with `suffix`."""

    scale: float
    suffix: str

    def axis_label(self, quantity: str) -> str:
        return f"{quantity} ({self.suffix})" if self.suffix else quantity


def choose_unit(largest: float) -> Unit:
    """The largest prefix that keeps the largest value >= 1 (paper sizes: billions)."""
    for scale, suffix in _PREFIXES:
        if largest >= scale:
            return Unit(scale, suffix)
    return Unit(1.0, "")


def format_count(value: float) -> str:
    """200M, 1.6B, 419M: the way budgets and sizes are spoken of."""
    if value is None or math.isnan(value):
        return "n/a"
    for scale, suffix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"
