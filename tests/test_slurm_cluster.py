"""The Slurm substrate: cluster profiles, and submitit against a real local Slurm.

Unit tests (profiles, chunking) need no cluster. Tests marked ``slurm`` use the
session fixture ``slurm_cluster`` (tests/slurm_cluster.py), which starts a real
single-node Slurm 22.05 with accounting; nothing about Slurm is mocked.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import submitit
import submitit.helpers

from slurm.local_cluster import LocalSlurmCluster
from sweeps.study.profiles import (
    ClusterProfile,
    available_profiles,
    chunk_for_array,
    load_profile,
    make_executor,
    max_array_size,
)

# Jobs unpickle their function in a fresh interpreter that cannot import this test
# module (tests/ is not on its sys.path), so ship the module's code by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

JOB_TIMEOUT_S = 60.0
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


# ---------------------------------------------------------------- job functions
def square(x: int) -> int:
    return x * x


def add_or_fail(x: int) -> int:
    if x == 2:
        raise ValueError(f"deliberate failure on item {x}")
    return x + 100


class ResumableCounter(submitit.helpers.Checkpointable):
    """Sums k*k for k = 1..steps, one step per ``step_s``, resuming from a progress file.

    The progress file is the run's checkpoint (like ckpt/ in a run directory): each
    attempt appends the step it started from, so the test can see it was requeued
    and resumed rather than restarted.
    """

    def __call__(self, progress_file: str, steps: int, step_s: float) -> dict[str, int]:
        path = Path(progress_file)
        state: dict[str, Any] = (
            json.loads(path.read_text()) if path.exists() else {"step": 0, "total": 0, "starts": []}
        )
        state["starts"].append(state["step"])
        _write_json(path, state)
        while state["step"] < steps:
            time.sleep(step_s)
            state["step"] += 1
            state["total"] += state["step"] ** 2
            _write_json(path, state)
        return {"total": state["total"], "steps": state["step"]}

    def checkpoint(self, progress_file: str, steps: int, step_s: float) -> Any:
        # Called by submitit's USR2 handler; count the calls next to the progress file.
        marker = Path(progress_file + ".checkpoints")
        count = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(count + 1))
        return super().checkpoint(progress_file, steps, step_s)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    # Atomic: a signal between write and rename leaves the old, complete file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


# ---------------------------------------------------------------- helpers
def _wait_done(jobs: Sequence[submitit.Job[Any]], timeout_s: float = JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            states = {job.job_id: job.watcher.get_state(job.job_id, mode="force") for job in jobs}
            pytest.fail(f"jobs not done after {timeout_s:.0f}s: {states}")
        time.sleep(0.5)


def _final_state(job: submitit.Job[Any], timeout_s: float = 20.0) -> str:
    """The job's state as sacct reports it (through submitit), once it is terminal."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = job.watcher.get_state(job.job_id, mode="force")
        # sacct may say "CANCELLED by 0"; keep the first word.
        state = state.split()[0] if state else state
        if state in TERMINAL or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


# ---------------------------------------------------------------- unit: profiles
def test_shipped_profiles_load() -> None:
    assert {"local", "example-gpu"} <= set(available_profiles())
    local = load_profile("local")
    assert local == ClusterProfile(
        name="local",
        partition="debug",
        gpus_per_run=0,
        cpus_per_run=1,
        mem_gb=2.0,
        time_min=30,
        array_parallelism=2,
    )
    gpu = load_profile("example-gpu")
    assert gpu.gpus_per_run == 1 and gpu.cpus_per_run == 8 and gpu.mem_gb == 64
    assert gpu.time_min == 720 and gpu.array_parallelism == 64
    assert gpu.account and gpu.qos and any("module load" in line for line in gpu.setup)


def test_load_profile_by_path_equals_by_name() -> None:
    by_name = load_profile("local")
    path = Path(by_name.source)
    assert load_profile(path) == by_name
    assert load_profile(str(path)) == by_name


