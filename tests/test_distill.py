import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import train_seeds

from distill.generate import batch_generator, run_generate, sample_sequences
from distill.kd import KDModule
from distill.kinds import student_rows as table_rows
from distill.mixture import MixtureSchedule, mixture_steps
from distill.spec import DistillSpec, GenerateSpec
from distill.student import run_distill
from pretrain.data import EpochSchedule
from pretrain.rundir import RunDir
from pretrain.store import TokenStore
from pretrain.tokenizer import sha256_file

QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, bible_store):
    """Two tiny trained runs, seeds 0 and 1: an ensemble teacher, or one for self-distillation."""
    return train_seeds(tmp_path_factory.mktemp("teachers"), bible_store, 2)


def generate_spec(teachers, store, **kw) -> GenerateSpec:
    base = dict(teacher_ids=tuple(t.run_id for t in teachers), teacher_dirs=tuple(str(t.path) for t in teachers),
                store=str(store.path), store_id=store.store_id, tokens=2_048, seq_len=64, batch_size=8)
    base.update(kw)
    return GenerateSpec(**base)


def student_spec(teachers, store, **kw) -> DistillSpec:
    base = dict(size="tiny-50k", store=str(store.path), store_id=store.store_id, tokens=8_192, epochs=1,
                lr=1e-2, batch_size=8, seq_len=64, init_seed=5, data_seed=5,
                teacher_ids=tuple(t.run_id for t in teachers), teacher_dirs=tuple(str(t.path) for t in teachers))
    base.update(kw)
    return DistillSpec(**base)


@pytest.mark.parametrize("k", [1, 2])
def test_sampling_is_seeded_and_the_kv_cache_changes_nothing(teachers, bible_store, k):
    models = [t.load_model() for t in teachers[:k]]
    eos = bible_store.eos_id

    def draw(seed, use_cache=True):
        return sample_sequences(models, 4, 48, eos, batch_generator(seed, 0), use_cache=use_cache)

    cached = draw(0)
    assert cached.shape == (4, 49) and (cached[:, 0] == eos).all()
    assert torch.equal(cached, draw(0))
    assert torch.equal(cached, draw(0, use_cache=False))
    assert not torch.equal(cached, draw(1))


def test_generation_resumes_to_the_same_store(tmp_path, teachers, bible_store):
    spec = generate_spec(teachers, bible_store)  # 32 sequences in 4 batches, logit-mean of K = 2
    whole = run_generate(spec, tmp_path / "whole", progress_seconds=0, **QUIET)

    lines = []

    def interrupt_after_two_batches(line):
        lines.append(line)
        if len(lines) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_generate(spec, tmp_path / "killed", log=interrupt_after_two_batches, progress_seconds=0)
    assert RunDir(tmp_path / "killed").status()["state"] == "pending"
    assert not (tmp_path / "killed" / "store" / "manifest.json").exists()  # half a store does not open
    with open(tmp_path / "killed" / "store" / "train.bin", "ab") as f:
        f.write(b"\x07" * 100)  # a torn write past the last recorded batch is dropped on resume
    lines.clear()
    resumed = run_generate(spec, tmp_path / "killed", log=lines.append, progress_seconds=0)
    assert lines[0] == "resuming killed at batch 2/4" and len(lines) == 3
    assert resumed["store_id"] == whole["store_id"]  # same bytes, so the same content id

    store = TokenStore(whole["store"], verify_checksums=True)
    rows = np.asarray(store.train_tokens()).reshape(32, 65)
    assert (rows[:, 0] == bible_store.eos_id).all() and whole["sampled_tokens"] == 32 * 64
    assert np.array_equal(store.val_tokens(), bible_store.val_tokens())
    assert store.tokenizer_sha256 == bible_store.tokenizer_sha256
    teacher = store.manifest["teacher"]
    assert teacher["run_ids"] == list(spec.teacher_ids) and teacher["rule"] == "logit-mean"
    assert teacher["weights_sha256"] == [t.weights_sha256 for t in teachers]
    assert (teacher["temperature"], teacher["seed"], teacher["K"]) == (1.0, 0, 2)
    other_seed = run_generate(generate_spec(teachers, bible_store, seed=1), tmp_path / "s1", **QUIET)
    assert other_seed["store_id"] != whole["store_id"]


