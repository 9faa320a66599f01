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
from pretrain.sizes import param_counts
from pretrain.spec import TrainSpec
from scaling.table.contract import ANALYSIS_FILE, CURVE_COLUMNS, CURVES_FILE, STATUSES, default_role
from sweeps.planning import (
    cell_tuned,
    cells,
    forward_flops,
    launched_base,
    store_identity,
)
from sweeps.runs import INDEX_FILE, Index, Snapshot, kind_of, last_error, read_index
from sweeps.study import AXES, Study

NAN = float("nan")


def collect(study: Study) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results table, tuning table, summary) for the study's run store.

    A pure read of the run store and the launch index (``sweeps.runs.index``): the index
    names each run's stage and labels and pins the store, eval data and base; nothing is
    planned and no dataset is opened. A run the index does not know (another study's, in a
    shared store, or one an older study file planned) keeps a label from its kind.
    """
    study = launched_base(study)  # the base id the last launch pinned (no 6 GB re-hash)
    index = read_index(study.root)
    snap = Snapshot.read(study.root)
    if index is None and snap.dirs:
        raise ValueError(f"{study.root} has runs but no launch index ({INDEX_FILE}): run "
                         f"`dcsl sweep launch {study.path}` once to record it (finished runs "
                         "are not trained again)")
    index = index or Index()
    store_id, vocab = _pinned_store(study, index)
    rows: list[dict] = []
    problems: dict[str, list[str]] = {"failed": [], "missing": [], "unreadable": [], "orphaned": []}
    for rid, d in snap.dirs.items():
        state = snap.states[rid]
        if state == "unreadable":
            problems["unreadable"].append(snap.unreadable.get(rid, str(d)))
            spec = index.runs[rid].spec if rid in index.runs else {"kind": _kind_of_dir(d), "id": rid}
            made = _placeholder_rows(spec, vocab)
        else:
            spec = snap.specs[rid]
            try:
                made = (kind_of(spec).rows(spec, snap.results.get(rid)) if state == "succeeded"
                        else _placeholder_rows(spec, vocab))
            except Exception as e:  # noqa: BLE001 - one bad run never stops the table
                problems["unreadable"].append(f"{d}: {type(e).__name__}: {e}")
                state, made = "unreadable", _placeholder_rows(spec, vocab)
        if state == "failed":
            problems["failed"].append(f"{d.name}: {last_error(d)}")
        if state == "succeeded" and (gone := _missing_inputs(spec, snap)):
            state = "orphaned"
            problems["orphaned"].append(f"{d.name}: built on {', '.join(gone)}, which "
                                        f"{'is' if len(gone) == 1 else 'are'} gone or unfinished")
        for label in index.labels(rid) or [_label(spec)]:
            for row in made:
                rows.append({"run_id": rid, "recipe": label, "role": role_of(study, label, spec),
                             "status": state, "run_dir": str(d), **row})
    for rid, entry in index.runs.items():
        if snap.state(rid) == "missing":
            problems["missing"].append(_dirname(entry.spec))
            for label in entry.labels or [_label(entry.spec)]:
                rows.append({"run_id": rid, "recipe": label, "role": role_of(study, label, entry.spec),
                             "status": "missing", "run_dir": "", **_placeholder_rows(entry.spec, vocab)[0]})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["train_flops"] = train_flops(table, snap, study, vocab)
    tuning = tuning_table(study, snap, store_id) if store_id else pd.DataFrame()
    summary = {"rows": len(table), "states": dict(Counter(snap.states.values())), "indexed": bool(index.runs),
               **problems}
    return table, tuning, summary


def _pinned_store(study: Study, index: Index) -> tuple[str | None, int | None]:
    """(store id, vocab) as launch pinned them; from the store's manifest before any launch."""
    if index.pinned.get("store_id"):
        return str(index.pinned["store_id"]), index.pinned.get("vocab")
    if (study.store / "manifest.json").exists():
        return store_identity(study)
    return None, study.vocab_size or (study.prepare or {}).get("vocab_size")


def _kind_of_dir(run_dir: Path) -> str:
    """A run's kind from its directory's name, when its spec cannot be read: every kind but
    training names its directory after itself (``ensemble-...``, ``eval-...``)."""
    first = run_dir.name.split("-", 1)[0]
    return first if first in ("ensemble", "eval", "generate", "distill") else "train"


def _dirname(spec_json: dict) -> str:
    try:
        return kind_of(spec_json).spec_from_json(spec_json).dirname
    except (ValueError, TypeError, KeyError):
        return str(spec_json.get("id", "?"))


