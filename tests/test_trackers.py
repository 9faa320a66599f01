"""Experiment trackers: Lightning's csv, tensorboard, wandb and mlflow loggers get exactly the
rows of metrics.csv, each read back here with the tracker's own reader; their runs are named
and tagged for a sweep; a missing tracker package is refused before anything trains."""

import csv
import importlib.util
import json
import struct
import zlib

import numpy as np
import pytest
import yaml

from pretrain.metrics import read_rows, tracked
from pretrain.rundir import RunDir
from pretrain.spec import TrainSpec
from pretrain.trackers import check_trackers, run_labels
from pretrain.train import train_run

QUIET = {"log": lambda _: None}
TAGS = {"study": "bible-study", "recipe": "standard", "stage": "tune"}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No tracker configured by the user: W&B offline, MLflow on a file store in the run."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "x")  # (recorded, so whatever a run sets is undone after the test)
        monkeypatch.delenv(name)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))


def spec_for(st, **kw):
    base = dict(size="tiny-50k", store=str(st.path), store_id=st.store_id, tokens=4_096, epochs=2, lr=3e-3,
                batch_size=8, seq_len=64, val_every=3, metrics_every=2)
    return TrainSpec(**{**base, **kw})


def expected(run_dir) -> list[tuple[int, dict]]:
    """What every tracker must hold: each metrics.csv row's values at its step."""
    return [(r["step"], tracked(r)) for r in read_rows(run_dir / "metrics.csv")]


def test_every_tracker_logs_the_rows_of_metrics_csv(tmp_path, bible_store, offline, torch_one_thread):
    spec = spec_for(bible_store, loggers=("csv", "tensorboard", "wandb", "mlflow"), tracker_tags=TAGS)
    run_dir = tmp_path / spec.dirname
    result = train_run(spec, run_dir, **QUIET)
    rows = expected(run_dir)
    # a row every 2 steps and at every validation (every 3, and the last)
    assert [s for s, _ in rows] == [2, 3, 4, 6, 8, 9, 10, 12, 14] and result["steps"] == 14
    assert sum("val_loss" in r for _, r in rows) == 5  # steps 3, 6, 9, 12 and 14 validated
    labels = run_labels(spec)
    assert labels == {**TAGS, "kind": "train", "size": "tiny-50k", "budget": 4_096, "epochs": 2, "lr": 3e-3,
                      "weight_decay": 0.1, "seed": 0, "data_seed": 0, "run_id": spec.run_id}
    trackers = run_dir / "trackers"
    check_csv(trackers / "csv" / "version_0", rows, labels)
    check_tensorboard(trackers / "tensorboard", rows, labels)
    check_wandb(trackers / "wandb", spec, rows, labels)
    check_mlflow(trackers, spec, rows, labels)
    # The trackers change nothing that is computed.
    plain = train_run(spec_for(bible_store), tmp_path / "plain", **QUIET)
    assert plain["final_val_loss"] == result["final_val_loss"]


def check_csv(folder, rows, labels) -> None:
    with open(folder / "metrics.csv") as f:
        logged = [(int(r.pop("step")), {k: float(v) for k, v in r.items() if v != ""}) for r in csv.DictReader(f)]
    assert logged == rows
    assert yaml.safe_load((folder / "hparams.yaml").read_text()) == labels


def check_tensorboard(folder, rows, labels) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    for key in rows[0][1]:
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        # TensorBoard keeps scalars as float32.
        assert logged == [(s, float(np.float32(r[key]))) for s, r in rows if key in r], key
    assert yaml.safe_load((folder / "hparams.yaml").read_text()) == labels


