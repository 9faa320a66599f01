"""`dcsl demo --cpt --quick`: a base trained on the Bible, exported, and continued on a second
corpus through a base study, end to end, with the comparison it reports."""

import json
import math

import pandas as pd
import pytest

from sweeps.demos.cptdemo import QUICK, run_cpt_demo, wiki_passages


def test_second_corpus_is_another_domain():
    passages = wiki_passages()
    assert len(passages) > 2500 and len(set(passages)) == len(passages)
    assert sum(map(len, passages)) > 1_000_000  # Wikipedia paragraphs, 1.6M characters


@pytest.mark.slow
def test_cpt_demo_quick_runs_end_to_end(tmp_path):
    result = run_cpt_demo(tmp_path, quick=True, log=lambda _: None)
    assert not result["failed"]
    comparison = result["comparison"]
    assert set(comparison) == {"1 epoch", "4 epochs", "full data, 1 epoch", "K=2 logit-mean",
                               "K=2 prob-mean", "K=2 uniform-soup"}
    assert all(math.isfinite(v) for v in comparison.values())
    # Measured over seeds 0-2 (docs/cpt-miniature.md): epoching the small budget beats the plain
    # continuation by 0.2+ nats, and one pass over 4x the data beats both.
    assert comparison["4 epochs"] < comparison["1 epoch"] - 0.1
    assert comparison["full data, 1 epoch"] < comparison["1 epoch"]
    # Every run continued the pinned base, and collect found each one under its recipe.
    pinned = json.loads((tmp_path / "runs" / "base.json").read_text())
    table = pd.read_parquet(tmp_path / "runs" / "results.parquet")
    train = table[table["kind"] == "train"]
    assert set(train["recipe"]) <= {"epoched", "full-data", "ensemble-member"}
    assert train["status"].eq("succeeded").all() and len(train) == 4
    for spec in (tmp_path / "runs" / "runs").glob("bible-base-*/spec.json"):
        assert json.loads(spec.read_text())["init_id"] == pinned["id"]
    assert QUICK.members == 2
    # The ensemble's downstream accuracy against K under each rule, soups included (nested evals).
    assert {rule: sorted(by_k) for rule, by_k in result["accuracy"].items()} == {
        "logit-mean": [1, 2], "prob-mean": [1, 2], "uniform-soup": [1, 2]}
    firsts = {by_k[1] for by_k in result["accuracy"].values()}
    assert len(firsts) == 1  # K = 1 is the first member alone, whatever the rule