@pytest.mark.slurm
def test_submitit_parameters_make_requeueable_jobs(
    slurm_cluster: LocalSlurmCluster, tmp_path: Path
) -> None:
    """The sbatch script submitit would submit carries the profile's resources.

    Nothing is submitted; the cluster fixture is only needed because submitit's Slurm
    executor refuses to exist without ``srun`` on PATH (the fixture installs it).
    """
    gpu = load_profile("example-gpu")
    params = gpu.submitit_parameters()
    assert params["slurm_additional_parameters"]["requeue"] is True
    executor = make_executor(gpu, tmp_path)
    text = executor._executor._make_submission_file_text(command="echo hi", uid="test")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --account=my-project",
        "#SBATCH --qos=normal",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=720",
        "#SBATCH --signal=USR2@180",
        "#SBATCH --requeue",
        "module load cuda/12.4",
    ):
        assert line in text, f"{line!r} missing from sbatch script:\n{text}"

    local_text = make_executor("local", tmp_path)._executor._make_submission_file_text(
        command="echo hi", uid="test"
    )
    assert "--gpus-per-node" not in local_text  # no GRES demands on a CPU cluster
    assert "--account" not in local_text and "--qos" not in local_text
    assert "#SBATCH --partition=debug" in local_text


GOOD = """\
partition: debug
gpus_per_run: 0
cpus_per_run: 1
mem_gb: 2
time_min: 30
"""


