"""A run directory: the unit of truth for one run of any kind.

    spec.json     what the run is (semantic fields decide its id)
    status.json   pending | running | succeeded | failed, attempts, host, job, last error
    result.json   metrics, written once when the run succeeds
    ckpt/         resumable state
    log.txt       what the run printed

Every file is written atomically (temp file in the same directory, fsync, rename),
so a reader never sees half a file and a kill never leaves one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pretrain.ranks import is_main_process

T = TypeVar("T")

STATES = ("pending", "running", "succeeded", "failed")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def try_lock(fd: int) -> bool | None:
    """Take an exclusive ``flock`` on ``fd`` without waiting: True if taken, False if another
    process holds it, None if this filesystem has no ``flock`` (the caller decides without)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP, ENOSYS: no locks here
        return None


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if need be), waiting for it; best
    effort where the filesystem has no locks. Guards the study files several launchers
    rewrite (search.json, the launch index) and the preparation of a shared store."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):  # no locks on this filesystem: best effort
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class RunFileError(ValueError):
    """A run file (spec.json, status.json, result.json, ...) exists but cannot be read: the
    message names the file and what is wrong. A ValueError, so the command line reports it
    as one line; the run store turns it into that one run's "unreadable" state."""


def read_json(path: str | Path) -> dict | None:
    """The JSON object in ``path``; None when the file does not exist; RunFileError (naming
    the file) when it exists but is not a readable JSON object (truncated, garbage bytes,
    empty)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise RunFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not text.strip():
        raise RunFileError(f"{path}: empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: holds a JSON {type(data).__name__}, not an object")
    return data


class RunDir:
    """Reads and updates the files of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "ckpt"

    def spec(self) -> dict | None:
        return read_json(self.path / "spec.json")

    def status(self) -> dict:
        return read_json(self.path / "status.json") or {"state": "pending", "attempts": 0}

    def result(self) -> dict | None:
        return read_json(self.path / "result.json")

    def write_spec(self, spec: dict) -> None:
        existing = self.spec()
        spec = json.loads(json.dumps(spec))  # compare as stored: tuples read back as lists
        if existing is not None and existing.get("id") != spec.get("id"):
            raise ValueError(f"{self.path}/spec.json holds run {existing.get('id')}, not {spec.get('id')}")
        if existing != spec:
            # Same run (same semantic fields); operational ones (paths, micro-batch,
            # threads) may change between attempts, e.g. a smaller micro-batch after OOM.
            atomic_write_json(self.path / "spec.json", spec)

    def update_status(self, **fields: Any) -> dict:
        status = self.status()
        status.update(fields, updated=time.time())
        if status["state"] not in STATES:
            raise ValueError(f"unknown run state {status['state']!r}")
        atomic_write_json(self.path / "status.json", status)
        return status

    def mark_running(self) -> dict:
        prev = self.status()
        return self.update_status(
            state="running",
            attempts=int(prev.get("attempts", 0)) + 1,
            host=socket.gethostname(),
            pid=os.getpid(),
            job_id=os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID")),
            array_task=os.environ.get("SLURM_ARRAY_TASK_ID"),
            started=time.time(),
        )

    def mark_succeeded(self, result: dict) -> None:
        atomic_write_json(self.path / "result.json", result)
        self.update_status(state="succeeded", error=None, traceback=None)

    def mark_failed(self, error: str, traceback: str | None = None, diverged: bool = False) -> None:
        """``diverged``: the loss went NaN or infinite (evidence about the hyperparameters, unlike
        a crash), recorded as a field of its own, never read back from the error's text."""
        self.update_status(state="failed", error=error, traceback=traceback, diverged=diverged)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run's lock (``.lock``, the one sweep workers take) for a whole run, or fail
        at once when another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if try_lock(fd) is False:  # (None: no locks on this filesystem, nothing to guard with)
                raise RuntimeError(f"{self.path} is being run by another process (its lock is "
                                   "held); wait for it, or kill it and run this again")
            yield
        finally:
            os.close(fd)

    def log_line(self, line: str) -> None:
        with open(self.path / "log.txt", "a") as f:
            f.write(line.rstrip("\n") + "\n")


def execute_run(spec: Any, run_dir: str | Path, prepare: Callable[[], T],
                work: Callable[[RunDir, T], dict]) -> dict:
    """The contract every run kind keeps (training, ensembles, teachers, students, evals).

    A succeeded run returns its result untouched; ``prepare`` validates every input
    before the directory exists; failures are recorded in status.json and re-raised;
    interrupts leave the run pending (resumable), as ``train_run`` does. Only global rank 0
    of a multi-process run keeps this contract; the others just work.
    """
    run = RunDir(run_dir)
    if run.status().get("state") == "succeeded" and (done := run.result()) is not None:
        return done
    if not is_main_process():
        # Another rank of a run on several processes: rank 0 owns the run directory (spec,
        # status, result); this one computes its share and writes nothing (returns {}).
        return work(run, prepare())
    inputs = prepare()
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_spec(spec.to_json())
    run.mark_running()
    try:
        result = work(run, inputs)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            run.update_status(state="pending", error=f"interrupted: {type(e).__name__}")
        else:
            run.mark_failed(f"{type(e).__name__}: {e}".splitlines()[0], traceback.format_exc(),
                            diverged=bool(getattr(e, "diverged", False)))
        raise
    run.mark_succeeded(result)
    return result
