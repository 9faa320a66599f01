"""Kill a launch (launcher and workers together) at random moments, several times, then let
it finish: the results are those of a launch that was never interrupted."""

import json
import random
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from test_concurrent_launch import STUDY


def _launch(study, root):
    return subprocess.Popen([sys.executable, "-m", "dcsl_cli", "sweep", "launch", str(study),
                             "--root", str(root), "--executor", "local", "--parallelism", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _results(root):
    table = pd.read_parquet(root / "results.parquet")
    table = table[["run_id", "recipe", "role", "kind", "status", "val_loss", "K", "rule"]]
    table = table.sort_values(["run_id", "recipe", "K", "rule"]).reset_index(drop=True)
    tuning = pd.read_csv(root / "tuning.csv").sort_values(["recipe", "size"]).reset_index(drop=True)
    return table, tuning, json.loads((root / "search.json").read_text())


@pytest.mark.slow
def test_a_launch_killed_three_times_ends_like_an_uninterrupted_one(tmp_path, bible_store):
    study = tmp_path / "study.yaml"
    study.write_text(textwrap.dedent(STUDY.format(store=bible_store.path)))
    assert _launch(study, tmp_path / "calm").wait(timeout=900) == 0

    root, rng = tmp_path / "killed", random.Random(7)
    kills = 0
    for _ in range(3):
        proc = _launch(study, root)
        time.sleep(rng.uniform(4.0, 15.0))
        if proc.poll() is not None:
            break
        # Launcher and workers die together, as on a lost node (the workers' command lines
        # name the study root's job folder).
        subprocess.run(["pkill", "-9", "-f", str(root)], check=False)
        proc.wait(timeout=60)
        kills += 1
    assert kills >= 2, "the launch finished before it could be interrupted twice"
    assert _launch(study, root).wait(timeout=900) == 0

    (t1, u1, s1), (t2, u2, s2) = _results(tmp_path / "calm"), _results(root)
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(u1, u2)
    assert s1 == s2
