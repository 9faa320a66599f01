"""Launching a study: round by round, the runs planning wants are written as run directories
(with the micro-batch and strategy the memory plan picks) and handed to an executor (debug,
local or Slurm), whose workers claim and train them; their live progress, with ETAs from
what the runs report.
"""

from sweeps.execution.executors import Submission, submit, wait
from sweeps.execution.launcher import LaunchReport, launch, with_executor
from sweeps.execution.liveview import LiveProgress, plain_line, watch_study
from sweeps.execution.memoryplan import SizeMemory, gpu_memory, with_planned_memory
from sweeps.execution.progress import ProgressView, estimate
from sweeps.execution.runfacts import RunFacts, read_run, study_runs
from sweeps.execution.worker import RunWorker, run_one, worker_threads

__all__ = [
    "LaunchReport", "LiveProgress", "ProgressView", "RunFacts", "RunWorker", "SizeMemory",
    "Submission", "estimate", "gpu_memory", "launch", "plain_line", "read_run", "run_one",
    "study_runs", "submit", "wait", "watch_study", "with_executor", "with_planned_memory",
    "worker_threads",
]