def test_mixture_sees_real_data_epochs_times(tmp_path):
    real = np.arange(1_000, dtype=np.uint16)  # 111 sequences of 9: 11 steps of 10 per epoch
    synthetic = np.arange(10_000, 10_500, dtype=np.uint16)
    sched = MixtureSchedule(real, synthetic, seq_len=9, batch_size=10, epochs=2, synthetic_weight=0.75,
                            data_seed=3)
    assert sched.real_steps == 22 and sched.total_steps == 88 == mixture_steps(22, 0.75)
    batches = [sched.batch(s) for s in range(sched.total_steps)]
    rows = np.concatenate(batches)
    is_real = rows[:, 0] < 10_000
    assert is_real.sum() == sched.real_rows == 220 and sched.synthetic_rows == 660
    assert {int(b[:, 0].__lt__(10_000).sum()) for b in batches} == {2, 3}  # (1 - w) x 10 = 2.5 per batch
    # Real rows come in exactly the order a plain run with the same data seed sees them.
    plain = np.concatenate([EpochSchedule(real, 9, 10, 2, 3).batch(s) for s in range(22)])
    assert np.array_equal(rows[is_real], plain)
    assert all(np.array_equal(r, np.arange(r[0], r[0] + 10)) for r in rows)  # inputs + shifted targets
    fresh = MixtureSchedule(real, synthetic, 9, 10, 2, 0.75, 3)
    assert np.array_equal(fresh.batch(57), batches[57])  # a seek, not a replay
    assert [sched.epoch_of(s) for s in (0, 43, 44, 87)] == [0, 0, 1, 1]
    assert sched.synthetic_epochs == pytest.approx(660 / 55)
    assert mixture_steps(30, 0.9) == 300 and mixture_steps(30, 0.0) == 30
    with pytest.raises(ValueError, match="synthetic weight must be in"):
        mixture_steps(30, 1.0)


def test_self_distilled_student_trains_on_the_mixture(tmp_path, teachers, bible_store):
    gen = run_generate(generate_spec(teachers[:1], bible_store, tokens=4_096), tmp_path / "gen", **QUIET)
    syn = TokenStore(gen["store"])
    spec = student_spec(teachers[:1], bible_store, synthetic_store=str(syn.path),
                        synthetic_store_id=syn.store_id, synthetic_weight=0.5)
    result = run_distill(spec, tmp_path / spec.dirname, **QUIET)
    real_steps = 8_191 // 64 // 8
    assert result["steps"] == 2 * real_steps == mixture_steps(real_steps, 0.5)
    assert result["real_rows"] == result["synthetic_rows"] == real_steps * 8
    assert result["kind"] == "distill" and np.isfinite(result["final_val_loss"])
    # Self-distillation: the teacher is the single model, so no ensemble gain to retain.
    assert result["teacher_loss"] == result["single_loss"] and result["retained_share"] is None
    member = json.loads((teachers[0].path / "result.json").read_text())["final_val_loss"]
    assert result["single_loss"] == pytest.approx(member, rel=1e-5)
    run = RunDir(tmp_path / spec.dirname)
    assert run.spec()["kind"] == "distill" and run_distill(spec, run.path, **QUIET) == result
    (row,) = table_rows(run.spec(), run.result())
    assert row["kind"] == "distill" and row["synthetic_weight"] == 0.5 and row["K"] == 1
    assert (row["val_loss"], row["teacher_loss"]) == (result["final_val_loss"], result["teacher_loss"])
    assert np.isnan(row["retained_share"])


def test_a_synthetic_store_with_another_tokenizer_is_refused(tmp_path, teachers, bible_store):
    gen = run_generate(generate_spec(teachers[:1], bible_store, tokens=512), tmp_path / "gen", **QUIET)
    foreign = tmp_path / "foreign"
    shutil.copytree(gen["store"], foreign)
    with open(foreign / "tokenizer.json", "a") as f:
        f.write("\n")
    manifest = json.loads((foreign / "manifest.json").read_text())
    manifest["tokenizer"]["sha256"] = sha256_file(foreign / "tokenizer.json")
    (foreign / "manifest.json").write_text(json.dumps(manifest))
    syn = TokenStore(foreign)
    spec = student_spec(teachers[:1], bible_store, synthetic_store=str(foreign),
                        synthetic_store_id=syn.store_id, synthetic_weight=0.75)
    with pytest.raises(ValueError, match=f"synthetic store {foreign} uses tokenizer .* but store"):
        run_distill(spec, tmp_path / "student", **QUIET)
    assert not (tmp_path / "student").exists()


def test_token_level_loss_is_zero_against_itself(teachers, bible_store):
    spec = student_spec(teachers[:1], bible_store, mode="token", kd_temperature=2.0)
    module = KDModule(spec, bible_store.vocab_size, 10, 10, [teachers[0].load_model()])
    module.model.load_state_dict(teachers[0].load_model().state_dict())
    rows = torch.from_numpy(np.asarray(bible_store.val_tokens()[:4 * 65], dtype=np.int64).reshape(4, 65))
    loss, n = module.step_loss(rows)
    assert n == 4 * 64 and abs(loss.item()) < 1e-3
    module.model.head.weight.data.mul_(0.5)  # a different student pays a positive KL
    assert module.step_loss(rows)[0].item() > 1.0


def test_token_level_student_reports_like_a_sequence_one(tmp_path, teachers, bible_store):
    spec = student_spec(teachers, bible_store, mode="token", kd_temperature=2.0, kd_weight=0.5, tokens=4_096)
    result = run_distill(spec, tmp_path / spec.dirname, **QUIET)
    assert result["steps"] == 4_095 // 64 // 8 and result["synthetic_rows"] == 0
    assert (result["mode"], result["K"], result["kd_temperature"]) == ("token", 2, 2.0)
    gain = result["single_loss"] - result["teacher_loss"]
    expected = (result["single_loss"] - result["final_val_loss"]) / gain if gain > 0 else None
    assert result["retained_share"] == (pytest.approx(expected) if expected is not None else None)
    with pytest.raises(ValueError, match="token-level student trains on real data only"):
        student_spec(teachers, bible_store, mode="token", synthetic_weight=0.5)


