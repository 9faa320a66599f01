"""metrics.csv: a row every metrics_every steps and at the last, the exact columns, appended a
whole row at a time, continued without gaps or repeats by a resumed run, written by rank 0 alone,
and free of any effect on what is computed."""

import fcntl
import json
import os
import subprocess

import pytest
import torch
from multirank import ENV, kill_once_checkpointed, result, train_args
from safetensors.torch import load_file

from pretrain.lit import warmup_cosine
from pretrain.metrics import COLUMNS, HEADER, MetricsFile, format_row, keep_through, read_rows
from pretrain.rundir import RunDir
from pretrain.spec import DEFAULT_METRICS_EVERY, TrainSpec
from pretrain.train import train_run

QUIET = {"log": lambda _: None}


def spec_for(st, **kw):
    base = dict(size="tiny-50k", store=str(st.path), store_id=st.store_id, tokens=8_192, epochs=2, lr=3e-3,
                batch_size=8, seq_len=64, val_every=4)
    return TrainSpec(**{**base, **kw})


def test_the_file_has_the_exact_columns_and_a_row_every_n_steps_and_at_the_last(tmp_path, bible_store,
                                                                                  torch_one_thread):
    spec = spec_for(bible_store, metrics_every=7)
    res = train_run(spec, tmp_path / "r", **QUIET)
    text = (tmp_path / "r" / "metrics.csv").read_text()
    assert text.splitlines()[0] == "step,tokens,epoch,lr,train_loss,val_loss,tokens_per_s,grad_norm"
    rows = read_rows(tmp_path / "r" / "metrics.csv")
    total, per_epoch = res["steps"], res["steps_per_epoch"]
    # every 7 steps, every step it validates at (every 4: val_every), and the last
    validated = set(range(4, 31, 4))
    assert total == 30 and [r["step"] for r in rows] == sorted(set(range(7, 31, 7)) | validated | {30})
    assert RunDir(tmp_path / "r").status()["total_steps"] == total
    vals = {v["step"]: v["val_loss"] for v in res["val_history"]}  # every 4 steps and at the end
    warmup = 1  # ceil(0.01 x 30)
    for r in rows:
        assert r["tokens"] == r["step"] * 8 * 64 and r["epoch"] == r["step"] / per_epoch
        assert r["lr"] == 3e-3 * warmup_cosine(r["step"] - 1, total, warmup)  # the step's own lr
        assert r["val_loss"] == vals.get(r["step"])  # empty (None) where it did not validate
        assert r["tokens_per_s"] > 0 and 0 < r["grad_norm"] < 100
    assert rows[-1]["val_loss"] == res["final_val_loss"] and rows[1]["val_loss"] is None

    # train_loss is the mean over the steps since the previous row: rows at every step show them.
    every = train_run(spec_for(bible_store, metrics_every=1), tmp_path / "every", **QUIET)
    each = read_rows(tmp_path / "every" / "metrics.csv")
    assert [r["step"] for r in each] == list(range(1, 31))
    for previous, r in zip([{"step": 0}, *rows], rows, strict=False):
        since = [e["train_loss"] for e in each if previous["step"] < e["step"] <= r["step"]]
        assert r["train_loss"] == sum(since) / len(since)
        assert r["grad_norm"] == each[r["step"] - 1]["grad_norm"] and r["lr"] == each[r["step"] - 1]["lr"]
    # Metrics at every step or at the validations and the last alone: the same run, bit for bit.
    last_only = train_run(spec_for(bible_store, metrics_every=1000), tmp_path / "last", **QUIET)
    assert [r["step"] for r in read_rows(tmp_path / "last" / "metrics.csv")] == sorted(validated | {30})
    assert every["final_val_loss"] == last_only["final_val_loss"] == res["final_val_loss"]
    wa, wb = load_file(tmp_path / "every" / "model.safetensors"), load_file(tmp_path / "last" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_metrics_every_is_operational_and_positive(bible_store):
    assert TrainSpec.metrics_every == DEFAULT_METRICS_EVERY == 10
    a = spec_for(bible_store)
    assert spec_for(bible_store, metrics_every=3, loggers=["csv"], tracker_tags={"study": "s"}).run_id == a.run_id
    with pytest.raises(ValueError, match="metrics_every must be positive"):
        spec_for(bible_store, metrics_every=0)


def test_rows_are_whole_appends_and_a_resume_drops_what_comes_after_its_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    row = dict.fromkeys(COLUMNS, 0.5) | {"step": 1, "tokens": 512, "val_loss": None}
    f = MetricsFile(path)
    f.open(0)
    assert fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_APPEND
    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))
    for step in (1, 2, 3, 4):
        f.append({**row, "step": step})
    f.close()
    assert writes == [format_row({**row, "step": s}) for s in (1, 2, 3, 4)]  # one write per row
    assert writes[0] == b"1,512,0.5,0.5,0.5,,0.5,0.5\n"
    with open(path, "ab") as torn:
        torn.write(b"5,2560,0.5")  # as a disk that lost the end of a write would leave it
    keep_through(path, 4)
    assert [r["step"] for r in read_rows(path)] == [1, 2, 3, 4]
    keep_through(path, 2)  # resuming from the checkpoint at step 2
    assert path.read_bytes() == HEADER + b"".join(writes[:2])
    keep_through(path, 0)  # a fresh start
    assert path.read_bytes() == HEADER
    path.write_text("something else\n1,2\n")
    keep_through(path, 5)
    assert path.read_bytes() == HEADER


