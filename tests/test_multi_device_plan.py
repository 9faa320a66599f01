"""Runs on several devices, as a study asks for them: the plan's GPU lines and the checks
that stop a launch before any compute when the executor cannot start such runs."""

import pytest
from test_plan_review import QUICK, variant

from sweeps.execution.launcher import launch
from sweeps.review.planreview import review
from sweeps.review.planview import render_text


def _devices(n):
    return lambda d: d["training"].update(devices=n)


def test_plan_shows_gpus_per_run_and_counts_gpu_hours_over_them(tmp_path, repo_root):
    one = review(variant(tmp_path, repo_root, "one", lambda d: None), QUICK)
    four = review(variant(tmp_path, repo_root, "four", _devices(4)), QUICK)
    text = render_text(four)
    assert "GPU: 4 per run (training.devices 4 x nodes 1, strategy auto)" in text
    assert "each run's wall clock is its GPU-hours / 4" in text
    assert four.time.to_dict()["gpus_per_run"] == 4
    # The work does not change with the world size (perfect scaling assumed).
    assert four.time.gpu_hours_study == pytest.approx(one.time.gpu_hours_study)


def test_a_local_executor_cannot_start_a_run_on_two_processes(tmp_path, repo_root):
    study = variant(tmp_path, repo_root, "two", _devices(2))
    with pytest.raises(ValueError, match="training.devices 2 x nodes 1 trains each run on 2 processes, "
                                         "which the local executor cannot start"):
        launch(study, log=lambda _: None)
    assert not (study.root / "store").exists()  # refused before any work


def test_the_profile_must_start_as_many_tasks_as_the_study_has_devices(tmp_path, repo_root):
    profile = tmp_path / "four-gpus.yaml"
    profile.write_text("gpus_per_run: 4\ncpus_per_run: 8\nmem_gb: 64\ntime_min: 60\n")
    study = variant(tmp_path, repo_root, "mismatch",
                    lambda d: d.update(executor={"kind": "slurm", "profile": str(profile)}) or _devices(2)(d))
    with pytest.raises(ValueError, match="profile four-gpus starts 4 tasks per node on 1 node"):
        launch(study, log=lambda _: None)
    assert not (study.root / "store").exists()


def test_a_study_may_ask_for_fsdp_by_name(tmp_path, repo_root):
    study = variant(tmp_path, repo_root, "fsdp", lambda d: d["training"].update(strategy="fsdp") or _devices(2)(d))
    assert study.training.strategy == "fsdp"
    assert "GPU: 2 per run (training.devices 2 x nodes 1, strategy fsdp)" in render_text(review(study, QUICK))
    with pytest.raises(ValueError, match=r"zero.yaml:\d+:\d+: training.strategy: 'zero3' is not one of auto, ddp, fsdp"):
        variant(tmp_path, repo_root, "zero", lambda d: d["training"].update(strategy="zero3"))


def test_fsdp_refuses_fp16_mixed_precision_in_one_line():
    from pretrain.spec import TrainSpec

    with pytest.raises(ValueError, match="precision 16-mixed cannot train with strategy fsdp"):
        TrainSpec(size="tiny-50k", store="s", store_id="x", tokens=16_000, batch_size=8, devices=2,
                  strategy="fsdp", precision="16-mixed")
