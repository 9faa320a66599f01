"""Experiment trackers: Lightning's own loggers, each getting every row of metrics.csv.

``TrainSpec.loggers`` (a study's ``training.loggers``, ``dcsl train --logger NAME``) names them:

- ``csv``: Lightning's CSVLogger, ``<run dir>/trackers/csv/version_<attempt>/metrics.csv``
  (a new version per attempt: CSVLogger empties an existing one);
- ``tensorboard``: TensorBoardLogger, ``<run dir>/trackers/tensorboard`` (one folder over
  attempts). Everything stays under the run directory, so one TensorBoard shows a whole sweep:
  ``tensorboard --logdir <study root>/runs`` (each run is named by its folder);
- ``wandb``: WandbLogger, offline under ``<run dir>/trackers/wandb`` unless W&B is configured
  (``WANDB_MODE`` or ``WANDB_API_KEY`` set); ``wandb sync`` uploads an offline run later;
- ``mlflow``: MLFlowLogger, a file store at ``<run dir>/trackers/mlruns`` unless
  ``MLFLOW_TRACKING_URI`` is set (per run, so concurrent runs never share a store's files;
  ``mlflow ui --backend-store-uri <run dir>/trackers/mlruns`` shows one).

Each tracker's run is named like the run's folder (readable name and run id), filed under the
study (W&B project, MLflow experiment; ``dcsl`` outside a study) and tagged with the study,
recipe, stage, size, budget, epochs, lr, weight decay, seeds and run id (``run_labels``). A
resumed run continues the same tracker run where the tracker can (W&B by run id, MLflow by
the run id kept in ``trackers/mlflow.json``); the steps between the checkpoint and the kill are
logged again, with the same values but throughput. metrics.csv stays the record.

tensorboard, wandb and mlflow are optional extras (``pip install -e '.[wandb]'``); asking for
one whose package is missing is refused before any training (``check_trackers``). Nothing here
imports a tracker, or Lightning, until a run builds its loggers.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

from pretrain.spec import TRACKERS, TrainSpec

TRACKER_DIR = "trackers"
# tracker -> the module it needs; each is also the name of the package's extra.
NEEDS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_trackers(names: tuple[str, ...] | list[str]) -> None:
    """Refuse unknown trackers and those whose package is not installed, in one line that
    names the extra to install."""
    if problem := missing_tracker(names):
        raise ValueError(problem)


def missing_tracker(names: tuple[str, ...] | list[str]) -> str | None:
    """What is wrong with the first of ``names`` that cannot log (``check_trackers``), or None."""
    for name in names:
        if name not in TRACKERS:
            return f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}"
        module = NEEDS.get(name)
        if module is not None and importlib.util.find_spec(module) is None:
            return (f"the {name} tracker needs the {module} package, which is not installed: "
                    f"pip install -e '.[{name}]'")
    return None


def run_labels(spec: TrainSpec) -> dict[str, Any]:
    """What a tracker's run is tagged with: the labels the sweep worker gave the spec
    (``tracker_tags``: study, recipe, stage), then the spec's own fields."""
    own = {"kind": spec.kind, "size": spec.size, "budget": spec.tokens, "epochs": spec.epochs, "lr": spec.lr,
           "weight_decay": spec.weight_decay, "seed": spec.init_seed, "data_seed": spec.data_seed,
           "run_id": spec.run_id}
    return {**dict(spec.tracker_tags or {}), **own}


