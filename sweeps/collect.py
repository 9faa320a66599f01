"""``dcsl sweep collect`` and ``status``: the results table, rebuilt from run directories.

The table is derived, never edited: one row per (recipe, run) with the spec's fields
flattened, the run's state and its metrics (the column contract is documented in
``scaling/contract.py``). A training run belongs to every recipe whose cell and fixed
axes it matches, so a run shared by two recipes appears once for each. Failed and
missing runs are rows too (with empty metrics), listed, and never raise.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pandas as pd

from pretrain.rundir import atomic_write_bytes
from pretrain.runkind import train_rows
from pretrain.sizes import get_shape, param_counts
from sweeps.planning import (
    MEMBER_LABEL,
    cell_tuned,
    cells,
    forward_flops,
    launched_base,
    pin_eval_data,
    plan_all,
    point,
    store_identity,
    train_spec,
)
from sweeps.runs import Snapshot, kind_of, last_error
from sweeps.study import AXES, Study

NAN = float("nan")


def recipes_of(study: Study, spec: dict, store_id: str) -> list[str]:
    """The recipes whose cells contain this training run: the run is exactly the one the study
    asks for at that lattice point (same seed, batch, sequence length, store), so runs that
    other studies left in a shared run store are not mistaken for this study's."""
    if spec.get("kind") != "train":
        return []
    names = []
    cell_keys = {(r.name, b, s) for r, b, s in cells(study)}
    for recipe in study.recipes.values():
        if (recipe.name, spec["tokens"], spec["size"]) not in cell_keys:
            continue
        on_lattice = all(spec[a] in study.lattice.axis(a) for a in AXES)
        fixed_ok = all(spec[a] == v for a, v in recipe.fixed.items())
        if on_lattice and fixed_ok:
            p = point({a: spec[a] for a in AXES})
            if train_spec(study, store_id, spec["tokens"], spec["size"], p).run_id == spec.get("id"):
                names.append(recipe.name)
    return names


def collect(study: Study) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results table, tuning table, summary) for the study's run store."""
    study = launched_base(study)  # the base id the last launch pinned (no 6 GB re-hash)
    snap = Snapshot.read(study.root, pin_eval_data(study))
    store_id, vocab = store_identity(study)
    # Planned once: what every stage asks for now gives the labels of later stages' runs and
    # the runs that are still missing.
    planned = plan_all(study, snap, store_id)
    planned_labels = {spec.run_id: label for stage, labelled in planned.items() if stage not in ("resume", "tune")
                      for label, spec in labelled}
    rows: list[dict] = []
    problems: dict[str, list[str]] = {"failed": [], "missing": [], "unreadable": []}
    for rid, d in snap.dirs.items():
        spec = snap.specs[rid]
        state = snap.states[rid]
        try:
            kind = kind_of(spec)
            made = (kind.rows(spec, snap.results.get(rid)) if state == "succeeded"
                    else _placeholder_rows(spec))
        except Exception as e:  # noqa: BLE001 - one bad run never stops the table
            problems["unreadable"].append(f"{d.name}: {type(e).__name__}: {e}")
            continue
        if state == "failed":
            problems["failed"].append(f"{d.name}: {last_error(d)}")
        for label in recipes_of(study, spec, store_id) or [_label(spec, planned_labels.get(rid))]:
            for row in made:
                rows.append({"run_id": rid, "recipe": label, "role": role_of(study, label, spec),
                             "status": state, "run_dir": str(d), **row})
    for labelled in planned.values():
        for _, spec in labelled:
            if snap.state(spec.run_id) == "missing":
                problems["missing"].append(spec.dirname)
                sj = spec.to_json()
                for label in recipes_of(study, sj, store_id) or [_label(sj, planned_labels.get(spec.run_id))]:
                    rows.append({"run_id": spec.run_id, "recipe": label, "role": role_of(study, label, sj),
                                 "status": "missing", "run_dir": "", **_placeholder_rows(sj, vocab)[0]})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["train_flops"] = train_flops(table, snap, study, vocab)
    tuning = tuning_table(study, snap, store_id)
    summary = {"rows": len(table), "states": dict(Counter(snap.states.values())), **problems}
    return table, tuning, summary


