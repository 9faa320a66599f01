"""`dcsl fit TABLE --x COLUMN --y COLUMN` and `dcsl fit TABLE --law ...`: laws fitted to the
columns of any table (the study analysis of a results table is ``scaling.cli``)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from scaling.cli import _check_level, resolve_settings
from scaling.fit.bootstrap import DEFAULT_LEVEL, DEFAULT_N_BOOT
from scaling.fit.power_law import FitInputError, fit_power_law
from scaling.table.load import LawPoints, law_points, read_table, resolve_results_path
from scaling.table.points import joint_points

if TYPE_CHECKING:
    import pandas as pd

    from scaling.report.tables import TableLaw


def run_single_law(args: argparse.Namespace) -> int:
    """`dcsl fit TABLE --x COLUMN --y COLUMN [--group COLUMN]`: needs no other column."""
    if args.x is None or args.y is None:
        what = ("--group needs --x and --y" if args.x is None and args.y is None
                else "--x and --y go together")
        raise ValueError(f"{what}: name the column of x and of the loss, e.g. "
                         f"`dcsl fit {args.table} --x n_params --y loss`")
    source = resolve_results_path(args.table)
    resolve_settings(args, source)
    _check_level(args.level)
    points = law_points(read_table(source), args.x, args.y, group=args.group,
                        source=str(source))
    try:
        laws = fit_table_laws(points, method=args.method, n_boot=args.n_boot, seed=args.bootstrap_seed,
                              level=args.level, bootstrap=args.bootstrap, noise=args.noise)
    except FitInputError as exc:
        raise FitInputError(f"{source}: {exc}") from exc
    from scaling.report import tables as summary

    settings = {"method": args.method, "n_boot": args.n_boot, "seed": args.bootstrap_seed,
                "level": args.level, "bootstrap": args.bootstrap}
    if args.json:
        payload = summary.table_laws_to_dict(laws, points, settings, source=str(source))
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(summary.table_laws_text(laws, points, settings, source=str(source)))
    return 0


def fit_table_laws(points: LawPoints, *, method: str = "huber-log",
                   n_boot: int = DEFAULT_N_BOOT, seed: int = 0, level: float = DEFAULT_LEVEL,
                   bootstrap: str = "pairs", noise: float | None = None) -> list[TableLaw]:
    """One law per group (or one law over all points), each with the same seed, so an
    ungrouped fit equals `fit_power_law(x, y, n_boot=..., seed=...)` in a notebook.

    Ungrouped, points that cannot be fitted are an error; grouped, a group that cannot be
    fitted (fewer than 3 points, say) is reported as not fitted and the others still are.
    """
    from scaling.report.tables import TableLaw

    frame = points.points
    if points.group is None:
        groups: list[tuple[object, pd.DataFrame]] = [(None, frame)]
    else:
        values = sorted(set(frame["group"]), key=_group_order)
        groups = [(value, frame[frame["group"] == value]) for value in values]
    laws = []
    for value, rows in groups:
        x, y = rows["x"].to_numpy(float), rows["y"].to_numpy(float)
        try:
            law = fit_power_law(x, y, method=method, n_boot=n_boot, seed=seed, level=level,
                                bootstrap=bootstrap, noise=noise)
        except FitInputError as exc:
            if points.group is None:
                skipped = f"; {points.n_skipped} skipped" if points.n_skipped else ""
                raise FitInputError(f"{points.x} -> {points.y}: {exc} ({len(x)} usable rows "
                                    f"of {points.n_rows}{skipped})") from exc
            laws.append(TableLaw(value, x, None, [f"not fitted: {exc}"]))
            continue
        laws.append(TableLaw(value, x, law, list(law.warnings)))
    return laws


def run_joint_law(args: argparse.Namespace) -> int:
    """`dcsl fit TABLE --law chinchilla|data-constrained [...]`."""
    from scaling.analysis.table_laws import fit_joint_table_laws
    from scaling.report import table_laws as render

    if args.x is not None:
        raise ValueError("--x is for a single law; a two-variable law takes --n, --d (and --u)")
    if args.json and args.markdown:
        raise ValueError("--json and --markdown: choose one output")
    fixed = _parse_fixed(args.fixed)
    source = resolve_results_path(args.table)
    resolve_settings(args, source)
    _check_level(args.level)
    points = joint_points(read_table(source), args.law, n=args.n, d=args.d, u=args.u, y=args.y,
                          group=args.group, x_column=args.x_column, source=str(source))
    try:
        laws = fit_joint_table_laws(points, args.law, method=args.method, n_boot=args.n_boot,
                                    seed=args.bootstrap_seed, level=args.level, bootstrap=args.bootstrap,
                                    fixed=fixed, noise=args.noise, compute=args.compute,
                                    data_limit=args.data_limit)
    except FitInputError as exc:
        raise FitInputError(f"{source}: {exc}") from exc
    settings = {"method": args.method, "n_boot": args.n_boot, "seed": args.bootstrap_seed,
                "level": args.level, "bootstrap": args.bootstrap, "fixed": fixed,
                "noise": args.noise, "compute": args.compute, "data_limit": args.data_limit}
    if args.json:
        payload = render.joint_laws_to_dict(laws, points, args.law, settings, source=str(source))
        print(json.dumps(payload, indent=2, allow_nan=False))
    elif args.markdown:
        print(render.joint_laws_markdown(laws, points, args.law, settings, source=str(source)))
    else:
        print(render.joint_laws_text(laws, points, args.law, settings, source=str(source)))
    return 0


def _parse_fixed(texts: list[str]) -> dict[str, float]:
    out = {}
    for text in texts:
        name, sep, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise ValueError(f"--fixed {text!r}: expected NAME=VALUE, e.g. --fixed R_D=15.4")
        out[name.strip()] = number
    return out


def _group_order(value: object) -> tuple[int, float, str]:
    """Numbers in numeric order, then text: budgets sort as budgets, recipes by name."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))
