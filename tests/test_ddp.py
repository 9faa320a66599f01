"""One run on two processes: Lightning's DDP over gloo on CPU, ranks started by Lightning's
own launcher from ``dcsl train --devices 2``.

Tolerance, measured on this CPU (tiny-50k, 62 steps of 8 x 64 tokens): two ranks against one
process accumulating the same micro-batches differ by at most 1e-7 in every validation loss and
4e-6 in any final weight (the gradient sums meet in another order). The tests allow 1e-5 and
1e-4. A killed two-rank run resumes bit-identical to an uninterrupted one.
"""

import json
import subprocess

import pytest
import torch
from multirank import ENV, kill_once_checkpointed, result, train_args
from safetensors.torch import load_file

from pretrain.rundir import RunDir
from pretrain.spec import TrainSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_ranks(bible_store, tmp_path_factory):
    """An uninterrupted two-rank run."""
    run_dir = tmp_path_factory.mktemp("ddp") / "two"
    subprocess.run(train_args(bible_store, run_dir, devices=2), check=True, env=ENV, capture_output=True)
    return run_dir


def test_two_ranks_match_one_process_accumulating(bible_store, two_ranks, tmp_path):
    one = tmp_path / "one"
    subprocess.run(train_args(bible_store, one), check=True, env=ENV, capture_output=True)
    a, b = result(one), result(two_ranks)
    assert (b["world_size"], b["strategy"], a["world_size"]) == (2, "ddp", 1)
    assert not a["compiled"] and not b["compiled"]  # compile is on by default on CUDA only
    assert a["steps"] == b["steps"] and a["tokens_seen"] == b["tokens_seen"]
    assert [v["step"] for v in a["val_history"]] == [v["step"] for v in b["val_history"]]
    for x, y in zip(a["val_history"], b["val_history"], strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) < 1e-5
    assert abs(a["train_loss"] - b["train_loss"]) < 1e-5
    wa, wb = load_file(one / "model.safetensors"), load_file(two_ranks / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    # The world size is operational: both are the same run.
    spec = json.loads((one / "spec.json").read_text())
    assert json.loads((two_ranks / "spec.json").read_text())["id"] == spec["id"]
    assert TrainSpec.from_json({**spec, "devices": 2, "nodes": 2}).run_id == spec["id"]


def test_killed_two_rank_run_resumes_bit_identical_and_on_one_process(bible_store, two_ranks, tmp_path):
    """Resumed on two ranks it ends bit-identical. A DDP checkpoint is the whole model and
    optimizer state, and each rank's rows are cut from the one global batch, so the same
    checkpoint also resumes on one process and ends where the run would have."""
    import shutil

    killed, moved = tmp_path / "killed", tmp_path / "moved"
    step = kill_once_checkpointed(train_args(bible_store, killed, devices=2), killed, "step-0000000[8-9].ckpt")
    assert 0 < step < result(two_ranks)["steps"]
    shutil.copytree(killed, moved)
    out = subprocess.run(train_args(bible_store, killed, devices=2), check=True, env=ENV, capture_output=True, text=True)
    assert f"resuming killed from step {step}" in out.stdout + out.stderr
    ref, resumed = result(two_ranks), result(killed)
    assert resumed["val_history"] == ref["val_history"]
    wr, wk = load_file(two_ranks / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(wr[k], wk[k]) for k in wr)
    assert RunDir(killed).status()["attempts"] == 2

    out = subprocess.run(train_args(bible_store, moved), check=True, env=ENV, capture_output=True, text=True)
    assert f"resuming moved from step {step}" in out.stdout + out.stderr
    assert result(moved)["world_size"] == 1
    for x, y in zip(ref["val_history"], result(moved)["val_history"], strict=True):
        assert abs(x["val_loss"] - y["val_loss"]) < 1e-5


def test_batch_must_split_evenly_over_the_ranks(bible_store):
    base = dict(size="tiny-50k", store=str(bible_store.path), store_id=bible_store.store_id, tokens=16_000,
                batch_size=8)
    with pytest.raises(ValueError, match="batch_size 8 must be a multiple of the world size 3"):
        TrainSpec(**base, devices=3)
    with pytest.raises(ValueError, match="micro_batch_size 8 must divide the per-device batch 4"):
        TrainSpec(**base, devices=2, micro_batch_size=8)
    assert TrainSpec(**base, devices=2, nodes=2, micro_batch_size=1).local_batch_size == 2
