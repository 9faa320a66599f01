"""The job that executors submit: a worker that runs several run directories in turn.

One worker process per job amortises start-up (importing Lightning costs seconds)
over many small runs. Each run is claimed with a lock before it starts, so two
workers never train the same run, and a worker may pull from a shared queue (the
local executor's work stealing) or take a fixed chunk (a Slurm array task).

The worker is ``submitit.helpers.Checkpointable``: on preemption or timeout, submitit
calls ``checkpoint`` and requeues the same worker; each run then resumes from its
own last checkpoint. The worker never raises for a failed run (the run's status.json
holds the error and traceback); it returns what happened to each run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

import submitit

from pretrain.rundir import RunDir
from sweeps.kinds import kind_of
from sweeps.runstore import claim


class RunWorker(submitit.helpers.Checkpointable):
    def __init__(self, run_dirs: list[str], threads: int = 0) -> None:
        self.run_dirs = [str(d) for d in run_dirs]
        self.threads = threads

    def __call__(self) -> dict[str, str]:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        _checkpoint_before_requeue()
        outcome: dict[str, str] = {}
        for d in self.run_dirs:
            outcome[Path(d).name] = run_one(Path(d))
        return outcome


def run_one(run_dir: Path, log_to_stdout: bool = True) -> str:
    """Claim and run one run directory; returns its final state (or 'skipped')."""
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
            kind.run(kind.spec_from_json(spec_json), run_dir, log=log)
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
