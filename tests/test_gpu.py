"""Checks that need CUDA GPUs, for a device machine (skipped entirely without CUDA):

    .venv/bin/pytest -q tests/test_gpu.py

On one GPU: a run trains in bf16-mixed, compiled by default, is killed and resumes to the
same end as an uninterrupted one (within bf16 noise: GPU kernels are not bit-exact between
processes); FSDP (one rank, compiled block by block) against the plain run. With two or more
GPUs: two DDP ranks, and two FSDP ranks, against one GPU.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from multirank import kill_once_checkpointed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA GPUs")]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _train(store, run_dir, **kw) -> list[str]:
    args = [sys.executable, "-m", "dcsl_cli", "train", "--store", str(store.path), "--size", "tiny-400k",
            "--tokens", "32k", "--epochs", "4", "--batch-size", "8", "--seq-len", "64", "--lr", "3e-3",
            "--ckpt-every", "10", "--run-dir", str(run_dir)]
    for k, v in kw.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def _result(run_dir) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _close(a: dict, b: dict, tol: float = 2e-2) -> None:
    for x, y in zip(a["val_history"], b["val_history"], strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) < tol, (x, y)


@pytest.fixture(scope="module")
def one_gpu(bible_store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gpu") / "one"
    subprocess.run(_train(bible_store, run_dir), check=True, env=ENV, capture_output=True)
    return run_dir


def test_a_gpu_run_trains_in_bf16_compiled_by_default(one_gpu):
    r = _result(one_gpu)
    assert r["device"].startswith("cuda") and r["precision"] == "bf16-mixed" and r["compiled"]
    assert r["final_val_loss"] < r["val_history"][0]["val_loss"]


def test_a_killed_gpu_run_resumes(bible_store, one_gpu, tmp_path):
    killed = tmp_path / "killed"
    kill_once_checkpointed(_train(bible_store, killed), killed, "step-000000[2-9]0.ckpt", 300)
    out = subprocess.run(_train(bible_store, killed), check=True, env=ENV, capture_output=True, text=True)
    assert "resuming killed from step" in out.stdout + out.stderr
    _close(_result(one_gpu), _result(killed))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_ddp_ranks_on_two_gpus_match_one(bible_store, one_gpu, tmp_path):
    two = tmp_path / "two"
    subprocess.run(_train(bible_store, two, devices=2), check=True, env=ENV, capture_output=True)
    assert (_result(two)["world_size"], _result(two)["strategy"]) == (2, "ddp")
    _close(_result(one_gpu), _result(two))


def test_fsdp_on_one_gpu_compiles_its_blocks_and_matches_the_plain_run(bible_store, one_gpu, tmp_path):
    sharded = tmp_path / "fsdp"
    subprocess.run(_train(bible_store, sharded, strategy="fsdp"), check=True, env=ENV, capture_output=True)
    r = _result(sharded)
    assert (r["strategy"], r["compiled"], r["precision"]) == ("fsdp", True, "bf16-mixed")
    _close(_result(one_gpu), r)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_fsdp_ranks_on_two_gpus_match_one(bible_store, one_gpu, tmp_path):
    two = tmp_path / "two-fsdp"
    subprocess.run(_train(bible_store, two, devices=2, strategy="fsdp"), check=True, env=ENV, capture_output=True)
    assert (_result(two)["world_size"], _result(two)["strategy"]) == (2, "fsdp")
    _close(_result(one_gpu), _result(two))
