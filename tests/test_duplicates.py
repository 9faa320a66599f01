"""The store is checked for contamination: documents are hashed, repeats in the training
stream reported, validation documents that are also training ones refused, and ``dedupe``
drops repeats before the split."""

import json
import textwrap

import numpy as np
import pytest

from dcsl_cli import main as dcsl
from pretrain.duplicates import text_hash
from pretrain.store import StoreError, TokenStore, prepare_config, prepare_store


def shard(path, n=40):
    rng = np.random.default_rng(0)
    words = "the quick brown fox jumps over a lazy dog while seven wise owls watch".split()
    path.write_text("".join(json.dumps({"text": " ".join(rng.choice(words, 30)) + f" doc{i}."}) + "\n"
                            for i in range(n)))
    return path


def options(files, **kw):
    return {"source": "files", "files": [str(f) for f in files], "vocab_size": 300, "val_tokens": 300,
            "val_every": 4, "tokenizer_docs": 100, **kw}


def test_the_hash_ignores_unicode_form_and_whitespace():
    assert text_hash("caf\u00e9  au\nlait ") == text_hash("cafe\u0301 au lait")
    assert text_hash("a b") != text_hash("a  c")


def test_repeated_shards_are_refused_unless_deduplicated(tmp_path, capsys):
    one = shard(tmp_path / "shard.jsonl")
    copies = []
    for k in range(4):
        copies.append(tmp_path / f"copy-{k}.jsonl")
        copies[-1].write_text(one.read_text())
    # Without dedupe: validation documents are in training too, and nothing is written.
    code_out = tmp_path / "contaminated"
    with pytest.raises(SystemExit) as done:
        dcsl(["data", "prepare", "--source", "files", "--files", *map(str, copies), "--store", str(code_out),
              "--vocab-size", "300", "--val-tokens", "300", "--val-every", "4", "--tokenizer-docs", "100"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1
    assert "validation documents are also in the training stream (e.g. '" in err and "--dedupe" in err
    assert not code_out.exists()
    # With it: each text once, in its first place (the source order here), so the store is the
    # one shard's; the manifest counts what was read and dropped.
    lines = []
    deduped = TokenStore(prepare_store(prepare_config(options(copies, dedupe=True, shuffle_seed=-1),
                                                      tmp_path / "deduped"), log=lines.append))
    single = TokenStore(prepare_store(prepare_config(options([one], shuffle_seed=-1), tmp_path / "single"),
                                      log=lambda _: None))
    assert (deduped.path / "train.bin").read_bytes() == (single.path / "train.bin").read_bytes()
    assert (deduped.path / "val.bin").read_bytes() == (single.path / "val.bin").read_bytes()
    documents = deduped.manifest["documents"]
    assert documents["dedupe"] and documents["read"] == 160 and documents["duplicates_dropped"] == 120
    assert documents["train_duplicates"] == 0
    assert any("dropped 120 repeated documents of 160" in line for line in lines)
    assert "repeats of a document's normalised text dropped" in deduped.manifest["order"]
    assert single.manifest["documents"] == {**documents, "dedupe": False, "read": 40, "duplicates_dropped": 0}
    # Equal streams, but a deduplicated store says so in its manifest: the id is the stream's.
    assert deduped.store_id == single.store_id


def test_repeats_inside_training_are_reported_and_counted(tmp_path):
    path = shard(tmp_path / "shard.jsonl", 40)
    rows = path.read_text().splitlines()
    rows[2] = rows[1]  # documents 1 and 2 are both training documents (val_every 4)
    path.write_text("\n".join(rows) + "\n")
    lines = []
    store = TokenStore(prepare_store(prepare_config(options([path], shuffle_seed=-1), tmp_path / "s"),
                                     log=lines.append))
    assert store.manifest["documents"]["train_duplicates"] == 1
    assert any(line.startswith("1 training documents repeat an earlier one (e.g. '") for line in lines)


def test_a_study_asks_for_dedupe(tmp_path):
    from sweeps.study.study import StudyError, load_study

    text = textwrap.dedent("""\
        name: t
        data: {prepare: {source: bible, vocab_size: 512, dedupe: true}}
        budgets: [8k]
        sizes: [tiny-50k]
        recipes:
          standard: {weight_decay: 0.1, search: grid}
        """)
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert prepare_config(load_study(path).prepare, tmp_path / "x").dedupe is True
    path.write_text(text.replace("dedupe: true", "dedupe: often"))
    with pytest.raises(StudyError, match=r"study.yaml:2:\d+: data.prepare.dedupe: dedupe must be true or false"):
        load_study(path)


def test_a_store_without_a_documents_record_still_opens(tmp_path, bible_store):
    """Stores prepared before the record existed keep their ids and open as before."""
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(bible_store.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest.pop("documents")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert TokenStore(copy).store_id == bible_store.store_id
    with pytest.raises(StoreError, match="already holds a token store"):
        prepare_store(prepare_config({"source": "bible", "vocab_size": 512}, copy), log=lambda _: None)
