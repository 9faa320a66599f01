import dataclasses
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import train_seeds

from eval.ensemble import (
    PeakMemory,
    check_members,
    ensemble_losses,
    rss_tracks_live_memory,
    run_ensemble,
)
from eval.kinds import EnsembleEvalSpec
from eval.kinds import ensemble_rows as table_rows
from pretrain.load import TrainedRun, open_run
from pretrain.rundir import RunDir
from pretrain.store import TokenStore
from pretrain.tokenizer import sha256_file

QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def members(tmp_path_factory, bible_store) -> list[TrainedRun]:
    """Four tiny members: same recipe, seeds 0..3 (init and data order)."""
    return train_seeds(tmp_path_factory.mktemp("members"), bible_store, 4)


def ensemble_spec(members, store, **kw) -> EnsembleEvalSpec:
    base = dict(size=members[0].spec.size, member_ids=tuple(m.run_id for m in members),
                member_dirs=tuple(str(m.path) for m in members), store=str(store.path),
                store_id=store.store_id, seq_len=64)
    base.update(kw)
    return EnsembleEvalSpec(**base)


def test_losses_match_a_direct_computation(members, bible_store):
    tokens = np.asarray(bible_store.val_tokens()[:300])  # 4 full rows of 64 and a 43-token tail
    got = ensemble_losses(members[:3], tokens, 64, batch_size=3, chunk_sequences=2)
    rows = [torch.from_numpy(tokens[: 4 * 64 + 1].astype(np.int64)).unfold(0, 65, 64),
            torch.from_numpy(tokens[256:].astype(np.int64))[None]]
    targets = torch.cat([r[:, 1:].flatten() for r in rows])
    with torch.no_grad():
        logits = torch.stack([torch.cat([m.load_model()(r[:, :-1]).flatten(0, 1) for r in rows])
                              for m in members[:3]])  # (K, tokens, vocab): fine for 299 tokens
    assert got.tokens == len(targets) == 299 and got.loads == 3 * 3  # three chunks, members reloaded
    kept = ensemble_losses(members[:3], tokens, 64, batch_size=3, chunk_sequences=2, keep_members=True)
    assert kept.loads == 3 and kept.nll == got.nll
    for k in range(1, 4):
        logit_mean = torch.log_softmax(logits[:k].mean(0), -1)
        prob_mean = torch.logsumexp(torch.log_softmax(logits[:k], -1), 0) - math.log(k)
        for rule, logp in (("logit-mean", logit_mean), ("prob-mean", prob_mean)):
            direct = -logp.gather(-1, targets[:, None]).mean().item()
            assert got.losses(rule)[k - 1] == pytest.approx(direct, rel=1e-5)
        alone = torch.nn.functional.cross_entropy(logits[k - 1], targets).item()
        assert got.member_losses()[k - 1] == pytest.approx(alone, rel=1e-5)


def test_a_run_scores_every_nested_ensemble(tmp_path, members, bible_store):
    spec = ensemble_spec(members[:3], bible_store, rules=("prob-mean", "logit-mean"))
    assert spec.rules == ("logit-mean", "prob-mean")  # canonical order: one run id for both spellings
    result = run_ensemble(spec, tmp_path / spec.dirname, **QUIET)
    run = RunDir(tmp_path / spec.dirname)
    assert run.status()["state"] == "succeeded" and run.spec()["id"] == spec.run_id
    finals = [json.loads((m.path / "result.json").read_text())["final_val_loss"] for m in members[:3]]
    # K = 1 is member 0 scored exactly as training validated it, under either rule.
    for rule in spec.rules:
        assert result["losses"][rule][0] == pytest.approx(finals[0], rel=1e-5)
    assert result["member_losses"] == pytest.approx(finals, rel=1e-5)
    for k in range(1, 4):  # prob-mean is never worse than the mean member (Jensen, per token)
        assert result["losses"]["prob-mean"][k - 1] <= np.mean(result["member_losses"][:k]) * (1 + 1e-6)
    assert result["losses"]["logit-mean"][2] < result["losses"]["logit-mean"][0]
    assert result["val_tokens"] == bible_store.val_size - 1
    assert result["member_recipe"]["uniform"] and result["member_recipe"]["seeds"] == [[0, 0], [1, 1], [2, 2]]
    assert [m["run_id"] for m in result["members"]] == list(spec.member_ids)
    # Skip-completed: a second call returns the stored result without running.
    assert run_ensemble(spec, run.path, **QUIET) == result and run.status()["attempts"] == 1
    rows = table_rows(run.spec(), run.result())
    assert [(r["rule"], r["K"]) for r in rows] == [(r, k) for r in spec.rules for k in (1, 2, 3)]
    assert rows[4] | {"val_loss": 0} == {
        "kind": "ensemble", "size": "tiny-50k", "n_params": result["n_params"],
        "n_params_non_embedding": result["n_params_non_embedding"], "budget_tokens": 8_192,
        "epochs": 1, "lr": 1e-2, "weight_decay": 0.1, "seed": 0, "K": 2, "rule": "prob-mean",
        "val_loss": 0, "best_val_loss": result["losses"]["prob-mean"][1]}


