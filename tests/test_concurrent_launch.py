"""Several launchers on one study end where one launcher would: same runs, same tuned points,
same search.json."""

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

STUDY = """\
name: twice
data: {{store: {store}}}
budgets: [4k]
sizes: [tiny-16k, tiny-50k]
training: {{batch_size: 8, seq_len: 32, threads: 1}}
lattice: {{epochs: [1, 2, 4], lr: [3.0e-3, 1.0e-2, 3.0e-2], weight_decay: [0.0, 0.1, 0.8, 3.2]}}
recipes:
  standard: {{weight_decay: 0.1, search: adaptive, start: {{epochs: 1, lr: 3.0e-3}}, max_rounds: 3}}
  regularized:
    search: adaptive
    start: {{epochs: 1, lr: 3.0e-3, weight_decay: 0.0}}
    max_rounds: 3
ensembles: {{from: regularized, members: 2, member_rule: {{epochs: 1, weight_decay: 1}}}}
executor: {{kind: debug}}
"""


def _launch(study, root):
    return subprocess.Popen([sys.executable, "-m", "dcsl_cli", "sweep", "launch", str(study),
                             "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _outcome(root):
    tuning = pd.read_csv(root / "tuning.csv").sort_values(["recipe", "size", "budget_tokens"])
    runs = sorted(p.name for p in (root / "runs").iterdir())
    return tuning.reset_index(drop=True), json.loads((root / "search.json").read_text()), runs


# The pair prepares its own store: the same options as the bible_store fixture's, so the same
# store (content id) and the same runs; the first launcher prepares it and the second waits.
PREPARE = ("{prepare: {source: bible, vocab_size: 512, val_tokens: 8000, max_train_tokens: 60000, "
           "tokenizer_docs: 300}}")


@pytest.mark.slow
def test_two_launchers_at_once_end_like_one(tmp_path, bible_store):
    study = tmp_path / "study.yaml"
    study.write_text(textwrap.dedent(STUDY.format(store=bible_store.path)))
    single = _launch(study, tmp_path / "single")
    assert single.wait(timeout=600) == 0, single.stdout.read()[-2000:]
    prepared = tmp_path / "prepared.yaml"
    prepared.write_text(study.read_text().replace(f"{{store: {bible_store.path}}}", PREPARE))
    # a temporary store left by a preparation that was killed, removed by the next one
    (tmp_path / "pair" / ".store.killed").mkdir(parents=True)
    pair = [_launch(prepared, tmp_path / "pair") for _ in range(2)]
    outputs = []
    for proc in pair:
        assert proc.wait(timeout=600) == 0, proc.stdout.read()[-2000:]
        outputs.append(proc.stdout.read())
    assert sum("preparing the token store" in out for out in outputs) == 1, outputs
    assert sum("prepared by another launcher meanwhile; using it" in out for out in outputs) == 1
    assert not (tmp_path / "pair" / ".store.killed").exists()
    # the last launcher to finish may have collected before the other's final runs ended
    subprocess.run([sys.executable, "-m", "dcsl_cli", "sweep", "collect", str(prepared), "--root",
                    str(tmp_path / "pair")], check=True, capture_output=True)
    (t1, s1, r1), (t2, s2, r2) = _outcome(tmp_path / "single"), _outcome(tmp_path / "pair")
    assert r1 == r2 and s1 == s2
    pd.testing.assert_frame_equal(t1.drop(columns=["run_id"]), t2.drop(columns=["run_id"]))
    assert (t1.runs_used > 1).any() and max(e["rounds"] for e in s1.values()) >= 2  # several rounds
