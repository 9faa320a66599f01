"""Every I/O error that reaches a user is one line naming the file, what is wrong with it, and
what to do: damaged weights, configs and manifests, and corpus files that are not what their
suffix says."""

import json
import shutil

import pytest
from conftest import train_seeds

from dcsl_cli import main as dcsl
from pretrain.hfconfig import read_hf_config
from pretrain.store import StoreError, TokenStore


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as done:
        dcsl(argv)
    return done.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def damaged_run(tmp_path_factory, bible_store):
    """A finished tiny run, and a copy whose model.safetensors is zero-filled."""
    root = tmp_path_factory.mktemp("runs")
    run = train_seeds(root, bible_store, 1)[0]
    bad = root / "damaged"
    shutil.copytree(run.path, bad)
    (bad / "model.safetensors").write_bytes(bytes(run.weights.stat().st_size))
    return run.path, bad


@pytest.mark.parametrize("command", ["export", "ensemble", "eval"])
def test_zero_filled_weights_name_the_file(damaged_run, tmp_path, capsys, command):
    _, bad = damaged_run
    argv = {"export": ["export", str(bad), str(tmp_path / "out")],
            "ensemble": ["ensemble", "eval", "--members", str(bad)],
            "eval": ["eval", str(bad), "--tasks", "arc_easy", "--limit", "2", "--split", "validation"]}[command]
    code, err = run_cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{bad / 'model.safetensors'} is not a readable safetensors file" in err
    assert "train the run again" in err


def test_weights_of_another_model_name_the_file(damaged_run, tmp_path):
    from safetensors.torch import save_file

    from pretrain.load import open_run
    from pretrain.weights import WeightsError

    good, _ = damaged_run
    other = tmp_path / "other"
    shutil.copytree(good, other)
    weights = open_run(good).read_weights()
    weights.pop("head.weight")
    save_file(weights, str(other / "model.safetensors"))
    with pytest.raises(WeightsError, match=f"{other / 'model.safetensors'} does not hold the weights of"):
        open_run(other).load_model()


def test_damaged_configs_and_manifests_name_the_file(tmp_path, bible_store):
    (tmp_path / "config.json").write_bytes(b"\x00\xff binary")
    with pytest.raises(ValueError, match=f"{tmp_path / 'config.json'} is not valid JSON"):
        read_hf_config(tmp_path)
    store = tmp_path / "store"
    shutil.copytree(bible_store.path, store)
    (store / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match=f"{store / 'manifest.json'} is damaged .*: prepare the store again"):
        TokenStore(store)
    (store / "manifest.json").write_text(json.dumps({"dtype": "uint16"}))
    with pytest.raises(StoreError, match=r"is damaged \(no field 'tokenizer'\)"):
        TokenStore(store)


def corpus_files(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": f"document {i} " * 20}) + "\n" for i in range(40)))
    noise = bytes((i * 97 + 13) % 256 for i in range(3000))  # not UTF-8, not JSON
    (tmp_path / "binary.txt").write_bytes(b"\xdc" + noise)
    (tmp_path / "binary.jsonl").write_bytes(b"\xdc" + noise)
    return good


@pytest.mark.parametrize("files, bad, words", [
    (["binary.txt"], "binary.txt", "is not UTF-8 text (byte 0xdc at offset 0): is it a binary file"),
    (["binary.jsonl"], "binary.jsonl", "is not JSON lines (JSON parse error"),
    # Of several files, the one that failed.
    (["good.jsonl", "binary.jsonl"], "binary.jsonl", "is not JSON lines"),
])
def test_an_unreadable_corpus_file_is_named(tmp_path, capsys, files, bad, words):
    corpus_files(tmp_path)
    out = tmp_path / "store"
    code, err = run_cli(["data", "prepare", "--source", "files", "--files", *[str(tmp_path / f) for f in files],
                         "--store", str(out), "--vocab-size", "300", "--val-tokens", "100"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"dcsl data: corpus file {tmp_path / bad} {words}"), err
    assert not out.exists()
