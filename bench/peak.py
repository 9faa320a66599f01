"""The fp32 matmul peak of this machine, the yardstick the benchmarks report against."""

from __future__ import annotations

import time

import torch


def matmul_peak(n: int = 1536, repeats: int = 20, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Best observed FLOP/s of an n x n matmul (fp32 on torch's current CPU threads by default;
    on a GPU, pass device="cuda", dtype=torch.bfloat16 and a larger n)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


# Dense bf16 tensor-core peaks from the vendors' datasheets (no sparsity), for MFU as
# papers report it; matched against torch.cuda.get_device_name().
GPU_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


def datasheet_peak(device_name: str) -> float | None:
    return next((v for k, v in GPU_BF16_PEAK.items() if k in device_name), None)