def train_flops(table: pd.DataFrame, snap: Snapshot, study: Study, vocab: int) -> pd.Series:
    """Each row's training FLOPs, for the compute-matched view: a model's own training (its
    result's count); an ensemble's, the sum over its first K members; a student's, its own
    training plus its teacher's forward passes (sampling the synthetic data, or scoring
    every training token of a token-level student). NaN where a run has not finished."""
    own = {rid: float(r["flops"]) for rid, r in snap.results.items() if r and "flops" in r}
    sampled = {r["store_id"]: snap.specs[rid] for rid, r in snap.results.items()
               if r and snap.specs.get(rid, {}).get("kind") == "generate" and "store_id" in r}

    def teacher(members: list[str], seq_len: int, tokens: float) -> float:
        sizes = [snap.specs.get(m, {}).get("size") for m in members]
        if not sizes or None in sizes:
            return NAN
        return sum(forward_flops(study, size, vocab, seq_len, tokens) for size in sizes)

    def flops(run_id: str, kind: str, k: float) -> float:
        spec, result = snap.specs.get(run_id, {}), snap.results.get(run_id) or {}
        if kind == "train":
            return own.get(run_id, NAN)
        if kind == "ensemble":
            members = list(spec.get("member_ids", ()))[: int(k)] if k == k else []
            return sum(own.get(m, NAN) for m in members) if members else NAN
        if kind == "distill":
            if spec.get("mode") == "token":
                cost = teacher(list(spec.get("teacher_ids", ())), spec.get("seq_len", 0),
                               float(result.get("tokens_seen", NAN)))
            else:
                gen = sampled.get(spec.get("synthetic_store_id", ""))
                cost = (0.0 if gen is None and not spec.get("synthetic_store_id") else NAN
                        if gen is None else teacher(list(gen["teacher_ids"]), gen["seq_len"],
                                                    float(gen["tokens"])))
            return own.get(run_id, NAN) + cost
        return NAN

    k = table["K"] if "K" in table.columns else pd.Series(1.0, index=table.index)
    return pd.Series([flops(r, kind, kk) for r, kind, kk in zip(table["run_id"], table["kind"],
                                                                 k, strict=True)],
                     index=table.index, dtype=float)


def role_of(study: Study, label: str, spec: dict) -> str:
    """What a row is to the analysis (scaling.contract.ROLES), from the study, not from names:
    an eval row takes the role of the model it evaluated."""
    if label in study.recipes:
        return study.recipes[label].role
    if label == MEMBER_LABEL:
        return "member"
    if label == "ensemble" or spec.get("kind") == "ensemble":
        return "ensemble"
    if label in {d.name for d in study.distill}:
        return "distill"
    return "other"


def _label(spec: dict, planned: str | None) -> str:
    """The recipe column of a run no recipe cell contains: what the study planned it as."""
    return planned or {"train": "other", "ensemble": "ensemble", "eval": "downstream"}.get(
        spec.get("kind"), spec.get("kind") or "?")


def _placeholder_rows(spec: dict, vocab: int | None = None) -> list[dict]:
    """Rows for a run without results: spec fields, empty metrics."""
    if spec.get("kind") == "train":
        row = train_rows(spec, None)[0]
        if vocab and not spec.get("init_from"):  # a continued run's shape is its base's, unread here
            row["n_params"], row["n_params_non_embedding"] = param_counts(get_shape(spec["size"], vocab))
        return [row]
    return [{"kind": spec.get("kind", "?"), "size": spec.get("size", ""), "val_loss": NAN}]


def tuning_table(study: Study, snap: Snapshot, store_id: str) -> pd.DataFrame:
    rows = []
    for recipe, budget, size in cells(study):
        t, rid = cell_tuned(study, snap, store_id, recipe, budget, size)
        best = dict(t.best) if t.best else {a: NAN for a in AXES}
        rows.append({"recipe": recipe.name, "size": size, "budget_tokens": budget, **best,
                     "val_loss": t.loss if t.loss is not None else NAN, "certified": t.certified,
                     "at_edge": t.at_edge, "neighbours_missing": len(t.missing_neighbours),
                     "runs_used": t.runs_used, "lattice_size": t.lattice_size,
                     "search": recipe.search, "run_id": rid or ""})
    return pd.DataFrame(rows)


def write_tables(study: Study, table: pd.DataFrame, tuning: pd.DataFrame) -> list[Path]:
    """results.parquet, results.csv and tuning.csv in the study root (atomic writes)."""
    import io

    study.root.mkdir(parents=True, exist_ok=True)
    out = []
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    for name, data in (("results.parquet", buf.getvalue()),
                       ("results.csv", table.to_csv(index=False).encode()),
                       ("tuning.csv", tuning.to_csv(index=False).encode())):
        atomic_write_bytes(study.root / name, data)
        out.append(study.root / name)
    return out


def status_table(study: Study) -> tuple[pd.DataFrame, list[str]]:
    """Counts of runs per (kind, recipe, size, budget) and state, plus failure lines."""
    table, _, summary = collect(study)
    if table.empty:
        return table, []
    table = table.copy()
    table["budget"] = table.get("budget_tokens", pd.Series(dtype=float)).map(_fmt_tokens)
    counts = (table.groupby(["kind", "recipe", "size", "budget", "status"], dropna=False).size()
              .unstack("status", fill_value=0))
    for state in ("succeeded", "running", "pending", "failed", "stale", "missing"):
        if state not in counts.columns:
            counts[state] = 0
    counts = counts[["succeeded", "running", "pending", "failed", "stale", "missing"]]
    return counts.reset_index(), summary["failed"]


def _fmt_tokens(n: object) -> str:
    if not isinstance(n, int | float) or (isinstance(n, float) and math.isnan(n)):
        return ""
    from pretrain.spec import human_tokens

    return human_tokens(int(n))

