"""Two-variable laws fitted to a table's points, one per group: `dcsl fit TABLE --law ...`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scaling.fit.allocation import Allocation, optimal_allocation
from scaling.fit.bootstrap import DEFAULT_LEVEL, DEFAULT_N_BOOT
from scaling.fit.joint import JointLawFit, fit_chinchilla_law, fit_data_constrained_law
from scaling.fit.power_law import FitInputError
from scaling.table.points import JointPoints


@dataclass(frozen=True, eq=False)
class JointTableLaw:
    """One group's law, or why it could not be fitted, and its optimal allocation."""

    group: object | None
    n_points: int
    fit: JointLawFit | None
    warnings: list[str] = field(default_factory=list)
    allocation: Allocation | None = None


def fit_joint_table_laws(
    points: JointPoints, law: str, *, method: str = "huber-log", n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0, level: float = DEFAULT_LEVEL, bootstrap: str = "pairs",
    fixed: Mapping[str, float] | None = None, noise: float | None = None,
    compute: float | None = None, data_limit: float | None = None,
) -> list[JointTableLaw]:
    """Fit `law` to every group (one seed for all, so an ungrouped fit equals the library
    call); with `compute`, each law's optimal allocation too. An ungrouped law that cannot be
    fitted is an error; a group that cannot be is reported and the others still fitted."""
    out = []
    for value, rows in points.groups():
        args = [rows["n"].to_numpy(float), rows["d"].to_numpy(float)]
        if law == "data-constrained":
            args.append(rows["u"].to_numpy(float))
        args.append(rows["y"].to_numpy(float))
        fitter = fit_chinchilla_law if law == "chinchilla" else fit_data_constrained_law
        try:
            fit = fitter(*args, method=method, n_boot=n_boot, seed=seed, level=level,
                         bootstrap=bootstrap, fixed=fixed, noise=noise)
        except FitInputError as exc:
            if points.group is None:
                raise
            out.append(JointTableLaw(value, len(rows), None, [f"not fitted: {exc}"]))
            continue
        allocation, notes = None, []
        if compute is not None:
            limit = data_limit
            if limit is None and law == "data-constrained":
                budgets = np.unique(rows["u"].to_numpy(float))
                limit = float(budgets.max())
                notes.append(f"allocation at the largest unique-token budget in the table "
                             f"({limit:.3g}); --data-limit sets another")
            allocation = optimal_allocation(fit, compute, unique_tokens=limit)
        out.append(JointTableLaw(value, len(rows), fit, list(fit.warnings) + notes, allocation))
    return out
