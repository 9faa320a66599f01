"""Run kinds: how the sweep turns a spec.json back into a spec, runs it, and tabulates it.

Each kind lives in the package that owns it; this registry names them by module path
and imports lazily, so planning a study never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    spec_class: str
    run_function: str
    rows_function: str

    def _load(self, dotted: str) -> Any:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def spec_from_json(self, data: dict):  # noqa: ANN201
        return self._load(self.spec_class).from_json(data)

    @property
    def run(self) -> Callable:
        return self._load(self.run_function)

    @property
    def rows(self) -> Callable[[dict, dict], list[dict]]:
        return self._load(self.rows_function)


KINDS: dict[str, Kind] = {
    "train": Kind("pretrain.spec.TrainSpec", "pretrain.train.train_run", "sweeps.collect.train_rows"),
    "ensemble": Kind("eval.ensemble.EnsembleEvalSpec", "eval.ensemble.run_ensemble_eval",
                     "eval.ensemble.table_rows"),
    "generate": Kind("distill.generate.GenerateSpec", "distill.generate.run_generate",
                     "distill.generate.table_rows"),
    "distill": Kind("distill.student.StudentSpec", "distill.student.run_student",
                    "distill.student.table_rows"),
    "eval": Kind("eval.downstream.DownstreamEvalSpec", "eval.downstream.run_downstream_eval",
                 "eval.downstream.table_rows"),
}


def kind_of(spec_json: dict) -> Kind:
    name = spec_json.get("kind")
    if name not in KINDS:
        raise ValueError(f"unknown run kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]
