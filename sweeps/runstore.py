"""The run store: one directory per run under ``<study root>/runs/``.

A run's state is read from its files, never from memory, so any process (a worker,
a fresh shell after the launching one died, ``dcsl sweep status``) sees the truth.

Liveness has two signals, because shared filesystems differ in what they honour:

- an advisory ``flock`` on ``<run>/.lock``, held by the working process. Where locks
  work, a run whose status says running but whose lock is free was killed with its
  job: it is *stale* at once.
- a heartbeat file ``<run>/.heartbeat``, created exclusively (``O_EXCL``, atomic on NFS
  too) by the working process, naming its host, touched every ``HEARTBEAT_S`` and
  removed when it stops. Locks that are node-local (NFS mounted ``nolock``, Lustre
  ``localflock``) are invisible from other hosts, and some mounts refuse ``flock``
  outright; there a fresh heartbeat from another host (or any fresh heartbeat, where
  ``flock`` fails) means the run is alive, and one older than ``STALE_AFTER_S`` that
  its holder died.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pretrain.rundir import RunDir

# Table states: the run-directory states plus two the store derives.
TABLE_STATES = ("succeeded", "running", "pending", "failed", "stale", "missing")
HEARTBEAT_S = 30.0
STALE_AFTER_S = 4 * HEARTBEAT_S
HEARTBEAT = ".heartbeat"


def runs_dir(root: Path) -> Path:
    return Path(root) / "runs"


def _try_flock(fd: int) -> bool | None:
    """Lock ``fd`` without waiting: True if taken, False if another holds it, None if
    this filesystem does not support ``flock``."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP, ENOSYS: no locks here; the heartbeat decides
        return None


def _heartbeat(run_dir: Path) -> tuple[str, float] | None:
    """(host, age in seconds) of the run's heartbeat, or None when there is none."""
    path = run_dir / HEARTBEAT
    try:
        age = time.time() - path.stat().st_mtime
        host = (path.read_text().split() or [""])[0]  # empty: just created, not yet written
    except FileNotFoundError:
        return None
    return host, age


def _held_elsewhere(run_dir: Path, flock_works: bool) -> bool:
    """Whether a fresh heartbeat says another live process works on the run. Where
    ``flock`` works it is reliable on its own host, so only other hosts' beats count."""
    beat = _heartbeat(run_dir)
    if beat is None or beat[1] > STALE_AFTER_S:
        return False
    return not flock_works or beat[0] != socket.gethostname()


class _Beating:
    """The heartbeat of a claimed run: touched from a daemon thread until ``stop``."""

    def __init__(self, run_dir: Path) -> None:
        self.path, self.done = run_dir / HEARTBEAT, threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat {run_dir.name}", daemon=True)

    @classmethod
    def start(cls, run_dir: Path) -> _Beating | None:
        """Create the heartbeat exclusively; None if another process created it first."""
        with contextlib.suppress(FileNotFoundError):
            (run_dir / HEARTBEAT).unlink()  # a dead holder's (the caller checked it is not fresh)
        try:
            fd = os.open(run_dir / HEARTBEAT, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}\n")
        beating = cls(run_dir)
        beating.thread.start()
        return beating

    def _beat(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[bool]:
    """Try to become the one process working on ``run_dir``; yields whether it did."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = _try_flock(fd)
        beating = None
        if locked is not False and not _held_elsewhere(run_dir, locked is True):
            beating = _Beating.start(run_dir)
        try:
            yield beating is not None
        finally:
            if beating is not None:
                beating.stop()
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_alive(run_dir: Path) -> bool:
    """Whether a live process works on the run: its lock is held, or its heartbeat is
    fresh where the lock cannot tell."""
    if not (run_dir / ".lock").exists():
        return False
    fd = os.open(run_dir / ".lock", os.O_RDWR)
    try:
        locked = _try_flock(fd)
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return locked is False or _held_elsewhere(run_dir, locked is True)


def run_state(run_dir: Path) -> str:
    """succeeded | running | pending | failed | stale | missing, from the files alone."""
    run = RunDir(run_dir)
    if not run.path.exists() or run.spec() is None:
        return "missing"
    state = run.status().get("state", "pending")
    if state == "succeeded" and run.result() is None:
        return "failed"  # a success without a result is no success
    if state == "running" and not is_alive(run.path):
        return "stale"
    return state


def last_error(run_dir: Path) -> str:
    status = RunDir(run_dir).status()
    return (status.get("error") or "").splitlines()[0] if status.get("error") else ""
