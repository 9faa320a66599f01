"""The run store: one directory per run under ``<study root>/runs/``.

A run's state is read from its files, never from memory, so any process (a worker,
a fresh shell after the launching one died, ``dcsl sweep status``) sees the truth.
Liveness comes from an advisory lock that the working process holds on
``<run>/.lock``: a run whose status says running but whose lock is free was
killed with its job, and is *stale*.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pretrain.rundir import RunDir

# Table states: the run-directory states plus two the store derives.
TABLE_STATES = ("succeeded", "running", "pending", "failed", "stale", "missing")


def runs_dir(root: Path) -> Path:
    return Path(root) / "runs"


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[bool]:
    """Try to become the one process working on ``run_dir``; yields whether it did."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(run_dir: Path) -> bool:
    if not (run_dir / ".lock").exists():
        return False
    with claim(run_dir) as got:
        return not got


def run_state(run_dir: Path) -> str:
    """succeeded | running | pending | failed | stale | missing, from the files alone."""
    run = RunDir(run_dir)
    if not run.path.exists() or run.spec() is None:
        return "missing"
    state = run.status().get("state", "pending")
    if state == "succeeded" and run.result() is None:
        return "failed"  # a success without a result is no success
    if state == "running" and not is_locked(run.path):
        return "stale"
    return state


def last_error(run_dir: Path) -> str:
    status = RunDir(run_dir).status()
    return (status.get("error") or "").splitlines()[0] if status.get("error") else ""
