"""Checks that need CUDA GPUs: Lightning's FSDP does not train on CPU (dcsl refuses it there in
one line, see test_ddp.py), so its code paths are checked here, on a device machine.

    .venv/bin/pytest -q tests/test_gpu.py

With one GPU, FSDP runs at world size 1 (asked for by name): the wrapping, FSDP's own gradient
clipping, the full state dict gathered to rank 0 for checkpoints and final weights, and an
exact resume all run. With two or more GPUs, a two-rank FSDP run is also compared with one
device. Skipped entirely without CUDA.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_ddp import kill_once_checkpointed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA GPUs")]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _train(store, run_dir, **kw) -> list[str]:
    args = [sys.executable, "-m", "dcsl_cli", "train", "--store", str(store.path), "--size", "tiny-400k",
            "--tokens", "32k", "--epochs", "4", "--batch-size", "8", "--seq-len", "64", "--lr", "3e-3",
            "--ckpt-every", "10", "--precision", "32-true", "--compile", "false", "--run-dir", str(run_dir)]
    for k, v in kw.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def _result(run_dir) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _close(a: dict, b: dict, tol: float = 2e-3) -> None:
    # TF32 matmuls and atomics on GPU: not bit-exact between strategies, close in loss.
    for x, y in zip(a["val_history"], b["val_history"], strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) < tol, (x, y)


@pytest.fixture(scope="module")
def single(bible_store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gpu") / "single"
    subprocess.run(_train(bible_store, run_dir), check=True, env=ENV, capture_output=True)
    return run_dir


def test_fsdp_on_one_gpu_trains_like_a_single_device_and_exports_whole_weights(bible_store, single, tmp_path):
    fsdp = tmp_path / "fsdp"
    subprocess.run(_train(bible_store, fsdp, strategy="fsdp"), check=True, env=ENV, capture_output=True)
    assert _result(fsdp)["strategy"] == "fsdp"
    _close(_result(single), _result(fsdp))
    ws, wf = load_file(single / "model.safetensors"), load_file(fsdp / "model.safetensors")
    assert ws.keys() == wf.keys() and all(ws[k].shape == wf[k].shape for k in ws)


def test_a_killed_fsdp_run_resumes_from_its_full_state_checkpoint(bible_store, single, tmp_path):
    killed = tmp_path / "killed"
    kill_once_checkpointed(_train(bible_store, killed, strategy="fsdp"), killed, "step-000000[2-9]0.ckpt", 300)
    out = subprocess.run(_train(bible_store, killed, strategy="fsdp"), check=True, env=ENV,
                         capture_output=True, text=True)
    assert "resuming killed from step" in out.stdout + out.stderr
    _close(_result(single), _result(killed))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_rank_fsdp_matches_one_device(bible_store, single, tmp_path):
    two = tmp_path / "two"
    subprocess.run(_train(bible_store, two, strategy="fsdp", devices=2), check=True, env=ENV, capture_output=True)
    assert (_result(two)["world_size"], _result(two)["strategy"]) == (2, "fsdp")
    _close(_result(single), _result(two))
