"""The run core: what every run kind (training, ensemble losses, teachers, students, evals)
provides, so that one launcher, run store and results table serve them all.

A kind is its spec class (a frozen ``SpecBase`` whose semantic fields hash to the run id),
the function that runs it in a run directory (imported only when a run starts: it may pull in
torch and Lightning), and a function from a finished run's spec.json and result.json to its
rows of the results table (cheap and torch-free: collecting a study never loads a model).
Each package defines its kinds next to its specs (``pretrain.runkind.TRAIN``,
``eval.kinds``, ``distill.kinds``); ``sweeps.kinds`` is the registry of all of them.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from pretrain.spec import SpecBase, TrainSpec


class TableRow(TypedDict, total=False):
    """One row of the results table as a kind writes it (the contract is
    ``scaling.table.contract``; the sweep adds run_id, recipe, role, status and run_dir)."""

    kind: str
    size: str
    n_params: float
    n_params_non_embedding: float
    budget_tokens: float
    epochs: float
    lr: float
    weight_decay: float
    seed: float
    data_seed: float
    K: int
    rule: str
    val_loss: float
    best_val_loss: float
    train_loss: float
    tokens_seen: float
    wall_s: float
    tokens_per_s: float


RunFunction = Callable[..., dict]
RowsFunction = Callable[[dict, "dict | None"], list[TableRow]]


@dataclass(frozen=True)
class RunKind:
    """One kind of run: its spec class, how it runs, and the rows it adds to the table."""

    name: str
    spec: type[SpecBase]
    runner: str
    """``module:function`` that runs a spec in a run directory: ``f(spec, run_dir, log=...)``
    returning result.json's content (imported when a run starts)."""
    rows: RowsFunction
    """Results-table rows of a finished run, from its spec.json and result.json."""

    def spec_from_json(self, data: dict) -> SpecBase:
        return self.spec.from_json(data)

    def run(self, spec: SpecBase, run_dir: str | Path, log: Callable[[str], Any] = print) -> dict:
        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)(spec, run_dir, log=log)


def final_loss(result: dict | None) -> float | None:
    """The loss a finished training-like run is judged by (its last validation)."""
    if result is None:
        return None
    return result.get("final_val_loss", result.get("val_loss"))


def train_rows(spec: dict, result: dict | None) -> list[TableRow]:
    """The results-table row of a training run (metrics NaN until it has finished)."""
    result = result or {}
    nan = math.nan
    return [TableRow(
        kind="train", size=spec["size"], budget_tokens=spec["tokens"], epochs=spec["epochs"],
        lr=spec["lr"], weight_decay=spec["weight_decay"], seed=spec["init_seed"],
        data_seed=spec["data_seed"], K=1, rule="",
        n_params=result.get("n_params", nan),
        n_params_non_embedding=result.get("n_params_non_embedding", nan),
        val_loss=result.get("final_val_loss", nan), best_val_loss=result.get("best_val_loss", nan),
        train_loss=result.get("train_loss", nan), tokens_seen=result.get("tokens_seen", nan),
        wall_s=result.get("wall_s", nan), tokens_per_s=result.get("tokens_per_s", nan),
    )]


TRAIN = RunKind("train", TrainSpec, "pretrain.train:train_run", train_rows)