def _missing_inputs(spec: dict, snap: Snapshot) -> list[str]:
    """The runs a finished ensemble, student or eval was built on that are no longer there
    and succeeded: its rows must not be analysed (no law rests on a deleted run)."""
    inputs = [*spec.get("member_ids", ()), *spec.get("teacher_ids", ()), *spec.get("runs", ())]
    return [rid for rid in dict.fromkeys(inputs) if snap.state(rid) != "succeeded"]


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
    """What a row is to the analysis (scaling's ROLES): what the study says of its recipes and
    distillations (an eval row takes the role of the model it evaluated), else the contract's
    default for a producer that lists them all (an ensemble's rows and its members')."""
    if label in study.recipes:
        return study.recipes[label].role
    if label in {d.name for d in study.distill}:
        return "distill"
    return default_role(label, str(spec.get("kind")), listed=True)


def _label(spec: dict) -> str:
    """The recipe column of a run the launch index does not label: from its kind."""
    return {"train": "other", "ensemble": "ensemble", "eval": "downstream"}.get(
        spec.get("kind"), spec.get("kind") or "?")


def _placeholder_rows(spec: dict, vocab: int | None = None) -> list[dict]:
    """Rows for a run without results: spec fields, empty metrics."""
    if spec.get("kind") == "train":
        row = train_rows(spec, None)[0]
        if vocab and not spec.get("init_from"):  # a continued run's shape is its base's, unread here
            row["n_params"], row["n_params_non_embedding"] = param_counts(TrainSpec.from_json(spec).shape(vocab))
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


def curves_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every succeeded training run's metrics.csv (its loss over steps and epochs), one row per
    logged step, with its run id: what the report draws learning curves from. A run without
    the file (trained before runs logged metrics) has no curve; one that cannot be read is
    left out and named in the summary by collect's caller."""
    runs = table[(table["status"] == "succeeded") & table["kind"].isin(["train", "distill"])]
    frames = []
    for run_id, run_dir in runs.drop_duplicates("run_id")[["run_id", "run_dir"]].itertuples(index=False):
        path = Path(run_dir) / "metrics.csv"
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError):
            continue
        frames.append(frame.assign(run_id=run_id))
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True).reindex(columns=list(CURVE_COLUMNS))


def write_tables(study: Study, table: pd.DataFrame, tuning: pd.DataFrame) -> list[Path]:
    """results.parquet, results.csv, tuning.csv, curves.parquet (the runs' training curves)
    and analysis.json (how the study fits its laws, for `dcsl fit/report DIR`) in the study
    root (atomic writes)."""
    import io
    import json

    study.root.mkdir(parents=True, exist_ok=True)
    out = []
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    fitting = study.analysis
    settings = {"study": study.name, "n_boot": fitting.n_boot, "bootstrap": fitting.bootstrap,
                "x_column": fitting.x_column, "method": fitting.method, "level": fitting.level,
                "rule": fitting.rule, "main_budget": study.main_budget,
                # the reference study's phenomena are checked where it has both recipes
                "phenomena": {r.role for r in study.recipes.values()} >= {"standard", "regularized"}}
    curves = io.BytesIO()
    (curves_table(table) if not table.empty else pd.DataFrame(columns=list(CURVE_COLUMNS))
     ).to_parquet(curves, index=False)
    for name, data in (("results.parquet", buf.getvalue()),
                       ("results.csv", table.to_csv(index=False).encode()),
                       ("tuning.csv", tuning.to_csv(index=False).encode()),
                       (CURVES_FILE, curves.getvalue()),
                       (ANALYSIS_FILE, (json.dumps(settings, indent=2) + "\n").encode())):
        atomic_write_bytes(study.root / name, data)
        out.append(study.root / name)
    return out


def status_table(study: Study) -> tuple[pd.DataFrame, list[str]]:
    """Counts of runs per (kind, recipe, size, budget) and state, plus a line for every run that
    failed, cannot be read or was built on runs that are gone."""
    table, _, summary = collect(study)
    problems = [f"{key}: {line}" for key in ("failed", "unreadable", "orphaned") for line in summary[key]]
    if table.empty:
        return table, problems
    table = table.copy()
    tokens = table.get("budget_tokens", pd.Series(dtype=float))
    table["budget"] = tokens.map(_fmt_tokens)
    table["_tokens"] = pd.to_numeric(tokens, errors="coerce")
    counts = (table.groupby(["kind", "recipe", "size", "_tokens", "budget", "status"], dropna=False).size()
              .unstack("status", fill_value=0))
    for state in STATUSES:
        if state not in counts.columns:
            counts[state] = 0
    # Budgets in numeric order (8k before 16k), not as text
    counts = counts[list(STATUSES)].reset_index().sort_values(["kind", "recipe", "_tokens", "size"])
    return counts.drop(columns="_tokens").reset_index(drop=True), problems


def _fmt_tokens(n: object) -> str:
    if not isinstance(n, int | float) or (isinstance(n, float) and math.isnan(n)):
        return ""
    from pretrain.spec import human_tokens

    return human_tokens(int(n))

