"""Checks of a study that need more than one section: each a one-line, positioned error at load,
so that ``sweep plan`` and ``launch`` (which both load the study) refuse the same files before
any compute. Checks that need the store live in ``sweeps.planning.preflight``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eval.kinds import STUDY_SPLIT
from eval.taskdefs import TASKS
from pretrain.spec import steps_per_epoch
from sweeps.study.yamlpos import Positions, Section

if TYPE_CHECKING:
    from sweeps.study.study_ensembles import Distill, Ensembles


def check_sequences(pos: Positions, budgets: tuple[int, ...], seq_len: int, batch_size: int) -> None:
    """Every budget must make at least one batch of whole sequences (``TrainSpec``'s steps per
    epoch), or each of its runs would fail at its start."""
    for i, budget in enumerate(budgets):
        if steps_per_epoch(budget, seq_len, batch_size) == 0:
            sequences = (budget - 1) // seq_len
            raise pos.error(("budgets", i), f"a budget of {budget:,} tokens makes {sequences} sequences of "
                            f"{seq_len} tokens (training.seq_len), fewer than one batch of {batch_size} "
                            "(training.batch_size): raise the budget or lower seq_len or batch_size")


def check_tasks(sec: Section, tasks: tuple[str, ...]) -> None:
    """Task names that the eval registry knows, each with the split studies score (and draw
    few-shot examples from): checked from ``eval.taskdefs`` alone, no dataset opened."""
    sec.unique("tasks", list(tasks), "name the tasks, or leave the key out for the default ones")
    for j, name in enumerate(tasks):
        path = sec.path + ("tasks", j)
        if name not in TASKS:
            raise sec.pos.error(path, f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
        if STUDY_SPLIT not in TASKS[name].splits:
            raise sec.pos.error(path, f"{name} has no {STUDY_SPLIT} split, which studies score (its splits: "
                                f"{', '.join(TASKS[name].splits)}): score it with `dcsl eval` instead")


def check_distill(pos: Positions, distill: tuple[Distill, ...], recipes: dict[str, Any],
                  ensembles: Ensembles | None, budgets: tuple[int, ...], sizes: tuple[str, ...]) -> None:
    """Each student's teacher and hyperparameters must come from cells the study trains (the
    students stage waits for them otherwise, forever): an ensemble teacher from a member cell, a
    single teacher and the student's point from the source recipe's tuning cells."""
    for i, d in enumerate(distill):
        if d.teacher == "ensemble" and (ensembles is None or d.members > ensembles.members):
            raise pos.error(("distill", i, "members"), "an ensemble teacher needs an ensembles section "
                            "with at least this many members")
    if not distill:
        return
    source = recipes[ensembles.from_recipe] if ensembles else next(iter(recipes.values()))
    tuned = {(b, s) for b in (source.budgets or budgets) for s in (source.sizes or sizes)}
    tuned |= {(b, s) for b in source.repeat_budgets for s in source.repeat_sizes}
    members = set()
    if ensembles is not None:
        members = {(b, s) for b in ensembles.budgets or source.budgets or budgets
                   for s in ensembles.sizes or source.sizes or sizes}
    for i, d in enumerate(distill):
        at = f"{d.budget:,} tokens"
        if d.teacher == "ensemble" and (d.budget, d.teacher_size) not in members:
            raise pos.error(("distill", i, "teacher_size"), f"the ensembles section trains no members of "
                            f"{d.teacher_size} at {at}: an ensemble teacher is one of its (budget, size) cells")
        if d.teacher == "single" and (d.budget, d.teacher_size) not in tuned:
            raise pos.error(("distill", i, "teacher_size"), f"recipe {source.name} (the students' source) "
                            f"tunes no {d.teacher_size} at {at}, so there is no teacher to distill")
        if (d.budget, d.student_size) not in tuned:
            raise pos.error(("distill", i, "student_size"), f"a student trains at recipe {source.name}'s tuned "
                            f"point, and it tunes no {d.student_size} at {at}")


def check_models(sec: Section, models: tuple[str, ...], recipes: dict[str, Any], ensembles: Ensembles | None,
                 distill: tuple[Distill, ...]) -> None:
    """Which models an eval section scores: recipe names, "ensemble" and "students"; listed
    explicitly, each must exist in the study (the defaults are taken where they do)."""
    sec.unique("models", list(models), "name the models, or leave the key out for the default ones")
    known = {*recipes, "ensemble", "students"}
    for j, m in enumerate(models):
        if m not in known:
            raise sec.pos.error(sec.path + ("models", j), f"unknown model {m!r}; use {', '.join(sorted(known))}")
        lacking = {"ensemble": "ensembles" if ensembles is None else "", "students": "" if distill else "distill"}
        if sec.has("models") and lacking.get(m):
            raise sec.pos.error(sec.path + ("models", j), f"the study has no {lacking[m]} section, so no {m} to score")
