"""Faults during and after a launch, on one small study run once without faults (``calm``):

- a launch stopped with SIGTERM (its workers stop, each at a checkpoint) and then killed with
  its workers at random moments, several times, ends with the results of the calm launch; at
  every stop, collect, fit and report work on the unfinished table and say what is unfinished;
- finished runs deleted from a copy of the calm study are retrained by a relaunch (the
  adaptive search replays the same decisions), and until then no law rests on them;
- damaged run files make those runs unreadable, named, while the rest of the study works;
  a relaunch moves them aside and trains them again.
"""

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from test_concurrent_launch import STUDY

from scaling import analyze_study, write_report
from sweeps.collect import collect
from sweeps.study import load_study


def _launch(study, root, **popen):
    return subprocess.Popen([sys.executable, "-m", "dcsl_cli", "sweep", "launch", str(study),
                             "--root", str(root), "--executor", "local", "--parallelism", "2"],
                            stdout=popen.get("stdout", subprocess.DEVNULL),
                            stderr=popen.get("stderr", subprocess.DEVNULL), text=True)


def _dcsl(*args):
    return subprocess.run([sys.executable, "-m", "dcsl_cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def _results(root):
    table = pd.read_parquet(root / "results.parquet")
    table = table[["run_id", "recipe", "role", "kind", "status", "val_loss", "K", "rule"]]
    table = table.sort_values(["run_id", "recipe", "K", "rule"]).reset_index(drop=True)
    tuning = pd.read_csv(root / "tuning.csv").sort_values(["recipe", "size"]).reset_index(drop=True)
    return table, tuning, json.loads((root / "search.json").read_text())


def _analysis_works_mid_flight(study_path, root, tmp_path):
    """Collect, fit and report on whatever the store holds now: they succeed, and the report
    says how many rows have not succeeded."""
    table, _, _ = collect(load_study(study_path, root=root))
    analysis = analyze_study(table, n_boot=0)
    report = write_report(analysis, tmp_path / f"report-{time.time_ns()}", figures=False).read_text()
    unfinished = int((table.status != "succeeded").sum())
    if unfinished:
        assert f"{unfinished} not-succeeded rows skipped" in report
    return table


@pytest.fixture(scope="module")
def calm(tmp_path_factory, bible_store):
    folder = tmp_path_factory.mktemp("faults")
    study = folder / "study.yaml"
    study.write_text(textwrap.dedent(STUDY.format(store=bible_store.path)))
    assert _launch(study, folder / "calm").wait(timeout=900) == 0
    return study, folder / "calm"


def _running_runs(root):
    """Runs a live worker holds (a dead worker's run reads as stale)."""
    from sweeps.runs import run_state

    runs = Path(root) / "runs"
    return [d for d in runs.iterdir() if run_state(d) == "running"] if runs.exists() else []


@pytest.mark.slow
def test_a_launch_stopped_and_killed_ends_like_an_uninterrupted_one(calm, tmp_path):
    study, calm_root = calm
    root, rng = tmp_path / "killed", random.Random(7)
    # First a graceful stop: SIGTERM to the launcher alone (a job script, a closed tmux pane).
    proc = _launch(study, root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not _running_runs(root) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, out[-2000:]
    assert "stopped 2 local workers, each at a checkpoint" in out, out[-2000:]
    assert "interrupted; run the same command again to continue" in out
    time.sleep(1.0)
    assert not subprocess.run(["pgrep", "-f", str(root)], capture_output=True).stdout, "a worker survived"
    assert not _running_runs(root)  # left pending, not stale
    _analysis_works_mid_flight(study, root, tmp_path)
    # Then launcher and workers die together, as on a lost node (the workers' command lines
    # name the study root's job folder), at random moments.
    kills = 0
    for _ in range(2):
        proc = _launch(study, root)
        time.sleep(rng.uniform(4.0, 15.0))
        if proc.poll() is not None:
            break
        subprocess.run(["pkill", "-9", "-f", str(root)], check=False)
        proc.wait(timeout=60)
        kills += 1
        table = _analysis_works_mid_flight(study, root, tmp_path)
        assert set(table.status) <= {"succeeded", "running", "pending", "stale", "missing", "orphaned"}
    assert kills >= 1, "the launch finished before it could be killed"
    assert _launch(study, root).wait(timeout=900) == 0

    (t1, u1, s1), (t2, u2, s2) = _results(calm_root), _results(root)
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(u1, u2)
    assert s1 == s2


@pytest.mark.slow
def test_deleted_runs_are_retrained_and_no_law_rests_on_them_meanwhile(calm, tmp_path):
    study, calm_root = calm
    root = tmp_path / "deleted"
    shutil.copytree(calm_root, root)
    tuning = pd.read_csv(root / "tuning.csv")
    best = tuning[tuning.recipe == "regularized"].iloc[0]
    table = pd.read_parquet(root / "results.parquet")
    cell = table[(table.kind == "train") & (table.recipe == "regularized") & (table["size"] == best["size"])]
    neighbour = cell[cell.run_id != best.run_id].iloc[0]
    for run_id in (best.run_id, neighbour.run_id):
        shutil.rmtree(next((root / "runs").glob(f"*-{run_id}")))
    # Meanwhile: both are missing rows, and the ensemble built on the best point (member 0 is
    # the tuned run itself) is orphaned: no law is fitted to it.
    table = _analysis_works_mid_flight(study, root, tmp_path)
    missing = set(table[table.status == "missing"].run_id)
    assert {best.run_id, neighbour.run_id} <= missing
    orphaned = table[table.status == "orphaned"]
    assert (orphaned.kind == "ensemble").any()
    analysis = analyze_study(table, n_boot=0)
    assert not any(size == best["size"] for _, size in analysis.ensembles)
    status = _dcsl("sweep", "status", study, "--root", root)
    assert status.returncode == 0 and "orphaned: " in status.stdout
    # A relaunch retrains exactly the two, and the study ends as the calm one did.
    launch = _dcsl("sweep", "launch", study, "--root", root, "--executor", "local")
    assert launch.returncode == 0, launch.stderr[-2000:]
    assert "launched 2 runs: 2 succeeded" in launch.stdout
    (t1, u1, s1), (t2, u2, s2) = _results(calm_root), _results(root)
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(u1, u2)
    assert s1 == s2


@pytest.mark.slow
def test_damaged_run_files_are_named_and_the_runs_trained_again(calm, tmp_path):
    study, calm_root = calm
    root = tmp_path / "damaged"
    shutil.copytree(calm_root, root)
    runs = sorted((root / "runs").iterdir())
    trains = [d for d in runs if json.loads((d / "spec.json").read_text())["kind"] == "train"]
    truncated, garbled, emptied = trains[0], trains[1], trains[2]
    result = (truncated / "result.json").read_text()
    (truncated / "result.json").write_text(result[: len(result) // 2])
    (garbled / "status.json").write_bytes(b'{"state": "\xff\xfe\x00 succeeded"}')
    (emptied / "spec.json").write_text("")
    for command in ("status", "collect"):
        done = _dcsl("sweep", command, study, "--root", root)
        assert done.returncode == 0, done.stderr
        for d, why in ((truncated, "result.json: not valid JSON"), (garbled, "status.json: not UTF-8"),
                       (emptied, "spec.json: empty")):
            assert f"{d}/{why}" in done.stdout, (command, done.stdout[-3000:])
    fit = _dcsl("fit", root, "--n-boot", "0")
    assert fit.returncode == 0, fit.stderr
    launch = _dcsl("sweep", "launch", study, "--root", root, "--executor", "local")
    assert launch.returncode == 0, launch.stderr[-2000:]
    assert "launched 3 runs: 3 succeeded" in launch.stdout, launch.stdout[-2000:]
    assert len(list((root / "damaged").iterdir())) == 3  # kept, with a note of why
    (t1, u1, _), (t2, u2, _) = _results(calm_root), _results(root)
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(u1, u2)