def wandb_records(path) -> list:
    """The records of a W&B transaction log (``run-<id>.wandb``) as wandb's own protobuf
    messages. The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks,
    each with a CRC-32, a length and a type (full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B"
    records, pending, pos, block = [], b"", 7, 32 * 1024
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc
        pending += chunk
        if kind in (1, 4):  # full, or the last piece of a record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def check_wandb(folder, spec, rows, labels) -> None:
    (run_dir,) = folder.glob("offline-run-*")  # offline: nothing configured
    records = wandb_records(next(run_dir.glob("run-*.wandb")))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_id, run.display_name, run.project, run.run_group, run.job_type) == (
        spec.run_id, spec.dirname, "bible-study", "standard", "tune")
    assert "recipe:standard" in run.tags and "size:tiny-50k" in run.tags
    config = {u.key: json.loads(u.value_json) for r in records if r.WhichOneof("record_type") == "config"
              for u in r.config.update}
    assert {k: config[k] for k in labels} == labels
    logged = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            logged.append((items.pop("trainer/global_step"),
                           {k: v for k, v in items.items() if not k.startswith("_")}))
    assert logged == rows


def check_mlflow(trackers, spec, rows, labels) -> None:
    from mlflow.tracking import MlflowClient

    kept = json.loads((trackers / "mlflow.json").read_text())
    client = MlflowClient(kept["tracking_uri"])
    assert kept["tracking_uri"] == (trackers / "mlruns").resolve().as_uri()
    run = client.get_run(kept["run_id"])
    assert run.info.run_name == spec.dirname and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "bible-study"
    assert {k: run.data.tags[k] for k in labels} == {k: str(v) for k, v in labels.items()}
    for key in rows[0][1]:
        logged = [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                    key=lambda m: m.step)]
        assert logged == [(s, r[key]) for s, r in rows if key in r], key


def test_a_missing_tracker_package_is_one_line_naming_its_extra(monkeypatch, tmp_path, bible_store, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"^the wandb tracker needs the wandb package, which is not installed: "
                                         r"pip install -e '\.\[wandb\]'$"):
        check_trackers(["csv", "wandb"])
    check_trackers(["csv", "tensorboard", "mlflow"])

    import dcsl_cli

    run_dir = tmp_path / "r"
    with pytest.raises(SystemExit) as stop:
        dcsl_cli.main(["train", "--store", str(bible_store.path), "--size", "tiny-50k", "--tokens", "4k",
                       "--run-dir", str(run_dir), "--logger", "csv", "--logger", "wandb"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "dcsl train: the wandb tracker needs the wandb package, which is not installed: pip install -e '.[wandb]'"]
    assert not run_dir.exists()  # refused before anything ran

    from sweeps.study.study import load_study
    from sweeps.study.yamlpos import StudyError

    study = tmp_path / "s.yaml"
    study.write_text("name: s\ndata: {store: /nonexistent}\nbudgets: [8k]\nsizes: [tiny-50k]\n"
                     "recipes: {standard: {weight_decay: 0.1}}\ntraining:\n  loggers: [csv, wandb]\n")
    with pytest.raises(StudyError, match=r"s\.yaml:7:\d+: .*pip install -e '\.\[wandb\]'"):
        load_study(study)


def test_a_study_names_its_trackers(tmp_path):
    from sweeps.study.study import load_study
    from sweeps.study.yamlpos import StudyError

    study = tmp_path / "s.yaml"
    head = "name: s\ndata: {store: /nonexistent}\nbudgets: [8k]\nsizes: [tiny-50k]\nrecipes: {standard: {}}\n"
    study.write_text(head + "training: {loggers: [csv, tensorboard], metrics_every: 5}\n")
    training = load_study(study).training
    assert training.loggers == ("csv", "tensorboard") and training.spec_fields()["metrics_every"] == 5
    for bad, message in (("[neptune]", "'neptune' is not one of csv, tensorboard, wandb, mlflow"),
                         ("[csv, csv]", "loggers must be distinct")):
        study.write_text(head + f"training: {{loggers: {bad}}}\n")
        with pytest.raises(StudyError, match=message):
            load_study(study)


def test_the_worker_labels_a_sweep_run_from_the_launch_index(tmp_path, bible_store, torch_one_thread):
    """A sweep run's trackers are tagged with its study (the root's folder), stage and recipes."""
    from sweeps.execution.worker import run_one
    from sweeps.runs import record_index

    root = tmp_path / "my-study"
    spec = spec_for(bible_store, loggers=("csv",), tokens=2_048, epochs=1)
    run_dir = root / "runs" / spec.dirname
    run_dir.mkdir(parents=True)
    RunDir(run_dir).write_spec(spec.to_json())
    record_index(root, {spec.run_id: ("tune", ("standard", "regularized"), spec.to_json())}, {})
    assert run_one(run_dir, log_to_stdout=False) == "succeeded"
    hparams = yaml.safe_load((run_dir / "trackers" / "csv" / "version_0" / "hparams.yaml").read_text())
    assert {k: hparams[k] for k in ("study", "stage", "recipe", "run_id")} == {
        "study": "my-study", "stage": "tune", "recipe": "standard,regularized", "run_id": spec.run_id}
    assert RunDir(run_dir).spec()["id"] == spec.run_id  # the labels are operational