def test_cli_generate_smoke(tmp_path, teachers):
    cmd = [sys.executable, "-m", "dcsl_cli", "distill", "generate", "--teachers", str(teachers[0].path),
           "--tokens", "256", "--seq-len", "32", "--batch-size", "4", "--run-dir", str(tmp_path / "g")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "256 sampled tokens in 8 sequences" in out.stdout
    assert TokenStore(tmp_path / "g" / "store").manifest["teacher"]["seq_len"] == 32
    bad = subprocess.run(cmd[:-2] + ["--seq-len", "65", "--run-dir", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "dcsl distill: seq_len 65 exceeds the teachers' training seq_len 64"]


def test_specs_round_trip_and_ids_ignore_paths(teachers, bible_store):
    student = student_spec(teachers, bible_store, mode="token")
    assert DistillSpec.from_json(json.loads(json.dumps(student.to_json()))) == student
    assert dataclasses.replace(student, teacher_dirs=("/a", "/b"), store="/x").run_id == student.run_id
    assert dataclasses.replace(student, kd_temperature=2.0).run_id != student.run_id
    assert student.readable_name().startswith("distill-tok-K2-tiny-50k-D8.19k-ep1-T1-")
    gen = generate_spec(teachers, bible_store)
    assert GenerateSpec.from_json(json.loads(json.dumps(gen.to_json()))) == gen
    assert dataclasses.replace(gen, teacher_dirs=("/a", "/b"), device="cuda").run_id == gen.run_id
    assert dataclasses.replace(gen, seed=1).run_id != gen.run_id
    with pytest.raises(ValueError, match="temperature must be positive"):
        generate_spec(teachers, bible_store, temperature=0.0)
    with pytest.raises(ValueError, match="kd_temperature and kd_weight apply to token-level"):
        student_spec(teachers, bible_store, kd_temperature=2.0)  # a sequence-level student


@pytest.mark.parametrize("rule, kd_weight", [("logit-mean", 0.5), ("prob-mean", 1.0)])
def test_sliced_token_level_loss_equals_the_plain_one_with_its_gradients(teachers, bible_store, monkeypatch,
                                                                         rule, kd_weight):
    """Above CHUNK_LOGITS the student's and the teachers' heads run a slice of tokens at a time:
    the same loss and gradients as the whole logits, without ever holding them."""
    from pretrain import loss as loss_module

    spec = student_spec(teachers, bible_store, mode="token", kd_temperature=2.0, kd_weight=kd_weight, rule=rule)
    module = KDModule(spec, bible_store.vocab_size, 10, 10, [t.load_model() for t in teachers])
    rows = torch.from_numpy(np.asarray(bible_store.val_tokens()[:4 * 65], dtype=np.int64).reshape(4, 65))

    def loss_and_grads():
        module.model.zero_grad()
        loss, _ = module.step_loss(rows)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in module.model.named_parameters()}

    plain, plain_grads = loss_and_grads()
    monkeypatch.setattr(loss_module, "CHUNK_LOGITS", 37 * bible_store.vocab_size)  # slices of 37 tokens
    sliced, sliced_grads = loss_and_grads()
    assert sliced == pytest.approx(plain, rel=1e-5)
    for name, grad in plain_grads.items():
        assert torch.allclose(sliced_grads[name], grad, rtol=1e-4, atol=1e-6), name


def test_student_command_builds_the_spec_a_sweep_would(tmp_path, teachers, bible_store, capsys):
    """dcsl distill student's flags come from DistillSpec by the rule dcsl train uses: token
    counts read as '4k', sweep-only fields (custom sizes, trackers' tags) have no flag, and the
    spec it trains is the one built in code."""
    import dcsl_cli
    from dcsl_cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["distill"]
    student = next(a for a in sub._actions if a.dest == "distill_command").choices["student"]
    flags = {f for a in student._actions for f in a.option_strings}
    assert not {"--custom-sizes", "--loggers", "--tracker-tags", "--store-id", "--init-id"} & flags
    with pytest.raises(SystemExit) as stop:
        dcsl_cli.main(["distill", "student", "--mode", "token", "--teachers", str(teachers[0].path),
                       "--store", str(bible_store.path), "--size", "tiny-50k", "--tokens", "4k",
                       "--batch-size", "8", "--seq-len", "64", "--lr", "1e-2", "--init-seed", "5",
                       "--data-seed", "5", "--threads", "1", "--run-dir", str(tmp_path / "s")])
    assert stop.value.code == 0, capsys.readouterr().err
    expected = student_spec(teachers[:1], bible_store, mode="token", tokens=4_000, threads=1)
    assert RunDir(tmp_path / "s").spec()["id"] == expected.run_id