def build_loggers(spec: TrainSpec, run_dir: Path, log=print) -> list:  # noqa: ANN001
    """The spec's trackers as Lightning loggers, writing under ``run_dir`` (rank 0 only)."""
    if not spec.loggers:
        return []
    check_trackers(spec.loggers)
    labels = run_labels(spec)
    root = Path(run_dir) / TRACKER_DIR
    root.mkdir(parents=True, exist_ok=True)
    make = {"csv": _csv, "tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}
    loggers = [make[name](spec, root, labels, log) for name in spec.loggers]
    for logger in loggers:
        logger.log_hyperparams(_params(logger, labels))
    return loggers


def close_loggers(loggers: list, ok: bool) -> None:
    """End what Lightning's finalize leaves open: a W&B run, which would otherwise swallow the
    next run a worker trains in the same process."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish(exit_code=0 if ok else 1)


def _project(labels: dict[str, Any]) -> str:
    return str(labels.get("study") or "dcsl")


def _params(logger, labels: dict[str, Any]) -> dict[str, Any]:  # noqa: ANN001
    """The hyperparameters a tracker records. MLflow's params never change once logged, so it
    gets the spec's own fields only (a run's labels, which may grow, are its tags)."""
    if type(logger).__name__ == "MLFlowLogger":
        return {k: v for k, v in labels.items() if k not in ("study", "recipe", "stage")}
    return labels


def _csv(spec: TrainSpec, root: Path, labels: dict, log) -> Any:  # noqa: ANN001
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(root, name="csv")
    log(f"tracker csv: {logger.log_dir}")
    return logger


def _tensorboard(spec: TrainSpec, root: Path, labels: dict, log) -> Any:  # noqa: ANN001
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(root / "tensorboard", name="", version="", default_hp_metric=False)
    log(f"tracker tensorboard: {root / 'tensorboard'} (tensorboard --logdir <study root>/runs shows a sweep)")
    return logger


def _wandb(spec: TrainSpec, root: Path, labels: dict, log) -> Any:  # noqa: ANN001
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    configured = bool(os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"))
    extra = {} if configured else {"mode": "offline"}  # (not offline=True: it sets WANDB_MODE for good)
    tags = [f"{k}:{v}"[:64] for k, v in labels.items() if k != "run_id"]  # (W&B: 64 characters a tag)
    logger = WandbLogger(name=spec.dirname, project=_project(labels), save_dir=str(root), id=spec.run_id,
                         group=labels.get("recipe"), job_type=str(labels.get("stage") or spec.kind),
                         tags=tags, settings=wandb.Settings(console="off", silent=True),
                         **extra)
    logger._wandb_init.pop("anonymous", None)  # (unset, yet wandb warns that it is deprecated)
    run = logger.experiment
    where = getattr(run, "dir", root)
    log(f"tracker wandb: {'online' if configured else 'offline'} run {spec.run_id} in {Path(where).parent}"
        + ("" if configured else " (wandb sync uploads it)"))
    return logger


def _mlflow(spec: TrainSpec, root: Path, labels: dict, log) -> Any:  # noqa: ANN001
    from lightning.pytorch.loggers import MLFlowLogger

    # (Its "experiment not found, creating it" is every new store's first line.)
    logging.getLogger("lightning.pytorch.loggers.mlflow").setLevel(logging.ERROR)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = (root / "mlruns").resolve().as_uri()
        # MLflow 3 keeps its file store only for those who ask for it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    kept = root / "mlflow.json"
    previous = json.loads(kept.read_text()) if kept.is_file() else {}
    run_id = previous.get("run_id") if previous.get("tracking_uri") == uri else None
    if run_id is not None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            MlflowClient(uri).get_run(run_id)
        except MlflowException:  # the store lost it: a new run
            run_id = None
    tags = {k: str(v) for k, v in labels.items()}
    logger = MLFlowLogger(experiment_name=_project(labels), run_name=spec.dirname, tracking_uri=uri,
                          tags=tags, run_id=run_id)
    if run_id is not None:  # resumed: the labels may have grown since
        for k, v in tags.items():
            logger.experiment.set_tag(run_id, k, v)
    else:
        from pretrain.rundir import atomic_write_json

        atomic_write_json(kept, {"tracking_uri": uri, "run_id": logger.run_id})
    log(f"tracker mlflow: run {logger.run_id} at {uri}")
    return logger
