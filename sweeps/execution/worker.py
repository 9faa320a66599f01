"""The job that executors submit: a worker that runs several run directories in turn.

One worker process per job amortises start-up (importing Lightning costs seconds)
over many small runs. Each run is claimed with a lock before it starts, so two
workers never train the same run, and a worker may pull from a shared queue (the
local executor's work stealing) or take a fixed chunk (a Slurm array task).

The worker is ``submitit.helpers.Checkpointable``: on preemption or timeout, submitit
calls ``checkpoint`` and requeues the same worker; each run then resumes from its
own last checkpoint. The worker never raises for a failed run (the run's status.json
holds the error and traceback); it returns what happened to each run.

A job of several tasks (a profile with ``tasks_per_node`` or ``nodes_per_run`` above 1)
runs the same worker in every task, one per rank of each run. Task 0 claims and decides;
it tells the others, run by run, whether to train with it, through a torch.distributed
``FileStore`` in the job's folder (every rank must enter the same runs, or the first
collective hangs them all).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import submitit

from pretrain.rundir import RunDir
from sweeps.runs import claim, kind_of, read_index, runs_dir


class RunWorker(submitit.helpers.Checkpointable):
    def __init__(self, run_dirs: list[str], threads: int = 0) -> None:
        self.run_dirs = [str(d) for d in run_dirs]
        self.threads = threads

    def __call__(self) -> dict[str, str]:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        _checkpoint_before_requeue()
        _stop_at_a_checkpoint_on_interrupt()
        decisions = _rank_decisions()
        outcome: dict[str, str] = {}
        for i, d in enumerate(self.run_dirs):
            if decisions is None:
                outcome[Path(d).name] = run_one(Path(d))
            elif decisions.rank == 0:
                outcome[Path(d).name] = decisions.lead(i, Path(d))
            elif decisions.store.get(str(i)) == TRAIN:
                outcome[Path(d).name] = follow(Path(d))
        return outcome


TRAIN, SKIP = b"train", b"skip"


class _Decisions:
    def __init__(self, rank: int, store) -> None:  # noqa: ANN001
        self.rank, self.store = rank, store

    def lead(self, index: int, run_dir: Path) -> str:
        """Task 0: run the run, saying to the others whether they train it too."""
        told: list[bool] = []

        def tell(together: bool) -> None:
            told.append(together)
            self.store.set(str(index), TRAIN if together else SKIP)

        try:
            state = run_one(run_dir, starting=tell)
        finally:
            if not told:  # skipped, already done, failed before it started: the others go on
                self.store.set(str(index), SKIP)
        if told and told[0] and state != "succeeded":
            _end_job(run_dir, state)
        return state


def _rank_decisions() -> _Decisions | None:
    """The channel from task 0 to the others, in a job of several tasks (else None)."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (tests call workers directly)
        return None
    if env.num_tasks == 1:
        return None
    from datetime import timedelta

    import torch.distributed as dist

    # One file per attempt: a requeued job must not read the decisions of the one before.
    attempt = os.environ.get("SLURM_RESTART_COUNT", "0")
    store = dist.FileStore(str(env.paths.folder / f"{env.job_id}.attempt{attempt}.ranks"), env.num_tasks)
    store.set_timeout(timedelta(days=7))  # task 0 may score an eval alone for a long time
    return _Decisions(env.global_rank, store)


