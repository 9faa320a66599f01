"""How ``dcsl sweep plan`` shows a ``PlanReview``: a few short tables and one line per
problem, or everything as strict JSON (``--json``)."""

from __future__ import annotations

import json
import math

from pretrain.sizes import shape_fields
from pretrain.spec import human_tokens
from sweeps.review.lawreview import law_name, verdict
from sweeps.review.planreview import PlanReview


def render_text(r: PlanReview) -> str:
    study, s = r.study, r.summary
    lines = [f"study {study.name} ({study.path}): {len(study.budgets)} budgets x {len(study.sizes)} sizes, "
             f"recipes {', '.join(study.recipes)}",
             f"store {study.store} ({s.store_id}), vocab {s.vocab:,}"]
    if study.base is not None:
        lines.append(f"base {study.base.name}: every run continues {study.base.path} (shape from "
                     f"{study.base.config}; its content id is pinned at launch)")
    if r.succeeded_runs:
        lines.append(f"run store {study.root}: {r.succeeded_runs} runs succeeded already (launch skips them; "
                     "the stages below count theirs as succeeded and show what is left)")
    lines.append("")
    lines += [_table([{"size": x.name, "params": f"{x.total:,}", "non-embedding": f"{x.non_embedding:,}",
                       "embedding": f"{x.embedding_share:.0%}", "embedding + head": f"{x.vocab_share:.0%}"}
                      for x in r.sizes], right=("params", "non-embedding", "embedding", "embedding + head"))]
    lines += [f"custom size {name}: " + ", ".join(f"{k} {v}" for k, v in shape_fields(shape).items())
              for name, shape in study.custom_shapes.items()]
    lines.append("")
    if r.memory:
        lines += [_table([{"size": m.label, "strategy": m.strategy,
                           "micro-batch": f"{m.micro_batch}{' (picked)' if m.picked else ''}",
                           "GB per GPU": f"{m.gb:.1f}",
                           "largest that fits": "none" if m.fits is None else m.fits}
                          for m in r.memory], right=("GB per GPU",)),
                  "(memory is an estimate: pretrain/memory.py counts the tensors a step keeps; a picked "
                  "micro-batch is what launch gives each run while training.micro_batch_size is unset, "
                  "and under strategy auto each size trains as shown: ddp when a replica fits a GPU, "
                  "else fsdp)", ""]
    lines += [_stage_table(r)]
    if s.succeeded:
        lines.append(_left_line(r))
    if s.full_lattice_runs > s.total_runs_now:
        lines.append(f"(every tuning cell's full lattice instead: {s.full_lattice_runs:,} runs, "
                     f"{s.full_lattice_flops / 1e15:.3g} PFLOP)")
    lines.append("")
    lines += _time_lines(r) + [""]
    lines += [f"{f.level}: {f.message}" for f in r.findings] or ["design review: no problems found"]
    if r.simulation is not None:
        lines += [""] + _simulation_lines(r)
    return "\n".join(lines)


def _stage_table(r: PlanReview) -> str:
    """Runs and PFLOP per stage; with runs succeeded already, those and what is left too."""
    stages = r.summary.stages
    done = r.summary.succeeded > 0
    rows = []

    def row(stage: str, recipe: str, runs: str, flops: float, note: str, succeeded: int = 0,
            left: str = "", flops_left: float = 0.0) -> dict[str, object]:
        out: dict[str, object] = {"stage": stage, "recipe": recipe, "runs": runs}
        if done:
            out |= {"succeeded": str(succeeded), "left": left}
        out["PFLOP"] = f"{flops / 1e15:.3g}" if flops else "-"
        if done:
            out["PFLOP left"] = f"{flops_left / 1e15:.3g}" if flops_left else ("0" if flops else "-")
        return {**out, "note": note}

    first = [st for st in stages if st.stage.endswith("round 1")]
    for st in stages:
        runs = str(st.runs) if st.exact else f"~{st.runs} (<= {st.runs_max})"
        settled = st.exact or st.runs_left == st.runs_max_left  # an ended search: nothing to estimate
        left = str(st.runs_left) if settled else f"~{st.runs_left} (<= {st.runs_max_left})"
        rows.append(row(st.stage, st.detail or "", runs, st.flops, st.note, st.succeeded, left, st.flops_left))
        if first and st is first[-1]:
            ok = sum(x.succeeded for x in first)
            rows.append(row("= launch's first round", "", str(r.summary.total_runs_now), r.summary.total_flops_now,
                            "unique run ids: what launch runs first", ok,
                            str(max(0, r.summary.total_runs_now - ok)), sum(x.flops_left for x in first)))
    expected, bound, left, left_bound = _totals(stages)
    exact = all(st.exact for st in stages)
    rows.append(row("all stages", "", str(expected) if exact else f"~{expected} (<= {bound})",
                    sum(st.flops for st in stages), "" if exact else "~: estimates (adaptive rounds after the first)",
                    r.summary.succeeded, str(left) if left == left_bound else f"~{left} (<= {left_bound})",
                    sum(st.flops_left for st in stages)))
    return _table(rows, right=("runs", "succeeded", "left", "PFLOP", "PFLOP left"))


