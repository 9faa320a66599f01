"""Executors: where a batch of run directories is worked off.

- ``debug``: in this process, one after another (for tests and debuggers);
- ``local``: ``parallelism`` submitit local jobs on this machine, each a worker that
  pulls the next unclaimed run from the shared list (work stealing);
- ``slurm``: one submitit job array per batch, split at the cluster's MaxArraySize,
  each array task a worker over ``runs_per_task`` runs.

``submit`` returns handles; ``wait`` blocks until every job has ended (a failed job
is reported, never raised: the runs' own status files say what happened).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.execution.worker import RunWorker, run_one, worker_threads
from sweeps.study import Executor


@dataclass
class Submission:
    jobs: list = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


def submit(executor: Executor, run_dirs: list[Path], folder: Path) -> Submission:
    folder.mkdir(parents=True, exist_ok=True)
    if executor.kind == "debug":
        for d in run_dirs:
            run_one(d)
        return Submission()
    if executor.kind == "local":
        import submitit

        n = min(executor.parallelism, len(run_dirs))
        # One folder for every local job: job ids are process ids, and a "%j" pattern here
        # would leave a folder literally named "%j" behind (submitit's local controller).
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=60 * 24 * 7)
        threads = worker_threads(n)
        jobs = [ex.submit(RunWorker([str(d) for d in run_dirs], threads=threads)) for _ in range(n)]
        return Submission(jobs, [j.job_id for j in jobs])
    return _submit_slurm(executor, run_dirs, folder)


def _submit_slurm(executor: Executor, run_dirs: list[Path], folder: Path) -> Submission:
    from sweeps.study import chunk_for_array, load_profile, make_executor, max_array_size

    profile = load_profile(executor.profile)
    ex = make_executor(profile, folder / "%j")
    per = executor.runs_per_task
    workers = [RunWorker([str(d) for d in run_dirs[i : i + per]], threads=profile.cpus_per_run)
               for i in range(0, len(run_dirs), per)]
    sub = Submission()
    for chunk in chunk_for_array(workers, max_array_size()):
        with ex.batch():
            jobs = [ex.submit(w) for w in chunk]
        sub.jobs += jobs
        sub.job_ids += [j.job_id for j in jobs]
    return sub


def stop(sub: Submission, executor: Executor, cancel_slurm: bool = False,
         grace_s: float = 120.0) -> str:
    """Stop what a launcher that is itself being stopped started; returns what was done.

    Local workers get SIGINT (each running training saves a checkpoint at its next step, then
    stops; see ``worker._stop_at_a_checkpoint_on_interrupt``), and are waited for up to
    ``grace_s``. Slurm jobs keep running unless ``cancel_slurm``: the cluster does not need the
    launcher, and a relaunch finds their runs running or finished.
    """
    alive = [j for j in sub.jobs if not j.done()]
    if not alive:
        return "no workers were running"
    if executor.kind == "local":
        # SIGTERM, not submitit's cancel (SIGINT): the job's controller forwards SIGTERM to the
        # worker and waits for it, where SIGINT makes it kill the worker a second later.
        for job in alive:
            _signal(job, signal.SIGTERM)
        deadline = time.time() + grace_s
        while time.time() < deadline and any(not j.done() for j in alive):
            time.sleep(0.5)
        left = [j for j in alive if not j.done()]
        for job in left:  # a worker stuck past the grace period: its run is left stale
            job.cancel()
        return (f"stopped {len(alive)} local worker{'s' if len(alive) != 1 else ''}, each at a "
                "checkpoint" + (f" ({len(left)} did not stop in {grace_s:.0f}s)" if left else ""))
    ids = ", ".join(str(j.job_id) for j in alive)
    if cancel_slurm:
        for job in alive:
            job.cancel(check=False)
        return f"cancelled Slurm jobs {ids} (--cancel-on-exit); their runs resume on a relaunch"
    return (f"Slurm jobs {ids} keep running (`dcsl sweep launch --cancel-on-exit` cancels them "
            "when the launcher stops); `dcsl sweep status` shows their runs")


def _signal(job, signum: int) -> None:  # noqa: ANN001 - a submitit LocalJob
    process = getattr(job, "_process", None)  # submitit has no public way to send one
    if process is not None and process.poll() is None:
        process.send_signal(signum)


def wait(sub: Submission, on_tick: Callable[[], None] | None = None, poll_s: float = 2.0) -> list[str]:
    """Block until all jobs end; returns one line per job that failed as a job."""
    pending = list(sub.jobs)
    while pending:
        pending = [j for j in pending if not j.done()]
        if on_tick:
            on_tick()
        if pending:
            time.sleep(poll_s)
    problems = []
    for job in sub.jobs:
        try:
            job.result()
        except Exception as e:  # noqa: BLE001 - a job-level failure is reported, runs keep their status
            problems.append(f"job {job.job_id}: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}")
    return problems