def follow(run_dir: Path) -> str:
    """Run one run as a rank other than 0: compute its share, write nothing (rank 0 records)."""
    try:
        spec_json = RunDir(run_dir).spec()
        kind = kind_of(spec_json)
        kind.run(kind.spec_from_json(spec_json), run_dir, log=lambda line: None)
    except Exception as e:  # noqa: BLE001 - rank 0 records the run's failure; say it here too
        print(f"[{run_dir.name}] this rank failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        _end_job(run_dir, "failed")
    return "followed"


def _end_job(run_dir: Path, state: str) -> None:
    """A run trained by several tasks did not succeed: some task may wait in a collective that
    will never complete, so this task exits non-zero and Slurm ends the others (srun
    --kill-on-bad-exit). The next launch round proposes the job's remaining runs again."""
    print(f"[{run_dir.name}] {state} on several tasks: ending this job", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run_one(run_dir: Path, log_to_stdout: bool = True, starting: Callable[[bool], None] | None = None) -> str:
    """Claim and run one run directory; returns its final state (or 'skipped').

    ``starting(together)`` is called just before the run starts, ``together`` saying whether
    it trains on several processes (every task of the job then runs it).
    """
    with claim(run_dir) as mine:
        if not mine:
            return "skipped"  # another worker holds it
        run = RunDir(run_dir)
        state = run.status().get("state")
        if state == "succeeded" and run.result() is not None:
            return "succeeded"
        if state == "failed":
            return "failed"  # another worker ran it already; --retry-failed resets it to pending
        spec_json = run.spec()
        if spec_json is None:
            return "missing"

        def log(line: str) -> None:
            run.log_line(f"{time.strftime('%H:%M:%S')} {line}")
            if log_to_stdout:
                print(f"[{run_dir.name}] {line}", flush=True)

        try:
            kind = kind_of(spec_json)
            spec = with_tracker_tags(kind.spec_from_json(spec_json), run_dir)
            if starting is not None:
                starting(getattr(spec, "world_size", 1) > 1)
            kind.run(spec, run_dir, log=log)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - recorded, never swallowed silently
            if _raised_by_requeue(e):
                # Preemption, not failure: submitit's signal handler checkpointed and asked
                # Slurm to requeue; whatever it raised (its exit, or the `scontrol requeue`
                # child killed by the requeue itself) must leave the run resumable, and the
                # job must end without reporting completion so the requeued job runs it.
                run.update_status(state="pending", error=f"preempted: {type(e).__name__}")
                print(f"[{run_dir.name}] preempted; the requeued job resumes it", flush=True)
                raise SystemExit(-1) from None
            # Run functions record their own failures; this covers errors before they could.
            # An interrupt (SystemExit) leaves the run pending, as the run function set it.
            if run.status().get("state") != "failed" and not isinstance(e, SystemExit):
                run.mark_failed(f"{type(e).__name__}: {e}".splitlines()[0], traceback.format_exc())
            print(f"[{run_dir.name}] failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            if isinstance(e, SystemExit):
                raise
        return run.status().get("state", "pending")


def with_tracker_tags(spec, run_dir: Path):  # noqa: ANN001, ANN201 - any run spec
    """A spec that logs to experiment trackers (``TrainSpec.loggers``), labelled for them with
    its study (the folder of the study root that holds ``runs/``) and the stage and recipes that
    launch recorded for the run in the study's index.json."""
    if not getattr(spec, "loggers", None):
        return spec
    root = run_dir.resolve().parent.parent
    if runs_dir(root) != run_dir.resolve().parent:
        return spec  # not in a study's run store
    tags = {"study": root.name}
    try:
        index = read_index(root)
    except (ValueError, KeyError):  # an unreadable index costs the labels, not the run
        index = None
    entry = index.runs.get(spec.run_id) if index is not None else None
    if entry is not None:
        tags["stage"] = entry.stage
        if entry.labels:
            tags["recipe"] = ",".join(entry.labels)
    return dataclasses.replace(spec, tracker_tags=tags)


def _checkpoint_before_requeue() -> None:
    """Under submitit, preemption and the time-limit warning arrive as USR2, whose handler
    requeues the job at once. Defer it to the training loop's next step boundary, which
    saves a checkpoint first: a requeued run then redoes only the steps since the signal,
    not those since its last periodic checkpoint."""
    outer = signal.getsignal(signal.SIGUSR2)
    if not callable(outer) or getattr(outer, "__name__", "") != "checkpoint_and_try_requeue":
        return
    from pretrain.train import request_checkpoint

    def deferred(signum: int, frame) -> None:  # noqa: ANN001
        request_checkpoint(lambda: outer(signum, frame))

    signal.signal(signal.SIGUSR2, deferred)


def _stop_at_a_checkpoint_on_interrupt() -> None:
    """A local worker stops at a checkpoint on SIGTERM, which its launcher sends (through the
    job's submitit controller, which forwards it and waits) when the launcher itself is
    stopped: the running training saves a checkpoint at its next step and stops, its run left
    pending, so a relaunch resumes there rather than at the last periodic checkpoint. On Slurm,
    SIGTERM stays submitit's (it announces a preemption that USR2 handles)."""
    if "SUBMITIT_LOCAL_JOB_ID" not in os.environ or threading.current_thread() is not threading.main_thread():
        return
    from pretrain.train import request_checkpoint

    def interrupt() -> None:
        raise KeyboardInterrupt

    def at_next_step(signum: int, frame) -> None:  # noqa: ANN001
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough: the stop is under way
        request_checkpoint(interrupt)

    signal.signal(signal.SIGTERM, at_next_step)


def _raised_by_requeue(error: BaseException) -> bool:
    """Whether ``error`` came out of submitit's preemption handler (it runs inside whatever
    frame the signal interrupted, so its exceptions surface in the training code)."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "checkpoint_and_try_requeue":
            return True
        tb = tb.tb_next
    return False


def worker_threads(parallelism: int) -> int:
    """Threads per worker when ``parallelism`` workers share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, parallelism))
