"""Launching a study: round by round, the runs planning wants are written as run directories
(with the micro-batch and strategy the memory plan picks) and handed to an executor (debug,
local or Slurm), whose workers claim and train them.
"""

from sweeps.execution.executors import Submission, submit, wait
from sweeps.execution.launcher import LaunchReport, launch, with_executor
from sweeps.execution.memoryplan import SizeMemory, gpu_memory, with_planned_memory
from sweeps.execution.worker import RunWorker, run_one, worker_threads

__all__ = [
    "LaunchReport", "RunWorker", "SizeMemory", "Submission", "gpu_memory", "launch", "run_one",
    "submit", "wait", "with_executor", "with_planned_memory", "worker_threads",
]
