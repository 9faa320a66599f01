"""The stages of a study, in order; each asks for the specs it wants given the run store.

    resume     runs an earlier launch planned but that never finished
    tune       every (recipe, budget, size) cell: the grid, or the adaptive frontier
    members    ensemble members at each tuned point, under the member rule
    ensembles  the nested-K ensemble losses of each finished member set
    teachers   synthetic data sampled from each distillation teacher
    students   distillation students (sequence-level on the mixture, or token-level)
    evals      downstream benchmarks of the best models

A stage returns (label, spec) pairs; the label ("ensemble", a distillation's name,
the evaluated model's recipe) becomes the ``recipe`` column of the results table.
Each stage sees only finished work of earlier stages, so re-running is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eval.kinds import STUDY_SPLIT
from scaling.table.contract import MEMBER_RECIPE
from sweeps.planning.plan import (
    cell_points,
    cell_recipes,
    cells,
    member_cells,
    member_specs,
    settled,
    train_spec,
)
from sweeps.planning.preflight import EVAL_DATA, EVAL_SOURCE
from sweeps.planning.tune import next_points
from sweeps.runs import KINDS, Snapshot, kind_of, search_key
from sweeps.study import Distill, Recipe, Study, shape_of

Labelled = list[tuple[str, object]]
MEMBER_LABEL = MEMBER_RECIPE  # the recipe column of member runs (their role is "member")


@dataclass(frozen=True)
class Stage:
    name: str
    labelled_specs: Callable[[Study, Snapshot, str], Labelled]


def unfinished(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    """Tuning runs of this study whose round is open: pending or stale (an earlier launch, or
    another launcher, started them and did not finish), unreadable (launch moves the damaged
    directory aside and trains it again), or lost (an adaptive round proposed it and its
    directory is gone: the search's later decisions rest on it, so it is retrained, and from
    an equal result the search replays the same decisions).

    The tune stage never proposes open runs again (nor walks on from their cells), so they
    are resumed here, in every round. Only lattice points of the study's current cells are: a
    run left behind by an earlier version of the study file stays as it is. Runs of later
    stages need no resume: their stages propose them again for as long as they are unfinished.
    """
    if not any(state in ("pending", "stale", "unreadable") for state in snap.states.values()) and not (
            snap.proposed - set(snap.states)):
        return []
    out: dict[str, object] = {}
    for cell in cells(study):
        points = cell_points(study, snap, store_id, *cell)
        for p in points.waiting:
            rid = points.ids[p]
            spec_json = snap.specs.get(rid)
            # An open run resumes as it stands (its operational fields too); a lost or
            # damaged one is planned afresh from the study.
            out[rid] = (kind_of(spec_json).spec_from_json(spec_json)
                        if spec_json and snap.state(rid) in ("pending", "stale") else points.specs[p])
    return [("resume", spec) for _, spec in sorted(out.items())]


def tune(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    """The next round of every tuning cell.

    Proposals come only from finished rounds. Recipes share the runs of a (budget, size) (the
    standard recipe's points are lattice points of the regularized one too), so a cell walks
    on only when no tuning run of its (budget, size) is open: what each round sees, and so the
    whole search, is then the same whether one launcher or several work the study, and
    whatever their timing. Open runs (pending, or stale after a crash) are proposed by the
    resume stage, so that they get run and their round closes.
    """
    out, searching = [], set()
    repeats = []
    points = {(r.name, b, s): cell_points(study, snap, store_id, r, b, s) for r, b, s in cells(study)}
    busy = {(b, s) for (_, b, s), cell in points.items() if cell.running or cell.waiting}
    for recipe, budget, size in cells(study):
        if recipe.at_tuned_point:
            repeats.append((recipe, budget, size))
            continue
        cell = points[(recipe.name, budget, size)]
        if (budget, size) in busy:
            searching.add((recipe.name, size))  # its open runs are the resume stage's
            continue
        # Rounds count across launches (search.json), so a rerun continues, never restarts.
        rounds_done = snap.rounds.get(search_key(recipe.name, budget, size), 0)
        for p in next_points(recipe, study.lattice, cell.losses, cell.running | cell.broken, rounds_done):
            out.append((recipe.name, train_spec(study, store_id, budget, size, p)))
            searching.add((recipe.name, size))
    # Data-scaling repeats train at the main budget's tuned point, once that search ended.
    for recipe, budget, size in repeats:
        p = _repeat_point(study, snap, store_id, recipe, size)
        if p is not None and (recipe.name, size) not in searching:
            out.append((recipe.name, train_spec(study, store_id, budget, size, p)))
    return out


def _repeat_point(study: Study, snap: Snapshot, store_id: str, recipe: Recipe, size: str):  # noqa: ANN202
    """The tuned point of ``size`` at the recipe's smallest main budget (None until tuned)."""
    main = [r for r, b, s in cells(study) if r.name == recipe.name and s == size and not r.at_tuned_point]
    budget = min(recipe.budgets or study.budgets)
    if not main:
        return None
    t, _ = settled(study, snap, store_id, main[0], budget, size)
    return t.best


def members(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    return [(MEMBER_LABEL, s) for specs in member_specs(study, snap, store_id).values() for s in specs]


def _finished_members(study: Study, snap: Snapshot, store_id: str) -> dict[tuple[int, str], list[str]]:
    """Member sets whose every run succeeded, as run ids in member order."""
    out = {}
    for key, specs in member_specs(study, snap, store_id).items():
        if specs and all(snap.state(s.run_id) == "succeeded" for s in specs):
            out[key] = [s.run_id for s in specs]
    return out


def ensembles(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    out = []
    for (_, size), ids in _finished_members(study, snap, store_id).items():
        out.append(("ensemble", KINDS["ensemble"].spec(
            size=size, member_ids=tuple(ids), member_dirs=_dirs(snap, ids), store=str(study.store),
            store_id=store_id, seq_len=study.training.seq_len,
            rules=study.ensembles.rules, threads=study.training.threads)))
    return out


def _dirs(snap: Snapshot, ids: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(snap.dirs[rid]) for rid in ids)


def _teacher_ids(study: Study, snap: Snapshot, store_id: str, d: Distill) -> list[str] | None:
    """Run ids of a distillation's teacher, or None while they are unfinished."""
    if d.teacher == "ensemble":
        ids = _finished_members(study, snap, store_id).get((d.budget, d.teacher_size))
        return ids[: d.members] if ids and len(ids) >= d.members else None
    _, rid = settled(study, snap, store_id, study.source_recipe, d.budget, d.teacher_size)
    return [rid] if rid and snap.state(rid) == "succeeded" else None


def _student_point(study: Study, snap: Snapshot, store_id: str, d: Distill) -> dict | None:
    t, _ = settled(study, snap, store_id, study.source_recipe, d.budget, d.student_size)
    return dict(t.best) if t.best else None


def _generate_spec(study: Study, snap: Snapshot, store_id: str, d: Distill, ids: list[str],  # noqa: ANN202
                   point: dict):
    tokens = d.synthetic_tokens_for(point["epochs"])
    return KINDS["generate"].spec(
        teacher_ids=tuple(ids), teacher_dirs=_dirs(snap, ids),
        store=str(study.store), store_id=store_id, tokens=tokens, seed=study.seed,
        seq_len=study.training.seq_len, temperature=d.temperature,
        threads=study.training.threads)


def teachers(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    out = []
    for d in study.distill:
        ids, point = _teacher_ids(study, snap, store_id, d), _student_point(study, snap, store_id, d)
        if d.method == "sequence" and ids and point:
            out.append((f"{d.name}-teacher", _generate_spec(study, snap, store_id, d, ids, point)))
    return out


def students(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    student = KINDS["distill"].spec
    out = []
    for d in study.distill:
        ids, point = _teacher_ids(study, snap, store_id, d), _student_point(study, snap, store_id, d)
        if not (ids and point):
            continue
        base = train_spec(study, store_id, d.budget, d.student_size, tuple(point.items())).to_json()
        base = {k: v for k, v in base.items() if k not in ("kind", "id")}
        teacher = {"teacher_ids": tuple(ids), "teacher_dirs": _dirs(snap, ids)}
        if d.method == "token":
            out.append((d.name, student(**base, **teacher, mode="token", kd_temperature=d.temperature)))
            continue
        gen = _generate_spec(study, snap, store_id, d, ids, point)
        if snap.state(gen.run_id) != "succeeded":
            continue
        synthetic = snap.dirs[gen.run_id] / "store"
        out.append((d.name, student(**base, **teacher, mode="sequence", synthetic_store=str(synthetic),
                                    synthetic_store_id=snap.results[gen.run_id]["store_id"],
                                    synthetic_weight=d.synthetic_weight)))
    return out


def evals(study: Study, snap: Snapshot, store_id: str) -> Labelled:
    """Downstream evals of the best finished model of each requested kind.

    The identity of the eval data is pinned once per launch (``pin_eval_data``) and read
    from the snapshot, so planning opens no dataset; without it nothing is planned here.
    """
    e = study.evals
    data = snap.pinned.get(EVAL_DATA)
    if e is None or data is None:
        return []
    out = []
    for label, ids in _models_to_evaluate(study, snap, store_id).items():
        if label in evaluated(study):
            first = snap.specs[ids[0]]
            nested = eval_rules(study, label) != ("logit-mean",)
            for rule in eval_rules(study, label):
                out.append((label, KINDS["eval"].spec(
                    runs=tuple(ids), data=data, tasks=e.tasks, limit=e.limit, split=STUDY_SPLIT, **e.fewshot,
                    rule=rule, nested=nested, members=_dirs(snap, ids), source=EVAL_SOURCE,
                    threads=study.training.threads,
                    label=kind_of(first).spec_from_json(first).readable_name())))
    return out


def evaluated(study: Study) -> tuple[str, ...]:
    """The models the study's evals score, by label: each recipe named in ``evals.models``
    (its best model), the ensemble, and the students (by name, or all as ``students``)."""
    if study.evals is None:
        return ()
    models = study.evals.models
    labels = [name for name in study.recipes if name in models]
    labels += ["ensemble"] if "ensemble" in models and study.ensembles is not None else []
    return (*labels, *(d.name for d in study.distill if d.name in models or "students" in models))


def eval_rules(study: Study, label: str) -> tuple[str, ...]:
    """The combination rules ``label`` is evaluated under, one eval run each: the ensemble under
    each of the study's rules, for every K, when nested evals are asked (soups too)."""
    nested = label == "ensemble" and study.evals.nested_ensembles and study.ensembles is not None
    return study.ensembles.rules if nested else ("logit-mean",)


def _models_to_evaluate(study: Study, snap: Snapshot, store_id: str) -> dict[str, list[str]]:
    """label -> run ids: each recipe's best single model at the main budget, the
    ensemble of the largest size, and every finished student.

    A model is chosen only once every candidate has finished (all of a recipe's cells
    settled), so which model is evaluated never depends on which run happened to end first.
    """
    budget = study.main_budget
    out: dict[str, list] = {}
    for recipe in study.recipes.values():
        outcomes = [settled(study, snap, store_id, recipe, budget, size)
                    for r, b, size in cells(study) if r.name == recipe.name and b == budget]
        if not outcomes or any(rid is None or snap.state(rid) != "succeeded" for _, rid in outcomes):
            continue
        _, rid = min(outcomes, key=lambda o: o[0].loss)
        out[recipe.name] = [rid]
    if study.ensembles is not None:
        key = max(member_cells(study), key=lambda k: (k[0] == budget, _depth_width(study, k[1])))
        finished = _finished_members(study, snap, store_id)
        if key in finished:
            out["ensemble"] = finished[key]
    for label, spec in students(study, snap, store_id):
        if snap.state(spec.run_id) == "succeeded":
            out[label] = [spec.run_id]
    return out


def _depth_width(study: Study, size: str) -> int:
    shape = shape_of(study, size, 1)
    return shape.d_model * shape.n_layers


STAGES: list[Stage] = [
    Stage("resume", unfinished),
    Stage("tune", tune),
    Stage("members", members),
    Stage("ensembles", ensembles),
    Stage("teachers", teachers),
    Stage("students", students),
    Stage("evals", evals),
]


def plan_all(study: Study, snap: Snapshot, store_id: str) -> dict[str, Labelled]:
    """What every stage asks for, given the snapshot: stage name -> (label, spec) pairs."""
    return {stage.name: stage.labelled_specs(study, snap, store_id) for stage in STAGES}


def index_entries(study: Study, planned: dict[str, Labelled], snap: Snapshot, store_id: str
                  ) -> dict[str, tuple[str, tuple[str, ...], dict]]:
    """What launch records of each planned run (``sweeps.runs.index``): run id -> (stage, the
    labels the results table shows it under, its spec). A training run is labelled by every
    recipe whose cell contains it, including finished runs no stage proposes any more (a
    study file that renames a recipe relabels them); a run of a later stage by the label its
    stage gave it."""
    out: dict[str, tuple[str, tuple[str, ...], dict]] = {}
    for recipe, budget, size in cells(study):
        points = cell_points(study, snap, store_id, recipe, budget, size)
        for rid in points.ids.values():
            if rid in snap.specs:
                out.setdefault(rid, ("tune", (), snap.specs[rid]))
                stage, labels, spec_json = out[rid]
                if recipe.name not in labels:
                    out[rid] = (stage, (*labels, recipe.name), spec_json)
    for stage, labelled in planned.items():
        for label, spec in labelled:
            rid = spec.run_id
            if rid in out and (out[rid][1] or stage == "resume"):
                continue
            spec_json = spec.to_json()
            labels = cell_recipes(study, spec_json, store_id) or ([] if stage == "resume" else [label])
            out[rid] = (stage, tuple(labels), spec_json)
    return out


def first_round(study: Study, store_id: str) -> Labelled:
    """(recipe, spec) that launch's first round trains: the tune stage on an empty store
    (repeat searches included; the other stages wait for finished inputs)."""
    return tune(study, Snapshot(study.root), store_id)
