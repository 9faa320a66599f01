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
