"""``dcsl sweep plan``: what a study will run, stage by stage, and what it will cost.

Counts come from the code that launches: the first tuning round is what the tune stage
proposes on an empty run store, deduplicated by run id as ``launch`` does (recipes share
runs: the standard recipe's points are lattice points of the regularized one). What is
not knowable in advance is an estimate and says so: adaptive rounds beyond the first
(bounded by ``max_rounds``), and the cost of every run whose point is the tuned one (data-
scaling repeats, members, teachers, students), costed at the recipe's first point.

Compute is (training FLOPs per token, ~6N plus attention) x tokens seen; forward-only work
(ensemble losses, teacher sampling) is a third of that per token.

What the run store holds as succeeded is subtracted, stage by stage, into what is left: a
first-round run by its id, a later tuning run by the recipes whose cells contain it, a
member by the stage the launch index records, the other kinds by their kind. A training
stage's FLOPs left are its FLOPs less those of its finished runs; another's shrink in
proportion to its runs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import pandas as pd

from sweeps.planning import (
    cell_recipes,
    cell_tuned,
    cells,
    eval_rules,
    evaluated,
    first_round,
    forward_flops,
    grid_points,
    lattice_points,
    launched_base,
    member_cells,
    next_points,
    point,
    run_flops,
    store_identity,
    train_spec,
)
from sweeps.runs import Snapshot, read_index, search_key
from sweeps.study import Study

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of one H100 SXM


@dataclass(frozen=True)
class StageRuns:
    """The runs one stage will launch (for one recipe, where it says)."""

    stage: str
    detail: str
    runs: int
    exact: bool
    """False: ``runs`` is an estimate (adaptive rounds beyond the first)."""
    flops_by_size: dict[str, float] = field(default_factory=dict)
    runs_max: int | None = None
    """An upper bound where ``runs`` is an estimate."""
    note: str = ""
    succeeded: int = 0
    """Of its runs, those the run store holds as succeeded."""
    succeeded_flops_by_size: dict[str, float] = field(default_factory=dict)
    """Their training FLOPs (training stages only: another stage's left shrinks by its runs)."""
    run_ids: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """The exact runs, where known (launch's first round)."""
    left: int | None = None
    """Runs left where the stage knows better than ``runs - succeeded`` (an ended search)."""
    left_max: int | None = None

    @property
    def flops(self) -> float:
        return float(sum(self.flops_by_size.values()))

    @property
    def runs_left(self) -> int:
        return max(0, self.runs - self.succeeded) if self.left is None else self.left

    @property
    def runs_max_left(self) -> int | None:
        if self.runs_max is None:
            return None
        return max(0, self.runs_max - self.succeeded) if self.left_max is None else self.left_max

    @property
    def flops_left_by_size(self) -> dict[str, float]:
        if not self.succeeded and self.left is None:
            return dict(self.flops_by_size)
        if not self.runs_left:
            return dict.fromkeys(self.flops_by_size, 0.0)
        if self.succeeded_flops_by_size and self.left is None:
            return {size: max(0.0, f - self.succeeded_flops_by_size.get(size, 0.0))
                    for size, f in self.flops_by_size.items()}
        return {size: f * self.runs_left / self.runs for size, f in self.flops_by_size.items()}

    @property
    def flops_left(self) -> float:
        return float(sum(self.flops_left_by_size.values()))

    def to_dict(self) -> dict[str, object]:
        return {"stage": self.stage, "detail": self.detail, "runs": self.runs, "exact": self.exact,
                "runs_max": self.runs_max, "flops": self.flops, "flops_by_size": dict(self.flops_by_size),
                "note": self.note, "succeeded": self.succeeded, "runs_left": self.runs_left,
                "runs_max_left": self.runs_max_left, "flops_left": self.flops_left}


@dataclass(frozen=True)
class PlanSummary:
    table: pd.DataFrame
    """One row per tuning cell: the runs its first round proposes and its full lattice."""
    total_runs_now: int
    """Launch's first round: unique run ids over every cell."""
    total_flops_now: float
    full_lattice_runs: int
    full_lattice_flops: float
    member_runs: int
    member_flops: float
    store_id: str
    stages: tuple[StageRuns, ...] = ()
    vocab: int = 0

    @property
    def succeeded(self) -> int:
        """Planned runs that have succeeded already (counted in their stages)."""
        return sum(st.succeeded for st in self.stages)


def summarize(study: Study, vocab: int | None = None) -> PlanSummary:
    study = launched_base(study)  # a launched base study counts its runs by their real ids
    store_id, store_vocab = store_identity(study)
    vocab = vocab or store_vocab
    if not vocab:
        raise ValueError(f"{study.path}: the vocabulary size is unknown before the store exists; "
                         "pass --vocab-size (e.g. 128256 for the Llama-3 tokenizer)")
    snap = Snapshot.read(study.root)
    first = first_round(study, store_id)
    rows = []
    for recipe, budget, size in cells(study):
        if recipe.at_tuned_point:
            search, now = "repeat", [stand_in_point(study, recipe)]
            full = now
        else:
            search = recipe.search
            now = next_points(recipe, study.lattice, {}, set(), 0)
            full = grid_points(recipe, study.lattice) if search == "grid" else lattice_points(study, recipe)
        specs_now = [train_spec(study, store_id, budget, size, p) for p in now]
        specs_full = [train_spec(study, store_id, budget, size, p) for p in full]
        rows.append({
            "recipe": recipe.name, "search": search, "size": size, "budget_tokens": budget,
            "runs": len(specs_now), "full_lattice": len(specs_full),
            "succeeded": sum(snap.state(s.run_id) == "succeeded" for s in specs_full),
            "flops": sum(run_flops(s, vocab, study) for s in specs_now),
            "flops_full": sum(run_flops(s, vocab, study) for s in specs_full),
        })
    table = pd.DataFrame(rows)
    unique_first = {s.run_id: s for _, s in first}
    stages = tuple(with_succeeded(study, store_id, vocab, snap, stage_runs(study, store_id, vocab, first), first))
    members = next((s for s in stages if s.stage == "ensemble members"), None)
    return PlanSummary(table, len(unique_first), sum(run_flops(s, vocab, study) for s in unique_first.values()),
                       int(table["full_lattice"].sum()), float(table["flops_full"].sum()),
                       members.runs if members else 0, members.flops if members else 0.0, store_id,
                       stages, int(vocab))


def stand_in_point(study: Study, recipe) -> tuple:  # noqa: ANN001 - a Recipe
    """The recipe's first point: it stands in for a tuned point that is not known yet."""
    return (grid_points(recipe, study.lattice)[0] if recipe.search == "grid"
            else point({**recipe.start, **recipe.fixed}))


def stage_runs(study: Study, store_id: str, vocab: int, first: list) -> list[StageRuns]:
    """Runs per stage, in launch order; shared first-round runs count once (under the first
    recipe that proposes them)."""
    out: list[StageRuns] = []
    seen: set[str] = set()
    repeat_cells = {(r.name, b) for r in study.recipes.values() for b in r.repeat_budgets}
    for repeat in (False, True):
        for name in study.recipes:
            specs = [s for n, s in first if n == name and ((n, s.tokens) in repeat_cells) == repeat]
            new = {s.run_id: s for s in specs if s.run_id not in seen}
            seen |= set(new)
            if not specs:
                continue
            shared = len({s.run_id for s in specs}) - len(new)
            out.append(StageRuns("data-scaling repeats, round 1" if repeat else "tuning, round 1", name,
                                 len(new), True, _by_size(study, new.values(), vocab),
                                 note=f"{shared} more shared with an earlier recipe" if shared else "",
                                 run_ids=frozenset(new)))
    out += _later_rounds(study, store_id, vocab, first)
    out += _repeats_at_tuned_point(study, store_id, vocab)
    out += _after_tuning(study, store_id, vocab)
    return out


# Stages of runs other than training, by the stage the launch index records and by kind.
OTHER_STAGES = {"ensembles": "ensemble evals", "teachers": "teachers", "students": "students",
                "evals": "evals"}
KIND_STAGES = {"ensemble": "ensemble evals", "generate": "teachers", "distill": "students",
               "eval": "evals"}


def with_succeeded(study: Study, store_id: str, vocab: int, snap: Snapshot,
                   stages: list[StageRuns], first: list) -> list[StageRuns]:
    """``stages`` with the runs of each that succeeded already (see the module docstring)."""
    from pretrain.spec import TrainSpec

    done = {rid: snap.specs[rid] for rid, state in snap.states.items()
            if state == "succeeded" and rid in snap.specs}
    if not done:
        return stages
    index = read_index(study.root)
    planned = index.runs if index is not None else {}
    variant = {(r.name, b, s): r for r, b, s in cells(study)}
    found: dict[tuple[str, str], list[dict]] = defaultdict(list)
    in_round_1 = {rid: (st.stage, st.detail) for st in stages for rid in st.run_ids}
    for rid, spec in done.items():
        where = in_round_1.get(rid)
        if where is None and spec.get("kind") == "train":
            recipes = [variant[(name, spec["tokens"], spec["size"])]
                       for name in cell_recipes(study, spec, store_id)]
            later = [r for r in recipes if r.at_tuned_point or r.search == "adaptive"]
            if later:
                where = ("data-scaling repeats" if later[0].at_tuned_point else "tuning, later rounds",
                         later[0].name)
            elif not recipes and rid in planned and planned[rid].stage == "members":
                where = ("ensemble members", study.ensembles.from_recipe if study.ensembles else "")
        elif where is None and (rid in planned or index is None):
            stage = planned[rid].stage if rid in planned else ""
            where = (OTHER_STAGES.get(stage) or KIND_STAGES.get(spec.get("kind", ""), ""), "")
        if where is not None:
            found[where].append(spec)
    out = []
    for st in stages:
        specs = found.get((st.stage, st.detail), [])
        trained = [TrainSpec.from_json(s) for s in specs if s.get("kind") == "train"]
        flops = _by_size(study, trained, vocab) if trained and len(trained) == len(specs) else {}
        st = replace(st, succeeded=len(specs), succeeded_flops_by_size=flops)
        later = st.stage == "tuning, later rounds"
        out.append(_later_left(study, store_id, snap, st, specs, first) if later else st)
    return out


def _by_size(study: Study, specs, vocab: int) -> dict[str, float]:  # noqa: ANN001
    flops: dict[str, float] = defaultdict(float)
    for s in specs:
        flops[s.size] += run_flops(s, vocab, study)
    return dict(flops)


def _later_cells(study: Study, first: list) -> list[tuple]:
    """(recipe, budget, size, runs expected, their bound, first-round specs) of every adaptive
    cell with rounds after the first."""
    out = []
    for r, budget, size in cells(study):
        if r.search != "adaptive" or r.at_tuned_point or r.max_rounds < 2:
            continue
        per_round = 2 * len(r.free_axes()) - 1
        specs = [s for n, s in first if n == r.name and s.tokens == budget and s.size == size]
        left = max(0, len(lattice_points(study, r)) - len(specs))
        out.append((r, budget, size, min(per_round, left), min((r.max_rounds - 1) * per_round, left), specs))
    return out


def _later_rounds(study: Study, store_id: str, vocab: int, first: list) -> list[StageRuns]:
    """Adaptive rounds 2..max_rounds: each adds the missing neighbours of a new best (at most
    2 x free axes - 1 points). Estimate: one more round per cell (a start one step from the
    optimum); the bound: every round runs, within the lattice."""
    out = []
    later = _later_cells(study, first)
    for name in study.recipes:
        expected, bound, flops = 0, 0, defaultdict(float)
        for r, _, size, n, most, specs in later:
            if r.name == name:
                expected, bound = expected + n, bound + most
                flops[size] += sum(run_flops(s, vocab, study) for s in specs) / max(len(specs), 1) * n
        if bound:
            out.append(StageRuns("tuning, later rounds", name, expected, False, dict(flops), bound,
                                 "estimate: one more round per cell; the bound runs every round"))
    return out


def _later_left(study: Study, store_id: str, snap: Snapshot, st: StageRuns, done: list[dict],
                first: list) -> StageRuns:
    """A later-rounds stage with what is left of each cell: none once its search has ended
    (certified, or out of rounds), else its estimate less its succeeded later runs."""
    left = most = 0
    for r, budget, size, n, bound, _ in _later_cells(study, first):
        if r.name != st.detail:
            continue
        tuned, _ = cell_tuned(study, snap, store_id, r, budget, size)
        if tuned.certified or snap.rounds.get(search_key(r.name, budget, size), 0) >= r.max_rounds:
            continue
        ran = sum(s["tokens"] == budget and s["size"] == size for s in done)
        left, most = left + max(0, n - ran), most + max(0, bound - ran)
    return replace(st, left=left, left_max=most)


def _repeats_at_tuned_point(study: Study, store_id: str, vocab: int) -> list[StageRuns]:
    out = []
    for name in study.recipes:
        specs = [train_spec(study, store_id, b, s, stand_in_point(study, r))
                 for r, b, s in cells(study) if r.name == name and r.at_tuned_point]
        if specs:
            out.append(StageRuns("data-scaling repeats", name, len(specs), True, _by_size(study, specs, vocab),
                                 note="one run each at the tuned point (costed at the first point)"))
    return out


def _start_point(study: Study) -> dict | None:
    """The ensemble source recipe's first point: members, teachers and students train at its
    tuned point, which is not known yet."""
    if study.ensembles is None and not study.distill:
        return None
    return dict(stand_in_point(study, study.source_recipe))


def _member_point(study: Study, start: dict) -> tuple[tuple, bool]:
    """The member rule applied to ``start``, and whether it keeps the point (member 0 is then
    the tuned run itself, already trained)."""
    shifted = point(study.ensembles.member_point(start))
    return shifted, shifted == point(start)


def val_tokens(study: Study) -> int:
    """Validation tokens of the store (or of its prepare section; 0 when unknown)."""
    from pretrain.store import TokenStore, parse_tokens

    if (study.store / "manifest.json").exists():
        return int(TokenStore(study.store).val_size)
    value = (study.prepare or {}).get("val_tokens")
    return parse_tokens(value) if value else 0


def _after_tuning(study: Study, store_id: str, vocab: int) -> list[StageRuns]:
    start = _start_point(study)
    if start is None:
        return []
    out = []
    seq_len = study.training.seq_len
    ens = study.ensembles
    if ens is not None:
        shifted, same = _member_point(study, start)
        new = ens.members - 1 if same else ens.members
        members = [train_spec(study, store_id, b, s, shifted, member=k)
                   for b, s in member_cells(study) for k in range(new)]
        out.append(StageRuns("ensemble members", ens.from_recipe, len(members), True, _by_size(study, members, vocab),
                             note=("member 0 is the tuned run; " if same else "")
                             + "costed at the first point"))
        scored: dict[str, float] = defaultdict(float)
        for _, size in member_cells(study):
            scored[size] += forward_flops(study, size, vocab, seq_len, ens.members * val_tokens(study))
        out.append(StageRuns("ensemble evals", "", len(member_cells(study)), True, dict(scored),
                             note="one per member set, every nested K" + (
                                 "" if val_tokens(study) else "; cost unknown until the store exists")))
    teachers: dict[str, float] = defaultdict(float)
    students: dict[str, float] = defaultdict(float)
    sequence = [d for d in study.distill if d.method == "sequence"]
    for d in study.distill:
        base = train_spec(study, store_id, d.budget, d.student_size, point(start))
        synthetic = d.synthetic_tokens_for(start["epochs"])
        teacher_work = forward_flops(study, d.teacher_size, vocab, seq_len, d.n_teachers * synthetic)
        students[d.student_size] += run_flops(base, vocab, study) / (1 - d.synthetic_weight)
        if d.method == "sequence":
            teachers[d.teacher_size] += teacher_work
        else:  # token-level: the teachers score every token the student sees
            students[d.teacher_size] += teacher_work
    if sequence:
        out.append(StageRuns("teachers", "", len(sequence), True, dict(teachers),
                             note="sampling, costed as forward passes"))
    if study.distill:
        out.append(StageRuns("students", "", len(study.distill), True, dict(students),
                             note="costed at the first point"))
    evals = _eval_count(study)
    if evals:
        out.append(StageRuns("evals", "", evals, True, {}, note="downstream tasks; compute not estimated (small)"))
    return out


def _eval_count(study: Study) -> int:
    """Eval runs ``sweeps.planning.stages.evals`` plans: one per model and combination rule."""
    return sum(len(eval_rules(study, label)) for label in evaluated(study))


def gpu_hours(flops: float, mfu: float, peak: float = H100_BF16_PEAK) -> float:
    return flops / (mfu * peak) / 3600.0