def test_memory_is_flat_in_k(members, bible_store):
    assert rss_tracks_live_memory()  # else glibc heap fragmentation, not live memory, moves RSS
    tokens = bible_store.val_tokens()
    chunk = 200  # every full row of validation in one chunk: one member's logits are 16 MB
    logits_bytes = (len(tokens) - 1) // 64 * 64 * bible_store.vocab_size * 4
    peaks, buffers = {1: 0, 2: 0, 4: 0}, {}
    for _ in range(3):  # max of three: a sampler thread descheduled past a transient can miss it
        for k in peaks:
            with PeakMemory("cpu") as mem:
                ev = ensemble_losses(members[:k], tokens, 64, batch_size=32, chunk_sequences=chunk)
            peaks[k], buffers[k] = max(peaks[k], mem.peak_bytes), ev.buffer_bytes
    assert buffers[1] == buffers[2] == buffers[4] == 3 * logits_bytes  # logits + one buffer per rule
    # Holding every member's logits would add 16 MB per member. From K = 2 on the peak is
    # the same; K = 1 lacks the one transient of combining (prob-mean's log-add-exp).
    assert peaks[4] - peaks[2] < logits_bytes / 2, (peaks, logits_bytes)
    assert peaks[4] - peaks[1] < 1.5 * logits_bytes, (peaks, logits_bytes)


def _store_with_other_tokenizer(store: TokenStore, out) -> TokenStore:
    shutil.copytree(store.path, out)
    with open(out / "tokenizer.json", "a") as f:
        f.write("\n")  # same JSON, another file hash: a different tokenizer as far as dcsl can tell
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tokenizer"]["sha256"] = sha256_file(out / "tokenizer.json")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return TokenStore(out)


def test_mismatched_members_are_refused(tmp_path, members, bible_store):
    bigger = dataclasses.replace(members[1], spec=dataclasses.replace(members[1].spec, size="tiny-100k"))
    with pytest.raises(ValueError, match=r"member 1 \(.*\) is size tiny-100k, but member 0 .* is tiny-50k"):
        check_members([members[0], bigger])
    other = _store_with_other_tokenizer(bible_store, tmp_path / "other")
    foreign = dataclasses.replace(members[1], store=other)
    with pytest.raises(ValueError, match="member 1 .* uses tokenizer"):
        check_members([members[0], foreign])
    with pytest.raises(ValueError, match="member 0 .* uses tokenizer"):
        check_members(members[:2], other)
    with pytest.raises(ValueError, match="repeat a run"):
        ensemble_spec([members[0], members[0]], bible_store)
    swapped = dataclasses.replace(ensemble_spec(members[:2], bible_store),
                                  member_dirs=(str(members[1].path), str(members[0].path)))
    with pytest.raises(ValueError, match="member 0 directory .* holds run .* but the spec names"):
        run_ensemble(swapped, tmp_path / "swapped", **QUIET)
    assert not (tmp_path / "swapped").exists()  # refused before a run directory was made


def test_a_run_whose_store_was_replaced_is_refused(tmp_path, members):
    moved = tmp_path / "run"
    shutil.copytree(members[0].path, moved)
    spec = json.loads((moved / "spec.json").read_text())
    (moved / "spec.json").write_text(json.dumps({**spec, "store_id": "0123456789ab"}))
    with pytest.raises(ValueError, match=r"trained on store 0123456789ab, but .* now holds store"):
        open_run(moved)


def test_cli_prints_the_k_table(tmp_path, members):
    cmd = [sys.executable, "-m", "dcsl_cli", "ensemble", "eval", "--members", str(members[0].path),
           str(members[1].path), "--rules", "logit-mean", "--run-dir", str(tmp_path / "ens")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[1].split() == ["K", "logit-mean"] and [ln.split()[0] for ln in lines[2:]] == ["1", "2"]
    assert json.loads((tmp_path / "ens" / "result.json").read_text())["rules"] == ["logit-mean"]
    bad = subprocess.run(cmd[:6] + [str(tmp_path / "nope"), "--run-dir", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"dcsl ensemble: {tmp_path / 'nope'} is not a run directory (no spec.json)"]


def test_spec_id_is_the_members_and_rules_not_the_paths(members, bible_store):
    spec = ensemble_spec(members[:2], bible_store)
    assert EnsembleEvalSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    moved = dataclasses.replace(spec, member_dirs=("/a", "/b"), store="/s", buffer_mb=8, keep_members=True)
    assert moved.run_id == spec.run_id
    assert ensemble_spec(members[1::-1], bible_store).run_id != spec.run_id  # order is semantic
    assert dataclasses.replace(spec, rules=("logit-mean",)).run_id != spec.run_id
    with pytest.raises(ValueError, match="unknown ensemble rule"):
        dataclasses.replace(spec, rules=("median",))


def test_uniform_soup_losses_are_the_averaged_models_own(members, bible_store):
    from pretrain.lit import validation_loss

    tokens = np.asarray(bible_store.val_tokens()[:300])
    got = ensemble_losses(members[:3], tokens, 64, rules=("logit-mean", "uniform-soup"), batch_size=3,
                          chunk_sequences=2)
    soup = got.losses("uniform-soup")
    assert soup[0] == pytest.approx(got.member_losses()[0], rel=1e-6)  # a soup of one is the member
    model = members[0].load_model()
    w0, w1 = members[0].load_model().weights(), members[1].load_model().weights()
    model.load_weights({name: (w0[name] + w1[name]) / 2 for name in w0})
    assert soup[1] == pytest.approx(validation_loss(model, tokens, 64, 3, torch.device("cpu")), rel=1e-5)
    # Members from different random inits share no basin: their soup is far worse than their
    # ensemble (the paper's soups are of members continued from one base).
    assert soup[2] > got.losses("logit-mean")[2] + 0.1  # measured: 5.475 against 5.193
    spec = ensemble_spec(members[:2], bible_store, rules=("uniform-soup", "logit-mean"))
    assert spec.rules == ("logit-mean", "uniform-soup")
