"""From a study and a snapshot of its run store to the runs it wants next, without torch or
any dataset: the tuning cells and their specs, the lattice search and its certificates, the
stages in order, the checks and pins plan and launch share (preflight), and what a run costs.
"""

from sweeps.planning.cost import forward_flops, run_flops
from sweeps.planning.plan import (
    cell_recipes,
    cell_tuned,
    cells,
    lattice_points,
    member_cells,
    store_identity,
    train_spec,
)
from sweeps.planning.preflight import (
    check_budgets,
    check_store_tokenizer,
    check_world,
    launched_base,
    pin_base,
    pin_eval_data,
    preflight_checks,
)
from sweeps.planning.stages import (
    MEMBER_LABEL,
    STAGES,
    eval_rules,
    evaluated,
    first_round,
    index_entries,
    plan_all,
)
from sweeps.planning.tune import Point, Tuned, grid_points, next_points, point, tuned

__all__ = [
    "MEMBER_LABEL", "STAGES", "Point", "Tuned", "cell_recipes", "cell_tuned", "index_entries", "cells", "check_budgets", "eval_rules", "evaluated",
    "check_store_tokenizer", "check_world", "first_round", "forward_flops", "grid_points",
    "lattice_points", "launched_base", "member_cells", "next_points", "pin_base", "pin_eval_data", "preflight_checks",
    "plan_all", "point", "run_flops", "store_identity", "train_spec", "tuned",
]
