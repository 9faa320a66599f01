import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pretrain.data import EpochSchedule, epoch_permutation, validation_batches
from pretrain.lit import warmup_cosine
from pretrain.rundir import RunDir
from pretrain.spec import TrainSpec
from pretrain.train import train_run

QUIET = {"log": lambda _: None}


def spec_for(st, **kw):
    base = dict(size="tiny-50k", store=str(st.path), store_id=st.store_id, tokens=8_192,
                epochs=2, lr=3e-3, batch_size=8, seq_len=64)
    base.update(kw)
    return TrainSpec(**base)


def test_epoch_order_is_a_pure_function_and_covers_every_sequence():
    a, b = epoch_permutation(100, 7, 3), epoch_permutation(100, 7, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, epoch_permutation(100, 7, 4))
    tokens = np.arange(1_000, dtype=np.uint16)
    sched = EpochSchedule(tokens, seq_len=9, batch_size=10, epochs=2, data_seed=0)
    assert sched.n_sequences == 111 and sched.steps_per_epoch == 11 and sched.total_steps == 22
    rows = np.concatenate([sched.batch(s) for s in range(11)])
    assert len({int(r[0]) for r in rows}) == 110  # no sequence twice in an epoch
    assert all(np.array_equal(r, np.arange(r[0], r[0] + 10)) for r in rows)  # inputs + shifted targets
    fresh = EpochSchedule(tokens, seq_len=9, batch_size=10, epochs=2, data_seed=0)
    assert np.array_equal(fresh.batch(15), sched.batch(15))  # a seek, not a replay


def test_validation_batches_score_every_token_once():
    tokens = np.arange(103)
    rows = list(validation_batches(tokens, seq_len=10, batch_size=4))
    assert sum(r.shape[0] * (r.shape[1] - 1) for r in rows) == 102


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:], strict=False))
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0)


def test_a_run_writes_its_directory(tmp_path, bible_store):
    spec = spec_for(bible_store)
    result = train_run(spec, tmp_path / spec.dirname, **QUIET)
    run = RunDir(tmp_path / spec.dirname)
    assert run.status()["state"] == "succeeded" and run.status()["attempts"] == 1
    assert run.spec()["id"] == spec.run_id
    assert result["steps"] == 2 * (8_191 // 64 // 8)
    assert result["tokens_seen"] == result["steps"] * 8 * 64
    assert np.isfinite(result["final_val_loss"]) and result["final_val_loss"] < np.log(512)
    assert result["best_val_loss"] <= result["final_val_loss"]
    assert (run.path / "model.safetensors").is_file()
    # Running it again is a no-op that returns the same result.
    assert train_run(spec, run.path, **QUIET) == result
    assert run.status()["attempts"] == 1


def test_run_id_ignores_operational_fields(bible_store):
    a = spec_for(bible_store)
    assert a.run_id == spec_for(bible_store, micro_batch_size=2, val_every=3, store="/elsewhere").run_id
    assert a.run_id != spec_for(bible_store, lr=1e-3).run_id


def test_micro_batches_accumulate_to_the_global_batch(tmp_path, bible_store):
    # One step per epoch: accumulation must still happen even though the "epoch" is
    # shorter than any accumulation window Lightning would use.
    full = spec_for(bible_store, tokens=64 * 8 + 1, epochs=3)
    micro = spec_for(bible_store, tokens=64 * 8 + 1, epochs=3, micro_batch_size=2)
    a = train_run(full, tmp_path / "a", **QUIET)
    b = train_run(micro, tmp_path / "b", **QUIET)
    assert a["steps"] == b["steps"] == 3
    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    # Summation order differs between one batch and four micro-batches: measured 3.2e-6 at most
    # on an AVX-512 Xeon, 1e-6 on an AVX2 EPYC; 2e-5 holds on both with room to spare.
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=2e-5)
    assert a["final_val_loss"] == pytest.approx(b["final_val_loss"], abs=1e-5)


def test_non_finite_loss_fails_the_run(tmp_path, bible_store):
    spec = spec_for(bible_store, lr=1e30, weight_decay=0.0)
    with pytest.raises(Exception, match="diverged at step"):
        train_run(spec, tmp_path / "nan", **QUIET)
    status = RunDir(tmp_path / "nan").status()
    assert status["state"] == "failed" and "diverged at step" in status["error"]
    assert "Traceback" in status["traceback"]


