"""A tiny study through submitit on the real single-node Slurm that the tests start."""

import re
import subprocess
import textwrap
import threading
import time
from dataclasses import replace

import pytest

from pretrain.rundir import RunDir, read_json
from sweeps.collect import collect, status_table
from sweeps.execution.launcher import launch
from sweeps.runs.snapshot import Snapshot
from sweeps.study.study import load_study

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
QUIET = {"log": lambda _: None}


def study_file(tmp_path, store, body):
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: slurm-test
        data: {{store: {store.path}}}
        executor: {{kind: slurm, profile: local}}
        """) + textwrap.dedent(body))
    return path


def test_study_as_job_array_with_a_failing_run(tmp_path, bible_store, slurm_cluster):
    path = study_file(tmp_path, bible_store, """\
        budgets: [4k]
        sizes: [tiny-50k]
        training: {batch_size: 8, seq_len: 32, threads: 1}
        lattice: {epochs: [1, 2], lr: [3.0e-3, 1.0e+30], weight_decay: [0.1]}
        recipes:
          standard: {weight_decay: 0.1, search: grid}
        """)
    study = load_study(path, root=tmp_path / "root")
    report = launch(study, **QUIET)
    assert report.launched == 4 and report.succeeded == 2 and len(report.failed) == 2
    snap = Snapshot.read(study.root)
    statuses = [RunDir(d).status() for d in snap.dirs.values()]
    assert len({s["job_id"] for s in statuses}) == 1  # one job array ...
    assert sorted(int(s["array_task"]) for s in statuses) == [0, 1, 2, 3]  # ... of four tasks
    _, failures = status_table(study)
    assert len(failures) == 2 and all("diverged at step" in f for f in failures)
    table, _, _ = collect(study)
    ok = table[table.status == "succeeded"]
    assert len(ok) == 2 and (ok.lr == 3e-3).all() and ok.val_loss.notna().all()


def test_preempted_run_is_requeued_and_resumes_to_the_same_result(tmp_path, bible_store, slurm_cluster):
    body = """\
        budgets: [32k]
        sizes: [tiny-800k]
        training: {batch_size: 8, seq_len: 64, threads: 1, ckpt_every: 100000}
        lattice: {epochs: [8], lr: [3.0e-3], weight_decay: [0.1]}
        recipes:
          standard: {weight_decay: 0.1, search: grid}
        """
    # No periodic checkpoint falls inside the run (ckpt_every is beyond its ~500 steps): what
    # it resumes from is the checkpoint saved on the preemption signal itself.
    study = load_study(study_file(tmp_path, bible_store, body), root=tmp_path / "slurm")
    thread = threading.Thread(target=launch, args=(study,), kwargs=QUIET)
    thread.start()
    run_dir = None
    deadline = time.time() + 180
    while time.time() < deadline:
        logs = [p for p in (study.root / "runs").glob("*/log.txt") if " step 1/" in p.read_text()]
        if logs:
            run_dir = logs[0].parent
            break
        time.sleep(0.2)
    assert run_dir is not None, "the run never started training"
    status = RunDir(run_dir).status()
    job_id = status["job_id"] if status["array_task"] is None else f"{status['job_id']}_{status['array_task']}"
    # What Slurm preemption does to a submitit job: TERM (ignored), then USR2 -> checkpoint +
    # requeue. scancel delivers asynchronously, so wait until the job has seen the TERM: a
    # late TERM would kill the `scontrol requeue` that the USR2 handler starts.
    subprocess.run(["scancel", job_id, "--signal", "SIGTERM"], check=True)
    err_log = next((study.root / "jobs").glob(f"{status['job_id']}*/*_log.err"))
    deadline = time.time() + 30
    while "Bypassing signal SIGTERM" not in err_log.read_text() and time.time() < deadline:
        time.sleep(0.1)
    subprocess.run(["scancel", job_id, "--signal", "USR2"], check=True)
    thread.join(timeout=300)
    assert not thread.is_alive()
    final = RunDir(run_dir).status()
    assert final["state"] == "succeeded" and final["attempts"] == 2
    log = (run_dir / "log.txt").read_text()
    saved = re.search(r"preempted: checkpoint at step (\d+)/(\d+)", log)
    resumed = re.search(r"resuming \S+ from step (\d+)/", log)
    assert saved and resumed, log[-2000:]
    # The requeued run redoes nothing: it resumes at the step the signal's checkpoint saved.
    assert resumed.group(1) == saved.group(1) and 0 < int(saved.group(1)) < int(saved.group(2))

    # The same spec trained without interruption, in this process, gives the same numbers.
    (tmp_path / "ref").mkdir()
    reference = load_study(study_file(tmp_path / "ref", bible_store, body), root=tmp_path / "ref-root")
    launch(reference, executor=replace(reference.executor, kind="debug"), **QUIET)
    ref_dir = next((reference.root / "runs").iterdir())
    assert ref_dir.name == run_dir.name  # same spec, same id
    assert read_json(run_dir / "result.json")["final_val_loss"] == read_json(ref_dir / "result.json")["final_val_loss"]


def test_a_run_on_two_tasks_trains_with_two_ranks_and_resumes_after_preemption(tmp_path, bible_store, slurm_cluster):
    """A profile of two tasks per run: Slurm starts both, Lightning's SLURMEnvironment reads
    the ranks, task 0 owns the run. Preempted mid-run (TERM, then USR2 to both tasks), the
    ranks agree to checkpoint at the next step (only task 0's submitit handler requeues), the
    requeued job resumes at exactly that step and ends as one process training the run would."""
    profile = tmp_path / "two-tasks.yaml"
    profile.write_text("partition: debug\ngpus_per_run: 0\ntasks_per_node: 2\ncpus_per_run: 1\n"
                       "mem_gb: 2\ntime_min: 30\n")
    body = f"""\
        budgets: [32k]
        sizes: [tiny-50k]
        training: {{batch_size: 8, micro_batch_size: 2, seq_len: 64, threads: 1, ckpt_every: 100000, devices: 2}}
        lattice: {{epochs: [8], lr: [3.0e-3], weight_decay: [0.1]}}
        recipes:
          standard: {{weight_decay: 0.1, search: grid}}
        executor: {{kind: slurm, profile: {profile}}}
        """
    path = study_file(tmp_path, bible_store, body).read_text().replace(
        "executor: {kind: slurm, profile: local}\n", "")
    (tmp_path / "study.yaml").write_text(path)
    study = load_study(tmp_path / "study.yaml", root=tmp_path / "two")
    thread = threading.Thread(target=launch, args=(study,), kwargs=QUIET)
    thread.start()
    deadline, run_dir = time.time() + 180, None
    while time.time() < deadline and run_dir is None:
        logs = [p for p in (study.root / "runs").glob("*/log.txt") if " step 1/" in p.read_text()]
        run_dir = logs[0].parent if logs else None
        time.sleep(0.1)
    assert run_dir is not None, "the run never started training"
    status = RunDir(run_dir).status()
    job_id = status["job_id"] if status["array_task"] is None else f"{status['job_id']}_{status['array_task']}"
    # As in the one-task test above: wait until both tasks have seen the TERM before USR2.
    subprocess.run(["scancel", job_id, "--signal", "SIGTERM"], check=True)
    err_logs = list((study.root / "jobs").glob(f"{status['job_id']}*/*_log.err"))
    deadline = time.time() + 30
    while time.time() < deadline and not all("Bypassing signal SIGTERM" in p.read_text() for p in err_logs):
        time.sleep(0.1)
    subprocess.run(["scancel", job_id, "--signal", "USR2"], check=True)
    thread.join(timeout=300)
    assert not thread.is_alive()
    final = RunDir(run_dir).status()
    assert final["state"] == "succeeded" and final["attempts"] == 2
    log = (run_dir / "log.txt").read_text()
    saved = re.search(r"preempted: checkpoint at step (\d+)/(\d+)", log)
    resumed = re.search(r"resuming \S+ from step (\d+)/", log)
    assert saved and resumed, log[-2000:]
    assert resumed.group(1) == saved.group(1) and 0 < int(saved.group(1)) < int(saved.group(2))
    result = read_json(run_dir / "result.json")
    assert (result["world_size"], result["strategy"]) == (2, "ddp")

    # The same spec on one process (devices is operational: the same run id) ends alike.
    one = load_study(tmp_path / "study.yaml", root=tmp_path / "one")
    one = replace(one, training=replace(one.training, devices=1))
    launch(one, executor=replace(one.executor, kind="debug"), **QUIET)
    ref_dir = next((one.root / "runs").iterdir())
    assert ref_dir.name == run_dir.name
    ref = read_json(ref_dir / "result.json")
    for a, b in zip(ref["val_history"], result["val_history"], strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-5
