"""The run store: one directory per run under ``<study root>/runs/``.

A run's state is read from its files, never from memory, so any process (a worker,
a fresh shell after the launching one died, ``dcsl sweep status``) sees the truth.

Liveness has two signals, because shared filesystems differ in what they honour:

- an advisory ``flock`` on ``<run>/.lock``, held by the working process;
- a heartbeat file ``<run>/.heartbeat``, created exclusively (``O_EXCL``, atomic on NFS
  too) by the working process, naming its host, touched every ``HEARTBEAT_S`` and
  removed when it stops.

A held lock means alive. A free lock with no fresh heartbeat, or with one from this
host (locks are reliable at least on their own host), means the holder died: the run
is *stale* at once. A free lock with a fresh heartbeat from another host is not enough
to tell: locks may be node-local (NFS mounted ``nolock``, Lustre ``localflock``), so the
run counts as alive until that heartbeat is ``STALE_AFTER_S`` old, even on a cluster
whose locks work. Where ``flock`` fails outright, the heartbeat alone decides.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pretrain.rundir import RunDir, RunFileError, try_lock

# The states a run directory can be in (its status.json's, and those the store derives: a
# dead worker's run is stale, a damaged file unreadable); the results table adds "orphaned".
# (tests/unit/sweeps/test_vocabulary.py checks the table's contract accepts every one)
RUN_STATES = ("succeeded", "running", "pending", "failed", "stale", "missing", "unreadable")
HEARTBEAT_S = 30.0
STALE_AFTER_S = 4 * HEARTBEAT_S
HEARTBEAT = ".heartbeat"


def runs_dir(root: Path) -> Path:
    return Path(root) / "runs"


@dataclass(frozen=True)
class _Beat:
    """A heartbeat file as read: its text ("host pid token") and age."""

    text: str
    age_s: float

    @property
    def host(self) -> str:
        return (self.text.split() or [""])[0]  # empty: just created, not yet written

    def alive_elsewhere(self, flock_works: bool) -> bool:
        """Fresh, and not ruled out by the lock: where ``flock`` works it is reliable on
        its own host, so only other hosts' beats count there."""
        return self.age_s <= STALE_AFTER_S and (not flock_works or self.host != socket.gethostname())


def _read_beat(path: Path) -> _Beat | None:
    try:
        return _Beat(path.read_text(), time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def _move_aside(path: Path, dead: _Beat) -> bool:
    """Remove a dead holder's heartbeat; False if another process got there first.

    A rename moves one file atomically, so of several processes taking over only one
    moves it; the mover then checks it moved the dead beat and not a fresh one created
    since (which it gives back).
    """
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    moved = aside.read_text()
    if moved != dead.text:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink()
    return moved == dead.text


class _Heartbeat:
    """This process's heartbeat on a claimed run, touched from a daemon thread."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, threading.Event()
        self.text = f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex}\n"
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat {path.parent.name}", daemon=True)

    @classmethod
    def take(cls, run_dir: Path, flock_works: bool) -> _Heartbeat | None:
        """Create the heartbeat exclusively (after moving a dead one aside); None if a
        live process holds it or another process is taking it over."""
        me = cls(run_dir / HEARTBEAT)
        for _ in range(3):
            try:
                fd = os.open(me.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                beat = _read_beat(me.path)
                if beat is not None and (beat.alive_elsewhere(flock_works) or not _move_aside(me.path, beat)):
                    return None
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me.text)
            me.thread.start()
            return me
        return None

    def _mine(self) -> bool:
        beat = _read_beat(self.path)
        return beat is not None and beat.text == self.text

    def _beat(self) -> None:
        # Stop touching once the file is not ours (a pause so long that another process
        # took the run over): never keep someone else's heartbeat alive.
        while not self.done.wait(HEARTBEAT_S) and self._mine():
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        if self._mine():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[bool]:
    """Try to become the one process working on ``run_dir``; yields whether it did."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = try_lock(fd)
        heartbeat = None if locked is False else _Heartbeat.take(run_dir, flock_works=locked is True)
        try:
            yield heartbeat is not None
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_alive(run_dir: Path) -> bool:
    """Whether a live process works on the run: its lock is held, or its heartbeat is
    fresh where the lock cannot tell."""
    try:
        fd = os.open(run_dir / ".lock", os.O_RDWR)
    except FileNotFoundError:  # never claimed, or the directory was just removed
        return False
    try:
        locked = try_lock(fd)
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    beat = _read_beat(run_dir / HEARTBEAT)
    return locked is False or (beat is not None and beat.alive_elsewhere(flock_works=locked is True))


def run_state(run_dir: Path) -> str:
    """One of RUN_STATES, from the files alone: a file that cannot be read makes the run
    "unreadable" (``run_state_and_reason`` says which and why), never the caller's failure."""
    return run_state_and_reason(run_dir)[0]


def run_state_and_reason(run_dir: Path) -> tuple[str, str]:
    """(state, why it is unreadable: the file and what is wrong; "" when readable)."""
    run = RunDir(run_dir)
    try:
        if not run.path.exists() or run.spec() is None:
            return "missing", ""
        state = run.status().get("state", "pending")
        if state == "succeeded" and run.result() is None:
            return "failed", ""  # a success without a result is no success
    except RunFileError as e:
        return "unreadable", str(e)
    if state not in RUN_STATES:
        return "unreadable", f"{run.path / 'status.json'}: unknown state {state!r}"
    if state == "running" and not is_alive(run.path):
        return "stale", ""
    return state, ""


DAMAGED_DIR = "damaged"


def set_aside(run_dir: Path, why: str) -> Path:
    """Move a run directory whose files cannot be read out of the run store, into
    ``<root>/damaged/`` (with a note of why), so the run is trained again from nothing and
    the damaged files are kept for whoever wants to look, never silently overwritten."""
    root = run_dir.parent.parent
    target = root / DAMAGED_DIR / f"{run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, target)
    (target / "DAMAGED.txt").write_text(f"{why}\nmoved here from {run_dir} by a launch, which "
                                        "trained the run again\n")
    return target


def last_error(run_dir: Path) -> str:
    try:
        status = RunDir(run_dir).status()
    except RunFileError as e:
        return str(e)
    return (status.get("error") or "").splitlines()[0] if status.get("error") else ""
