"""Continued-pretraining studies (a ``base`` section): plans from the checked-in config alone,
one-line errors for a malformed config and for a base missing at launch."""

import json
from pathlib import Path

import pytest

from dcsl_cli import main as dcsl
from sweeps.execution.launcher import launch
from sweeps.planning.plan import train_spec
from sweeps.planning.tune import point
from sweeps.review.planreview import PlanOptions, review
from sweeps.runs.snapshot import Snapshot
from sweeps.study.study import StudyError, load_study

CPT = Path(__file__).resolve().parent.parent / "sweeps" / "studies" / "cpt.yaml"
LLAMA_3B_PARAMS = "3,212,749,824"  # Llama-3.2-3B's published 3.21B (tied embeddings)


def test_cpt_study_plans_without_the_base(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LLAMA_3_2_3B", raising=False)
    study = load_study(CPT, root=tmp_path / "runs")
    assert study.sizes == ("llama-3.2-3b",) and study.base.shape.n_layers == 28
    assert study.training.batch_size == 16 and study.lattice.lr == (3e-5,)
    # Tokens seen are epochs x budget whatever the batch (the authors' 64/batch step scaling).
    spec = train_spec(study, "unprepared", study.budgets[0], "llama-3.2-3b",
                      point({"epochs": 4, "lr": 3e-5, "weight_decay": 0.1}))
    assert spec.init_from == "${LLAMA_3_2_3B}" and spec.init_id == "unpinned"
    steps = 4 * ((spec.tokens - 1) // spec.seq_len // spec.batch_size)
    assert abs(steps * spec.batch_size * spec.seq_len / (4 * spec.tokens) - 1) < 1e-3
    text = review(study, PlanOptions(probe=False, sims=0))
    assert text.summary.vocab == 128256 and text.sizes[0].total == 3_212_749_824
    dcsl_exit = pytest.raises(SystemExit)
    with dcsl_exit as e:
        dcsl(["sweep", "plan", str(CPT), "--root", str(tmp_path / "runs"), "--no-probe", "--sims", "0"])
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    assert LLAMA_3B_PARAMS in out and "base llama-3.2-3b" in out
    assert "full-data" in out and "ensemble members" in out


def write_study(tmp_path: Path, config_text: str, base_path: str = "missing-base") -> Path:
    (tmp_path / "bases").mkdir(exist_ok=True)
    (tmp_path / "bases" / "model.json").write_text(config_text)
    study = tmp_path / "study.yaml"
    study.write_text(
        f"name: cpt-test\nbase: {{path: {json.dumps(str(tmp_path / base_path))}, config: bases/model.json}}\n"
        f"data: {{store: {tmp_path / 'store'}}}\nbudgets: [4k]\n"
        "training: {batch_size: 2, seq_len: 16}\n"
        "lattice: {epochs: [1, 2], lr: [1.0e-3], weight_decay: [0.1]}\n"
        "recipes: {epoched: {role: regularized, search: grid}}\n"
        "executor: {kind: debug}\n")
    return study


TINY = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_key_value_heads": 4, "intermediate_size": 112, "vocab_size": 512}


@pytest.mark.parametrize("text, says", [
    ("{not json", "is not valid JSON"),
    (json.dumps({**TINY, "model_type": "gpt2"}), "is not a Llama"),
    (json.dumps({k: v for k, v in TINY.items() if k != "hidden_size"}), "no 'hidden_size'"),
])
def test_malformed_base_config_is_one_line_naming_the_file(tmp_path, text, says):
    with pytest.raises(StudyError) as e:
        load_study(write_study(tmp_path, text))
    message = str(e.value)
    assert "\n" not in message and says in message
    assert str(tmp_path / "bases" / "model.json") in message and "base.config" in message


def test_base_missing_at_launch_fails_in_one_line_before_any_run(tmp_path, capsys):
    study_file = write_study(tmp_path, json.dumps(TINY))
    study = load_study(study_file, root=tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="missing-base"):
        launch(study, log=lambda _: None)
    assert not (tmp_path / "runs").exists() and Snapshot.read(tmp_path / "runs").states == {}
    with pytest.raises(SystemExit) as e:
        dcsl(["sweep", "launch", str(study_file), "--root", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert e.value.code != 0 and len(err.splitlines()) == 1
    assert str(tmp_path / "missing-base") in err and "no config.json" in err


def test_base_path_env_var_unset_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("DCSL_TEST_BASE", raising=False)
    study_file = write_study(tmp_path, json.dumps(TINY), base_path="${DCSL_TEST_BASE}")
    study = load_study(study_file, root=tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="DCSL_TEST_BASE is not set"):
        launch(study, log=lambda _: None)


def test_sizes_and_base_together_are_refused(tmp_path):
    study_file = write_study(tmp_path, json.dumps(TINY))
    study_file.write_text(study_file.read_text() + "sizes: [tiny-16k]\n")
    with pytest.raises(StudyError, match="remove 'sizes'"):
        load_study(study_file)
