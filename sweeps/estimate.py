"""``dcsl sweep plan``: what a study will run, and what it will cost.

Compute is estimated as (training FLOPs per token, ~6N plus attention) x tokens seen,
and turned into GPU-hours at a stated model FLOP utilisation (MFU) and peak.
Adaptive searches cannot be counted in advance: the plan shows their first round and
the full lattice they replace, and says which is which. A data-scaling repeat is one run
at a tuned point that is not known yet; it is estimated at the recipe's first point.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pretrain.sizes import flops_per_token, get_shape
from sweeps.plan import Snapshot, cells, lattice_points, store_identity, train_spec
from sweeps.study import Study
from sweeps.tune import grid_points, next_points, point

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of one H100 SXM


@dataclass(frozen=True)
class PlanSummary:
    table: pd.DataFrame
    total_runs_now: int
    total_flops_now: float
    full_lattice_runs: int
    full_lattice_flops: float
    member_runs: int
    member_flops: float
    store_id: str


def run_flops(spec, vocab: int) -> float:  # noqa: ANN001 - a TrainSpec
    shape = get_shape(spec.size, vocab)
    steps = ((spec.tokens - 1) // spec.seq_len // spec.batch_size) * spec.epochs
    return flops_per_token(shape, spec.seq_len) * steps * spec.batch_size * spec.seq_len


def summarize(study: Study, vocab: int | None = None) -> PlanSummary:
    store_id, store_vocab = store_identity(study)
    vocab = vocab or store_vocab
    if not vocab:
        raise ValueError(f"{study.path}: the vocabulary size is unknown before the store exists; "
                         "pass --vocab-size (e.g. 128256 for the Llama-3 tokenizer)")
    snap = Snapshot.read(study.root)
    rows = []
    for recipe, budget, size in cells(study):
        search = recipe.search
        if recipe.at_tuned_point:
            # A data-scaling repeat: one run at the main budget's tuned point, which is not
            # known yet; the recipe's first point stands in for it.
            stand_in = (grid_points(recipe, study.lattice)[0] if search == "grid"
                        else point({**recipe.start, **recipe.fixed}))
            search, first = "repeat", [stand_in]
            full = first
        else:
            first = next_points(recipe, study.lattice, {}, set(), 0)
            full = grid_points(recipe, study.lattice) if search == "grid" else lattice_points(study, recipe)
        specs_now = [train_spec(study, store_id, budget, size, p) for p in first]
        specs_full = [train_spec(study, store_id, budget, size, p) for p in full]
        rows.append({
            "recipe": recipe.name, "search": search, "size": size, "budget_tokens": budget,
            "runs": len(specs_now), "full_lattice": len(specs_full),
            "succeeded": sum(snap.state(s.run_id) == "succeeded" for s in specs_full),
            "flops": sum(run_flops(s, vocab) for s in specs_now),
            "flops_full": sum(run_flops(s, vocab) for s in specs_full),
        })
    member_runs, member_flops = _members_estimate(study, store_id, vocab)
    table = pd.DataFrame(rows)
    return PlanSummary(table, int(table["runs"].sum()), float(table["flops"].sum()),
                       int(table["full_lattice"].sum()), float(table["flops_full"].sum()),
                       member_runs, member_flops, store_id)


def _members_estimate(study: Study, store_id: str, vocab: int) -> tuple[int, float]:
    """Members at the recipe's start point (their tuned point is not known yet)."""
    ens = study.ensembles
    if ens is None:
        return 0, 0.0
    recipe = study.recipes[ens.from_recipe]
    start = dict(next_points(recipe, study.lattice, {}, set(), 0)[0])
    runs, flops = 0, 0.0
    for budget in ens.budgets or recipe.budgets or study.budgets:
        for size in ens.sizes or recipe.sizes or study.sizes:
            p = {**start, "epochs": max(1, round(start["epochs"] * ens.epochs_factor)),
                 "weight_decay": start["weight_decay"] * ens.weight_decay_factor}
            spec = train_spec(study, store_id, budget, size, tuple(p.items()))
            runs += ens.members
            flops += ens.members * run_flops(spec, vocab)
    return runs, flops


def gpu_hours(flops: float, mfu: float, peak: float = H100_BF16_PEAK) -> float:
    return flops / (mfu * peak) / 3600.0
