"""Helpers of the tests that train one run on several processes (test_ddp, test_fsdp, test_gpu):
the ``dcsl train`` command line of their tiny run, its result, and killing it mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


TINY_RUN = {"size": "tiny-50k", "tokens": "16k", "epochs": 2, "batch_size": 8, "micro_batch_size": 2,
            "seq_len": 64, "lr": "3e-3", "ckpt_every": 4, "threads": 1}
"""tiny-50k, 2 epochs of 16k tokens, batch 8 x 64, micro-batch 2: 62 steps."""


def train_args(store, run_dir, **kw) -> list[str]:  # noqa: ANN001
    """``dcsl train`` of TINY_RUN; ``kw`` adds or replaces flags (``devices=2`` -> ``--devices 2``),
    and None drops one."""
    args = [sys.executable, "-m", "dcsl_cli", "train", "--store", str(store.path), "--run-dir", str(run_dir)]
    for k, v in {**TINY_RUN, **kw}.items():
        if v is not None:
            args += ["--" + k.replace("_", "-"), str(v)]
    return args


def result(run_dir) -> dict:  # noqa: ANN001
    return json.loads((run_dir / "result.json").read_text())


def kill_once_checkpointed(args: list[str], run_dir, pattern: str, timeout: float = 120) -> int:  # noqa: ANN001
    """Start a run in its own process group, SIGKILL the whole group (every rank) once a
    checkpoint matching ``pattern`` exists; returns the step of the newest checkpoint."""
    proc = subprocess.Popen(args, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not list((run_dir / "ckpt").glob(pattern)):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return int(max((run_dir / "ckpt").glob("step-*.ckpt")).name[5:13])
