"""Checks of a study that need more than one section: each a one-line, positioned error at load,
so that ``sweep plan`` and ``launch`` (which both load the study) refuse the same files before
any compute. Checks that need the store live in ``sweeps.planning.preflight``."""

from __future__ import annotations

from eval.kinds import STUDY_SPLIT
from eval.taskdefs import TASKS
from pretrain.spec import steps_per_epoch
from sweeps.study.yamlpos import Positions, Section


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
