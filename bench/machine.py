"""What machine a benchmark ran on: printed beside every speed (CPUs of one kind differ)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """/proc/cpuinfo's model name (lscpu's "Model name"), else the platform's."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
