"""``sweep plan``'s time lines: run-seconds on this machine from the measured probe, and
GPU-hours at an assumed MFU, for the first round, the whole study, and what is left of it
(the runs that succeeded already taken off each stage)."""

from __future__ import annotations

from dataclasses import dataclass

from sweeps.review.estimate import PlanSummary, gpu_hours
from sweeps.review.probe import Throughput
from sweeps.study import Study

# Start-up, validation and checkpoint writes of one run on a CPU, beyond its training FLOPs
# (the demo: ~75 s over 104 runs on 2 workers).
RUN_OVERHEAD_S = 1.5


@dataclass(frozen=True)
class TimeEstimate:
    """Run-seconds on this machine and GPU-hours, for the first round and the whole study."""

    first_round_s: float
    study_s: float
    """Every stage, later adaptive rounds at their estimate."""
    study_max_s: float
    """Later adaptive rounds at their bound."""
    threads: int
    parallelism: int | None
    """Runs at once on this machine (None: a cluster executor, wall time is the cluster's)."""
    gpu_hours_first: float
    gpu_hours_study: float
    gpus_per_run: int = 1
    """training.devices x training.nodes: GPU-hours count every GPU a run holds."""
    left_s: float | None = None
    """Every stage less its succeeded runs (None: as ``study_s``, nothing has succeeded)."""
    left_max_s: float | None = None
    gpu_hours_left: float | None = None

    def cpu_hours(self, seconds: float) -> float:
        return seconds * self.threads / 3600.0

    def wall_s(self, seconds: float) -> float | None:
        return None if self.parallelism is None else seconds / self.parallelism

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"threads_per_run": self.threads, "parallelism": self.parallelism,
                                  "gpus_per_run": self.gpus_per_run,
                                  "gpu_hours_first_round": self.gpu_hours_first,
                                  "gpu_hours_study": self.gpu_hours_study}
        out["gpu_hours_left"] = self.gpu_hours_study if self.gpu_hours_left is None else self.gpu_hours_left
        for name, s in (("first_round", self.first_round_s), ("study", self.study_s),
                        ("study_max", self.study_max_s),
                        ("left", self.study_s if self.left_s is None else self.left_s),
                        ("left_max", self.study_max_s if self.left_max_s is None else self.left_max_s)):
            out[name] = {"run_seconds": s, "cpu_hours": self.cpu_hours(s), "wall_seconds": self.wall_s(s)}
        return out


def time_estimate(study: Study, summary: PlanSummary, throughput: Throughput, mfu: float,
                  peak_tflops: float) -> TimeEstimate:
    """Run-seconds on this machine (measured throughput per size) and GPU-hours at ``mfu`` of
    ``peak_tflops`` per GPU, for the first round and every stage."""
    def seconds(stage, scale: float = 1.0) -> float:  # noqa: ANN001 - a StageRuns
        work = sum(f / throughput.rate(size) for size, f in stage.flops_by_size.items())
        return scale * (work + RUN_OVERHEAD_S * stage.runs)

    def left(stage) -> float:  # noqa: ANN001
        work = sum(f / throughput.rate(size) for size, f in stage.flops_left_by_size.items())
        return work + RUN_OVERHEAD_S * stage.runs_left

    def left_max(stage) -> float:  # noqa: ANN001 - an estimate's bound: its mean run per run left
        if stage.runs_max is None or not stage.runs:
            return left(stage)
        return max(left(stage), seconds(stage) / stage.runs * stage.runs_max_left)

    first = [s for s in summary.stages if s.stage.endswith("round 1")]
    first_s = sum(seconds(s) for s in first)
    study_s = sum(seconds(s) for s in summary.stages)
    max_s = sum(seconds(s, (s.runs_max or s.runs) / s.runs if s.runs else 1.0) for s in summary.stages)
    peak = peak_tflops * 1e12
    done = summary.succeeded > 0
    parallelism = study.executor.local_workers
    return TimeEstimate(first_s, study_s, max_s, throughput.threads, parallelism,
                        gpu_hours(sum(s.flops for s in first), mfu, peak),
                        gpu_hours(sum(s.flops for s in summary.stages), mfu, peak),
                        study.training.world_size,
                        sum(left(s) for s in summary.stages) if done else None,
                        sum(left_max(s) for s in summary.stages) if done else None,
                        gpu_hours(sum(s.flops_left for s in summary.stages), mfu, peak) if done else None)