@pytest.mark.parametrize(
    ("text", "key", "phrase"),
    [
        (GOOD + "gpu_per_run: 1\n", "gpu_per_run", "unknown profile key"),
        (GOOD.replace("cpus_per_run: 1", "cpus_per_run: '8'"), "cpus_per_run", "expected an integer"),
        (GOOD.replace("cpus_per_run: 1", "cpus_per_run: true"), "cpus_per_run", "expected an integer"),
        (GOOD.replace("cpus_per_run: 1", "cpus_per_run: 0"), "cpus_per_run", "positive"),
        (GOOD.replace("mem_gb: 2", "mem_gb: -4"), "mem_gb", "positive"),
        (GOOD.replace("mem_gb: 2", "mem_gb: lots"), "mem_gb", "expected a number"),
        (GOOD.replace("time_min: 30", "time_min: -5"), "time_min", "positive"),
        (GOOD.replace("gpus_per_run: 0", "gpus_per_run: -1"), "gpus_per_run", "0 or more"),
        (GOOD + "array_parallelism: 0\n", "array_parallelism", "positive"),
        (GOOD + "partition2: x\n", "partition2", "unknown profile key"),
        (GOOD.replace("time_min: 30\n", ""), "time_min", "is required"),
        (GOOD + "setup: module load cuda\n", "setup", "expected a list"),
        (GOOD + "account: 7\n", "account", "non-empty string"),
        (GOOD + "signal_delay_s: 1800\n", "signal_delay_s", "shorter than time_min"),
        (GOOD + "additional_parameters: [a, b]\n", "additional_parameters", "expected a mapping"),
    ],
)
def test_bad_profile_gives_one_line_error(tmp_path: Path, text: str, key: str, phrase: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message
    # file:line:col, then the key, then what is wrong with it (the study files' format)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: {key}: .*{phrase}", message), message


def test_bad_profile_files(tmp_path: Path) -> None:
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_profile(not_mapping)
    broken = tmp_path / "broken.yaml"
    broken.write_text("partition: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML") as info:
        load_profile(broken)
    assert "\n" not in str(info.value) and str(broken) in str(info.value)
    with pytest.raises(ValueError, match="unknown cluster profile 'nope'.*local"):
        load_profile("nope")
    with pytest.raises(ValueError, match="not found"):
        load_profile(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- unit: arrays
def test_chunk_for_array() -> None:
    items = list(range(7))
    assert chunk_for_array(items, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunk_for_array(items, 7) == [items]
    assert chunk_for_array(items, 1000) == [items]
    assert chunk_for_array([], 5) == []
    chunks = chunk_for_array(range(2500), 1001)
    assert [len(c) for c in chunks] == [1001, 1001, 498]
    assert [x for c in chunks for x in c] == list(range(2500))
    with pytest.raises(ValueError, match="at least 1"):
        chunk_for_array(items, 0)
    with pytest.raises(TypeError):
        chunk_for_array(items, 2.5)  # type: ignore[arg-type]


def test_max_array_size_without_scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no scontrol anywhere
    with pytest.raises(RuntimeError, match="scontrol not found"):
        max_array_size()


# ---------------------------------------------------------------- real Slurm
@pytest.mark.slurm
def test_max_array_size_from_cluster(slurm_cluster: LocalSlurmCluster) -> None:
    size = max_array_size()  # uses os.environ["SLURM_CONF"], set by the fixture
    assert isinstance(size, int) and size == slurm_cluster.max_array_size() == 1001


@pytest.mark.slurm
def test_job_array_completes(slurm_cluster: LocalSlurmCluster, tmp_path: Path) -> None:
    executor = make_executor(load_profile("local"), tmp_path / "submitit")
    jobs = executor.map_array(square, [1, 2, 3, 4])
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array, four tasks
    _wait_done(jobs)
    assert [job.result() for job in jobs] == [1, 4, 9, 16]
    assert [_final_state(job) for job in jobs] == ["COMPLETED"] * 4


@pytest.mark.slurm
def test_failing_job_reports_traceback(slurm_cluster: LocalSlurmCluster, tmp_path: Path) -> None:
    executor = make_executor(load_profile("local"), tmp_path / "submitit")
    with executor.batch():
        jobs = [executor.submit(add_or_fail, x) for x in (1, 2, 3)]
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # batch() submits one array
    _wait_done(jobs)
    assert jobs[0].result() == 101 and jobs[2].result() == 103
    with pytest.raises(submitit.core.utils.FailedJobError) as info:
        jobs[1].result()
    text = str(info.value)
    assert "Traceback" in text and "ValueError: deliberate failure on item 2" in text
    assert "add_or_fail" in text
    assert [_final_state(job) for job in jobs] == ["COMPLETED", "FAILED", "COMPLETED"]


@pytest.mark.slurm
def test_preempted_job_checkpoints_requeues_and_resumes(
    slurm_cluster: LocalSlurmCluster, tmp_path: Path
) -> None:
    steps, step_s = 8, 0.5
    progress = tmp_path / "progress.json"
    executor = make_executor(load_profile("local"), tmp_path / "submitit")
    job = executor.submit(ResumableCounter(), str(progress), steps, step_s)

    # Interrupt only once the callable runs: submitit installs its signal handlers
    # before calling it, and a few steps are on disk to resume from.
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (progress.exists() and json.loads(progress.read_text())["step"] >= 2):
        if time.monotonic() > deadline or job.done():
            pytest.fail(f"job {job.job_id} never made progress: {job.stderr()}")
        time.sleep(0.2)
    # What a preemption does: scancel --signal=TERM (submitit ignores it) then
    # --signal=USR2, on which submitit checkpoints and runs `scontrol requeue`.
    job._interrupt()

    _wait_done([job], timeout_s=JOB_TIMEOUT_S)
    result = job.result()
    state = json.loads(progress.read_text())
    assert len(state["starts"]) >= 2, f"job was not requeued: {state}"
    assert state["starts"][1] >= 2, f"second attempt did not resume: {state}"
    assert int(Path(str(progress) + ".checkpoints").read_text()) >= 1
    restarts = slurm_cluster.run_client("scontrol", "show", "job", job.job_id)
    assert "Restarts=1" in restarts or "Restarts=2" in restarts, restarts
    assert _final_state(job) == "COMPLETED"

    uninterrupted = ResumableCounter()(str(tmp_path / "reference.json"), steps, 0.0)
    assert (
        result
        == uninterrupted
        == {"total": sum(k * k for k in range(1, steps + 1)), "steps": steps}
    )


def test_a_profile_of_several_nodes_asks_for_a_task_per_gpu(slurm_cluster: LocalSlurmCluster, tmp_path: Path) -> None:
    profile = tmp_path / "two-nodes.yaml"
    profile.write_text("gpus_per_run: 8\nnodes_per_run: 2\ncpus_per_run: 12\nmem_gb: 900\ntime_min: 600\n")
    loaded = load_profile(profile)
    assert (loaded.ranks_per_node, loaded.gpus_per_job) == (8, 16)
    text = make_executor(loaded, tmp_path)._executor._make_submission_file_text(command="echo hi", uid="t")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8"):
        assert line in text, f"{line!r} missing from sbatch script:\n{text}"
    # A task that fails a shared run ends the others instead of leaving them in a collective.
    assert "--kill-on-bad-exit=1" in text