def _train_cmd(store, run_dir, **kw):
    args = [sys.executable, "-m", "dcsl_cli", "train", "--store", str(store.path), "--size", "tiny-200k",
            "--tokens", "24k", "--epochs", "3", "--batch-size", "8", "--seq-len", "64", "--lr", "3e-3",
            "--ckpt-every", "3", "--threads", "1", "--run-dir", str(run_dir)]
    for k, v in kw.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_identical(tmp_path, bible_store):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref_dir, killed_dir = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(bible_store, ref_dir), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(_train_cmd(bible_store, killed_dir), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed_dir / "ckpt").glob("step-0000001[2-9].ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kill_step = int(max((killed_dir / "ckpt").glob("step-*.ckpt")).name[5:13])
    total_steps = json.loads((ref_dir / "result.json").read_text())["steps"]
    assert 0 < kill_step < total_steps, "the kill must land mid-run"
    assert RunDir(killed_dir).status()["state"] == "running"  # died without a word

    out = subprocess.run(_train_cmd(bible_store, killed_dir), check=True, env=env, capture_output=True, text=True)
    assert f"resuming killed from step {kill_step}" in out.stdout + out.stderr
    ref, resumed = (json.loads((d / "result.json").read_text()) for d in (ref_dir, killed_dir))
    assert resumed["final_val_loss"] == ref["final_val_loss"]
    assert resumed["val_history"] == ref["val_history"]
    wr, wk = load_file(ref_dir / "model.safetensors"), load_file(killed_dir / "model.safetensors")
    assert all(torch.equal(wr[k], wk[k]) for k in wr)
    assert RunDir(killed_dir).status()["attempts"] == 2


def test_cli_bad_input_is_one_line(tmp_path, bible_store):
    out = subprocess.run(_train_cmd(bible_store, tmp_path / "r", tokens="5M"), capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"dcsl train: budget of 5,000,000 tokens exceeds the 60,000 training tokens in {bible_store.path}"
    ]
    assert not (tmp_path / "r").exists()  # refused before any run directory was made


def test_cli_runtime_failure_is_one_line_and_exit_1(tmp_path, bible_store):
    out = subprocess.run(_train_cmd(bible_store, tmp_path / "r", lr="1e30", epochs=1),
                         capture_output=True, text=True)
    assert out.returncode == 1
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("dcsl train: NonFiniteLossError: diverged at step") and "lower the lr" in line
    assert "Traceback" not in out.stderr
    status = RunDir(tmp_path / "r").status()
    assert "Traceback" in status["traceback"]  # kept with the run
    assert status["diverged"] is True  # what a tuning search reads, never the error's text


@pytest.mark.parametrize("flag, value, message", [
    ("lr", "nan", "lr must be a positive finite number"),
    ("precision", "fp7", "precision must be one of"),
])
def test_cli_bad_values_fail_before_a_directory(tmp_path, bible_store, flag, value, message):
    out = subprocess.run(_train_cmd(bible_store, tmp_path / "r", **{flag: value}),
                         capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path, bible_store):
    from pretrain.train import latest_checkpoint

    spec = spec_for(bible_store, ckpt_every=2, keep_checkpoints=True)
    ref = train_run(spec, tmp_path / "ref", **QUIET)
    kept = sorted((tmp_path / "ref" / "ckpt").glob("step-*.ckpt"))
    assert len(kept) == 2  # the last two are kept
    run = tmp_path / "again"
    (run / "ckpt").mkdir(parents=True)
    older, newest = (run / "ckpt" / p.name for p in kept)
    older.write_bytes(kept[0].read_bytes())
    newest.write_bytes(kept[1].read_bytes()[:-100])  # lost its end
    lines = []
    assert latest_checkpoint(run / "ckpt", lines.append) == (older, int(older.name[5:13]))
    assert "is unreadable" in lines[0] and len(lines) == 1 and not newest.exists()
    again = train_run(spec, run, **QUIET)
    assert again["final_val_loss"] == ref["final_val_loss"]


def test_a_finished_run_drops_its_optimizer_state(tmp_path, bible_store):
    spec = spec_for(bible_store, ckpt_every=2)
    train_run(spec, tmp_path / "r", **QUIET)
    assert not list((tmp_path / "r" / "ckpt").glob("step-*")) and (tmp_path / "r" / "model.safetensors").is_file()


def test_every_checkpoint_load_is_weights_only(repo_root):
    """A checkpoint is data: every torch.load and Lightning fit that reads one says so."""
    import re

    sources = [p for folder in ("pretrain", "eval", "distill", "sweeps", "scaling")
               for p in (repo_root / folder).rglob("*.py")]
    calls = [(p, m.group(0)) for p in sources
             for m in re.finditer(r"(torch\.load|trainer\.fit)\((?:[^()]|\([^()]*\))*\)", p.read_text())]
    assert any("trainer.fit" in c for _, c in calls)
    for path, call in calls:
        assert "weights_only=True" in call, f"{path}: {call}"


def test_train_spec_reruns_a_run_exactly(tmp_path, bible_store, capsys):
    """dcsl train --spec RUN/spec.json: the same run id and result as the run it came from,
    whatever the command's own defaults (a sweep's batch is not dcsl train's); a flag that
    would change the run is refused before anything trains."""
    import dcsl_cli

    def dcsl(*args) -> int:
        with pytest.raises(SystemExit) as stop:
            dcsl_cli.main(["train", *map(str, args)])
        return stop.value.code

    spec = spec_for(bible_store, tokens=4_096, batch_size=4, seq_len=32, lr=1e-2, weight_decay=0.4)
    first = train_run(spec, tmp_path / "first", **QUIET)
    assert dcsl("--spec", tmp_path / "first" / "spec.json", "--run-dir", tmp_path / "again", "--threads", 1) == 0
    again = RunDir(tmp_path / "again")
    assert again.spec()["id"] == spec.run_id and again.spec()["threads"] == 1
    assert json.loads((again.path / "result.json").read_text())["final_val_loss"] == first["final_val_loss"]
    assert f"final validation loss {first['final_val_loss']:.4f}" in capsys.readouterr().out
    assert dcsl("--spec", tmp_path / "first", "--run-dir", tmp_path / "again") == 0  # RUN is enough

    assert dcsl("--spec", tmp_path / "first", "--run-dir", tmp_path / "other", "--lr", "3e-3") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"dcsl train: --spec reruns {tmp_path / 'first' / 'spec.json'} exactly; --lr would make another run "
        "(train it without --spec)"]
    assert not (tmp_path / "other").exists()
    (tmp_path / "eval.json").write_text(json.dumps({"kind": "ensemble", "id": "x"}))
    assert dcsl("--spec", tmp_path / "eval.json") == 2
    assert "its kind is 'ensemble', not a training run" in capsys.readouterr().err
