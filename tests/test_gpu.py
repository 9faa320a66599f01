"""Checks that need CUDA GPUs, for a device machine (skipped entirely without CUDA):

    .venv/bin/pytest -q tests/test_gpu.py

On one GPU: a run trains in bf16-mixed, compiled by default, is killed and resumes to the
same end as an uninterrupted one (within bf16 noise: GPU kernels are not bit-exact between
processes); FSDP (one rank, compiled block by block) against the plain run. With two or more
GPUs: two DDP ranks, and two FSDP ranks, against one GPU.
"""

import subprocess

import pytest
import torch
from multirank import ENV, kill_once_checkpointed, result, train_args

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA GPUs")]


def _train(store, run_dir, **kw) -> list[str]:
    # tiny-400k, 4 epochs of 32k tokens, the whole batch at once, torch's own threads.
    return train_args(store, run_dir, **{"size": "tiny-400k", "tokens": "32k", "epochs": 4, "micro_batch_size": None,
                                        "ckpt_every": 10, "threads": None, **kw})


def _close(a: dict, b: dict, tol: float = 2e-2) -> None:
    for x, y in zip(a["val_history"], b["val_history"], strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) < tol, (x, y)


@pytest.fixture(scope="module")
def one_gpu(bible_store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gpu") / "one"
    subprocess.run(_train(bible_store, run_dir), check=True, env=ENV, capture_output=True)
    return run_dir


def test_a_gpu_run_trains_in_bf16_compiled_by_default(one_gpu):
    r = result(one_gpu)
    assert r["device"].startswith("cuda") and r["precision"] == "bf16-mixed" and r["compiled"]
    assert r["final_val_loss"] < r["val_history"][0]["val_loss"]


def test_a_killed_gpu_run_resumes(bible_store, one_gpu, tmp_path):
    killed = tmp_path / "killed"
    kill_once_checkpointed(_train(bible_store, killed), killed, "step-000000[2-9]0.ckpt", 300)
    out = subprocess.run(_train(bible_store, killed), check=True, env=ENV, capture_output=True, text=True)
    assert "resuming killed from step" in out.stdout + out.stderr
    _close(result(one_gpu), result(killed))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_ddp_ranks_on_two_gpus_match_one(bible_store, one_gpu, tmp_path):
    two = tmp_path / "two"
    subprocess.run(_train(bible_store, two, devices=2), check=True, env=ENV, capture_output=True)
    assert (result(two)["world_size"], result(two)["strategy"]) == (2, "ddp")
    _close(result(one_gpu), result(two))


def test_fsdp_on_one_gpu_compiles_its_blocks_and_matches_the_plain_run(bible_store, one_gpu, tmp_path):
    sharded = tmp_path / "fsdp"
    subprocess.run(_train(bible_store, sharded, strategy="fsdp"), check=True, env=ENV, capture_output=True)
    r = result(sharded)
    assert (r["strategy"], r["compiled"], r["precision"]) == ("fsdp", True, "bf16-mixed")
    _close(result(one_gpu), r)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_fsdp_ranks_on_two_gpus_match_one(bible_store, one_gpu, tmp_path):
    two = tmp_path / "two-fsdp"
    subprocess.run(_train(bible_store, two, devices=2, strategy="fsdp"), check=True, env=ENV, capture_output=True)
    assert (result(two)["world_size"], result(two)["strategy"]) == (2, "fsdp")
    _close(result(one_gpu), result(two))