def _totals(stages) -> tuple[int, int, int, int]:  # noqa: ANN001
    """Runs expected, their bound, and the same of what is left, over ``stages``."""
    return (sum(st.runs for st in stages), sum(st.runs_max or st.runs for st in stages),
            sum(st.runs_left for st in stages),
            sum(st.runs_left if st.runs_max_left is None else st.runs_max_left for st in stages))


def _left_line(r: PlanReview) -> str:
    """E.g. "all stages ~114 runs, 104 succeeded, ~10 left"."""
    stages = r.summary.stages
    expected, _, left, left_bound = _totals(stages)
    approx = "" if all(st.exact for st in stages) else "~"
    return (f"all stages {approx}{expected} runs, {r.summary.succeeded} succeeded, "
            f"{'' if left == left_bound else '~'}{left} left")


def _table(rows: list[dict[str, object]], right: tuple[str, ...] = ()) -> str:
    """Rows as aligned columns, those named in ``right`` (numbers) aligned to the right."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [c in right for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)])


def _hours(hours: float) -> str:
    return f"{hours:.3g}" if hours < 1 else f"{hours:,.1f}" if hours < 1e5 else f"{hours:.3g}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _time_lines(r: PlanReview) -> list[str]:
    t, tp = r.time, r.throughput
    per_run = f"{tp.threads} thread{'s' if tp.threads > 1 else ''} per run"
    if tp.measured:
        probed = ", ".join(f"{size} {v:,.0f} tok/s" for size, v in tp.tokens_per_s.items())
        how = f"measured on {tp.cpu} ({per_run}): {probed} (probe {tp.seconds:.1f} s)"
    else:
        how = f"not measured on {tp.cpu} ({per_run})"
    lines = [f"time on this machine, {how}"]
    if tp.note:
        lines.append(f"  {tp.note}")

    def cost(seconds: float) -> str:
        text = f"{_hours(t.cpu_hours(seconds))} CPU-hours"
        wall = t.wall_s(seconds)
        return text + (f" ({_duration(wall)} at parallelism {t.parallelism})" if wall is not None else "")

    lines.append(f"  first round {cost(t.first_round_s)}; all stages ~{cost(t.study_s)}, "
                 f"at most {_hours(t.cpu_hours(t.study_max_s))} CPU-hours")
    if t.left_s is not None:
        lines.append(f"  left (succeeded runs taken off): ~{cost(t.left_s)}, at most "
                     f"{_hours(t.cpu_hours(t.left_max_s))} CPU-hours")
    o = r.options
    tr = r.study.training
    left = f" (~{_hours(t.gpu_hours_left)} left)" if t.gpu_hours_left is not None else ""
    lines.append(f"GPU: {t.gpus_per_run} per run (training.devices {tr.devices} x nodes {tr.nodes}, strategy "
                 f"{tr.strategy}); first round {_hours(t.gpu_hours_first)} GPU-hours, all stages "
                 f"~{_hours(t.gpu_hours_study)}{left}, at {o.mfu:.0%} MFU of {o.peak_tflops:g} TFLOP/s per GPU")
    if t.gpus_per_run > 1:
        lines.append(f"  each run's wall clock is its GPU-hours / {t.gpus_per_run}, at perfect scaling")
    return lines


def _budgets(budgets: tuple[int, ...]) -> str:
    if len(budgets) > 2:
        return f"{human_tokens(min(budgets))}-{human_tokens(max(budgets))}"
    return ", ".join(human_tokens(b) for b in budgets)


def _law_text(law, symbol: str) -> str:  # noqa: ANN001 - a scaling.synthetic.Law
    return f"{law.A:.3g} / {symbol}^{law.alpha:.2f} + {law.E:.3g}"


def _simulation_lines(r: PlanReview) -> list[str]:
    sim = r.simulation
    a = sim.assumed
    given = [k for k in ("size", "ensemble", "joint", "data") if k not in a.defaults]
    lines = [f"identifiability, simulated: {sim.n_sims} draws per law, noise {sim.noise:g} nats per point, "
             f"{r.study.analysis.bootstrap} bootstrap of {sim.n_boot} (the study's analysis); laws {'given: ' + ', '.join(given) if given else 'assumed'}"
             f" ({'defaults for the rest: ' if given else ''}the paper's shapes scaled to this design); "
             "identifiable: share of draws whose fit identifies the law (yes >= 80%, fragile >= 50%)"]
    symbols = {"size": "N", "ensemble": "K", "joint": "N", "data": "D"}
    rows = []
    for law in sim.laws:
        name = law_name(law.law)
        joint = sim.law("joint")
        if law.law == "ensemble" and joint is not None:
            name += f" (for each of {len(joint.x)} sizes)" if len(joint.x) > 1 else ""
        rows.append({"law": name, "at": _budgets(law.budgets), "points": len(law.x),
                     "identifiable": f"{law.identifiable_share:.0%} {verdict(law.identifiable_share)}",
                     "E median": _num(law.median_E), "E 95% width": _num(law.median_E_width),
                     "assumed law": _law_text(law.truth, symbols[law.law])})
    lines.append(_table(rows, right=("points", "identifiable", "E median", "E 95% width")))
    for m in sim.multipliers:
        interval = (f"median interval [{_num(m.median_low)}, {_num(m.median_high)}]"
                    if m.median_low is not None else "no interval")
        lines.append(f"effective-data multiplier, {m.recipe} at {human_tokens(m.budget)}: interval above 1 in "
                     f"{m.above_one_share:.0%} of draws ({interval}; true {m.truth:.3g})")
    lines += [_repeated_line(rep) for rep in sim.repeated]
    return lines


def _repeated_line(rep) -> str:  # noqa: ANN001 - a scaling.design.repeated.RepeatedSimulation
    """The data-constrained law of one recipe: what to vary, or how often R_D* is identified."""
    head = f"repeated data ({rep.recipe} recipe, data-constrained law, {rep.n_points} planned points): "
    if rep.missing:
        return head + "cannot be fitted; to identify R_D*, " + "; ".join(rep.missing)
    return (head + f"R_D* identified in {rep.identified_share:.0%} {verdict(rep.identified_share)} of "
            f"{rep.n_sims} draws (assumed R_D* = {rep.truth['R_D']:g}, R_N* = {rep.truth['R_N']:g}; "
            f"median fitted {_num(rep.median_R_D)})")


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "unbounded" if math.isinf(value) else f"{value:.3g}"


def to_json(r: PlanReview) -> str:
    """Everything the text shows and more (per-cell counts), as strict JSON."""
    study, s = r.study, r.summary
    data = {
        "study": study.name, "path": str(study.path), "root": str(study.root), "store": str(study.store),
        "store_id": s.store_id, "vocab": s.vocab, "succeeded_runs": r.succeeded_runs,
        "sizes": [x.to_dict() for x in r.sizes],
        "stages": [st.to_dict() for st in s.stages],
        "first_round_runs": s.total_runs_now, "first_round_flops": s.total_flops_now,
        "cells": s.table.to_dict(orient="records"),
        "throughput": r.throughput.to_dict(), "time": r.time.to_dict(),
        "findings": [f.to_dict() for f in r.findings],
        "simulation": None if r.simulation is None else r.simulation.to_dict(),
    }
    if study.custom_shapes:  # only then: the plans of studies without any stay as they were
        data["custom_sizes"] = {name: shape_fields(shape) for name, shape in study.custom_shapes.items()}
    return json.dumps(data, indent=2, allow_nan=False, default=_plain)


def _plain(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars from the cell table
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
