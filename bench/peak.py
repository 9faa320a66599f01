"""The fp32 matmul peak of this machine, the yardstick the benchmarks report against."""

from __future__ import annotations

import time

import torch


def matmul_peak(n: int = 1536, repeats: int = 20) -> float:
    """Best observed FLOP/s of an n x n fp32 matmul on torch's current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best