@pytest.mark.slow
def test_a_killed_run_resumes_the_same_file(tmp_path, bible_store):
    """SIGKILL mid-run (rows past the last checkpoint are written by then), resume: the file's
    rows are those of an uninterrupted run, every value but the throughput bit-identical."""
    flags = dict(tokens="24k", epochs=3, micro_batch_size=None, ckpt_every=5, metrics_every=2)
    ref_dir, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(train_args(bible_store, ref_dir, **flags), check=True, env=ENV, capture_output=True)
    step = kill_once_checkpointed(train_args(bible_store, killed, **flags), killed, "step-000000[2-9]?.ckpt")
    total = result(ref_dir)["steps"]
    assert 0 < step < total, "the kill must land mid-run"
    before = [r["step"] for r in read_rows(killed / "metrics.csv")]
    assert before[-1] >= step  # the killed attempt wrote up to (or past) its checkpoint
    out = subprocess.run(train_args(bible_store, killed, **flags), check=True, env=ENV, capture_output=True,
                         text=True)
    assert f"resuming killed from step {step}" in out.stdout + out.stderr
    ref, resumed = read_rows(ref_dir / "metrics.csv"), read_rows(killed / "metrics.csv")
    steps = [r["step"] for r in resumed]
    every_val = max(1, total // 10)  # val_every 0: about ten validations, each with its row
    expected = sorted(set(range(2, total + 1, 2)) | set(range(every_val, total + 1, every_val)) | {total})
    assert steps == [r["step"] for r in ref] == expected
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False))
    for a, b in zip(ref, resumed, strict=True):
        assert {k: v for k, v in a.items() if k != "tokens_per_s"} == {k: v for k, v in b.items() if k != "tokens_per_s"}
    assert json.loads((killed / "status.json").read_text())["total_steps"] == total


@pytest.mark.slow
def test_two_ranks_write_one_file_from_rank_0(tmp_path, bible_store):
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(train_args(bible_store, one, metrics_every=4), check=True, env=ENV, capture_output=True)
    subprocess.run(train_args(bible_store, two, metrics_every=4, devices=2), check=True, env=ENV, capture_output=True)
    a, b = read_rows(one / "metrics.csv"), read_rows(two / "metrics.csv")
    assert result(two)["world_size"] == 2
    validations = set(range(6, 63, 6))  # val_every 0 over 62 steps: every 6
    expected = sorted(set(range(4, 61, 4)) | validations | {62})
    assert [r["step"] for r in a] == [r["step"] for r in b] == expected  # each once
    for x, y in zip(a, b, strict=True):  # the gradient sums meet in another order (test_ddp)
        assert x["tokens"] == y["tokens"] and x["lr"] == y["lr"]
        assert abs(x["train_loss"] - y["train_loss"]) < 1e-5
        assert abs(x["grad_norm"] - y["grad_norm"]) < 1e-4 * x["grad_norm"]
