"""The distill package's run kinds (torch-free): teachers' samples and students.

- ``generate``: a teacher (one model, or an ensemble) sampled into a synthetic token store
  (``GenerateSpec``, run by ``distill.generate.run_generate``); it has no row of its own;
- ``distill``: a student trained on real + synthetic data, or by token-level KD
  (``DistillSpec``, run by ``distill.student.run_distill``).
"""

from __future__ import annotations

import math

from distill.spec import DistillSpec, GenerateSpec
from pretrain.runkind import RunKind, TableRow


def generate_rows(spec_json: dict, result_json: dict) -> list[TableRow]:
    """Teacher sampling has no row in the results table (its students do)."""
    return []


def student_rows(spec_json: dict, result_json: dict) -> list[TableRow]:
    """The results-table row of a finished student."""
    r = result_json
    return [{
        "kind": "distill", "size": spec_json["size"], "n_params": r["n_params"],
        "n_params_non_embedding": r["n_params_non_embedding"], "budget_tokens": r["budget_tokens"],
        "epochs": spec_json["epochs"], "lr": spec_json["lr"], "weight_decay": spec_json["weight_decay"],
        "seed": spec_json["init_seed"], "val_loss": r["final_val_loss"], "best_val_loss": r["best_val_loss"],
        "tokens_seen": r.get("tokens_seen", math.nan),
        "teacher_loss": r["teacher_loss"], "single_loss": r["single_loss"],
        "synthetic_weight": r["synthetic_weight"], "K": r["K"], "rule": r["rule"], "mode": r["mode"],
        "kd_temperature": r["kd_temperature"],
        "retained_share": math.nan if r["retained_share"] is None else r["retained_share"],
    }]


GENERATE = RunKind("generate", GenerateSpec, "distill.generate:run_generate", generate_rows)
DISTILL = RunKind("distill", DistillSpec, "distill.student:run_distill", student_rows)
KINDS = (GENERATE, DISTILL)
