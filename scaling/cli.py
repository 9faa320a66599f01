"""`dcsl fit` and `dcsl report`: the scaling package's command-line interface.

The `dcsl` console script calls register() to add both sub-commands; `python -m scaling.cli`
builds the same commands on its own parser. matplotlib is only imported by `report`.

`dcsl fit` does one of two things: the study analysis of a results table (the contract in
scaling/table/contract.py, printed by `dcsl fit --help`), or, with --x and --y, one law
L(x) = A / x^alpha + E fitted to two columns of any table (optionally one law per --group).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scaling.fit.bootstrap import BOOTSTRAPS, DEFAULT_LEVEL, DEFAULT_N_BOOT
from scaling.fit.power_law import METHODS, FitInputError, fit_power_law
from scaling.table.contract import REQUIRED_COLUMNS, RULES, X_COLUMNS, contract_help
from scaling.table.load import (
    LawPoints,
    TableError,
    law_points,
    load_tuning,
    missing_study_columns,
    read_table,
    resolve_results_path,
    validate_results,
)

if TYPE_CHECKING:
    import pandas as pd

    from scaling.analysis.study import StudyAnalysis
    from scaling.report.tables import TableLaw

SINGLE_LAW_HELP = """\
a single law (any table):
  dcsl fit points.csv --x n_params --y loss [--group budget_tokens]
  fits L(x) = A / x^alpha + E to two numeric columns and prints A, alpha and E with bootstrap
  intervals, the number of points, the decades x spans, the held-out error (the largest x
  predicted by a fit to the others) and every warning. Rows with a blank or NaN x or y are
  skipped and counted. A column may be named by its last word (params finds n_params).
  --json prints {"source", "x", "y", "settings", "rows", "rows_skipped", "law"} with "law"
  holding "n_points", "x_decades", "law", "fit" (A, alpha, E, intervals, ...) and "warnings";
  with --group, "group" names the column and "laws" lists one such law per value.

"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `fit` and `report` to a dcsl-style sub-command parser."""
    fit = subparsers.add_parser(
        "fit", help="fit scaling laws to a results table (or one law to any table)",
        # RawDescriptionHelpFormatter keeps the epilog's layout, so the description comes
        # wrapped by hand
        description="Fit the study's laws (asymptotes, double limits, data laws, effective-data\n"
                    "multipliers) to a results table and print them as tables or JSON; or, with\n"
                    "--x and --y, fit one law L(x) = A / x^alpha + E to two columns of any table.",
        epilog=SINGLE_LAW_HELP + contract_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("table", help="a results table or any table with --x/--y: .parquet or "
                                   ".csv, or a folder holding results.parquet / results.csv")
    fit.add_argument("--json", action="store_true",
                     help="print JSON instead of tables (default: tables)")
    single = fit.add_argument_group("a single law fitted to two columns of any table")
    single.add_argument("--x", metavar="COLUMN", default=None,
                        help="numeric column of x, e.g. n_params, budget_tokens or K (default: "
                             "none, which runs the study analysis)")
    single.add_argument("--y", metavar="COLUMN", default=None,
                        help="numeric column of the loss (default: none; needed with --x)")
    single.add_argument("--group", metavar="COLUMN", default=None,
                        help="fit one law per value of this column, e.g. budget_tokens or "
                             "recipe (default: none, one law over every row)")
    _add_fit_options(fit)
    _add_study_options(fit.add_argument_group("study analysis only (without --x/--y)"))
    fit.set_defaults(func=run_fit)

    report = subparsers.add_parser(
        "report", help="write figures and a markdown + HTML report",
        description="Analyse a results table and write <dir>/report/: report.md, report.html "
                    "and figures/*.png|pdf. A tuning.csv next to the table is included.",
        epilog="The results table's columns and values: `dcsl fit --help` or\n"
               "docs/results-table.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("table_or_dir", metavar="TABLE_OR_DIR",
                        help="results.parquet / results.csv, or a folder holding one "
                             "(and optionally tuning.csv)")
    report.add_argument("--report-dir", type=Path, default=None,
                        help="report folder (default: <folder of the table>/report)")
    _add_fit_options(report)
    _add_study_options(report)
    report.set_defaults(func=run_report)


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    """How every law is fitted and bootstrapped (the study's and a single law's alike)."""
    parser.add_argument("--n-boot", type=_non_negative_int, default=DEFAULT_N_BOOT, metavar="N",
                        help="bootstrap resamples, 0 for none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="bootstrap seed (default: %(default)s)")
    parser.add_argument("--method", choices=METHODS, default="huber-log",
                        help="fit objective: Huber loss on log L, or squared error on L "
                             "(default: %(default)s)")
    parser.add_argument("--bootstrap", choices=BOOTSTRAPS, default="pairs",
                        help="resampling scheme for intervals (default: %(default)s)")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL, metavar="P",
                        help="interval level, between 0 and 1 (default: %(default)s)")


def _add_study_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--x-column", choices=X_COLUMNS, default="n_params",
                        help="parameter count used as N in size laws (default: %(default)s)")
    parser.add_argument("--rule", choices=RULES, default="logit-mean",
                        help="ensemble rule to analyse (default: %(default)s)")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run_fit(args: argparse.Namespace) -> int:
    if args.x is not None or args.y is not None or args.group is not None:
        return run_single_law(args)
    analysis, _ = _analyse(args.table, args)
    from scaling.report import tables as summary

    if args.json:
        print(json.dumps(summary.analysis_to_dict(analysis), indent=2, allow_nan=False))
        return 0
    sections = [("Asymptotes", summary.asymptotes_table(analysis)),
                ("Effective-data multipliers", summary.multipliers_table(analysis)),
                ("Fitted laws", summary.laws_table(analysis))]
    for title, table in sections:
        if not table.empty:
            print(f"== {title} ==")
            print(table.to_string(index=False))
            print()
    warnings = analysis.all_warnings()
    if warnings:
        print(f"== Warnings ({len(warnings)}) ==")
        print("\n".join(f"- {w}" for w in warnings))
    return 0


def run_single_law(args: argparse.Namespace) -> int:
    """`dcsl fit TABLE --x COLUMN --y COLUMN [--group COLUMN]`: needs no other column."""
    if args.x is None or args.y is None:
        what = ("--group needs --x and --y" if args.x is None and args.y is None
                else "--x and --y go together")
        raise ValueError(f"{what}: name the column of x and of the loss, e.g. "
                         f"`dcsl fit {args.table} --x n_params --y loss`")
    _check_level(args.level)
    source = resolve_results_path(args.table)
    points = law_points(read_table(source), args.x, args.y, group=args.group,
                        source=str(source))
    try:
        laws = fit_table_laws(points, method=args.method, n_boot=args.n_boot, seed=args.seed,
                              level=args.level, bootstrap=args.bootstrap)
    except FitInputError as exc:
        raise FitInputError(f"{source}: {exc}") from exc
    from scaling.report import tables as summary

    settings = {"method": args.method, "n_boot": args.n_boot, "seed": args.seed,
                "level": args.level, "bootstrap": args.bootstrap}
    if args.json:
        payload = summary.table_laws_to_dict(laws, points, settings, source=str(source))
        print(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print(summary.table_laws_text(laws, points, settings, source=str(source)))
    return 0


def fit_table_laws(points: LawPoints, *, method: str = "huber-log",
                   n_boot: int = DEFAULT_N_BOOT, seed: int = 0, level: float = DEFAULT_LEVEL,
                   bootstrap: str = "pairs") -> list[TableLaw]:
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
                                bootstrap=bootstrap)
        except FitInputError as exc:
            if points.group is None:
                skipped = f"; {points.n_skipped} skipped" if points.n_skipped else ""
                raise FitInputError(f"{points.x} -> {points.y}: {exc} ({len(x)} usable rows "
                                    f"of {points.n_rows}{skipped})") from exc
            laws.append(TableLaw(value, x, None, [f"not fitted: {exc}"]))
            continue
        laws.append(TableLaw(value, x, law, list(law.warnings)))
    return laws


def _group_order(value: object) -> tuple[int, float, str]:
    """Numbers in numeric order, then text: budgets sort as budgets, recipes by name."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"--level must be between 0 and 1, got {level}")


def run_report(args: argparse.Namespace) -> int:
    analysis, source = _analyse(args.table_or_dir, args)
    from scaling.report.page import write_report

    out = args.report_dir if args.report_dir is not None else source.parent / "report"
    try:
        path = write_report(analysis, out, source=str(source))
    except OSError as exc:
        raise OSError(f"cannot write {out}: {exc}") from exc
    n_figures = len(list((out / "figures").glob("*.png")))
    print(f"wrote {path} and {path.with_suffix('.html')} ({n_figures} figures)")
    return 0


def _analyse(location: str, args: argparse.Namespace) -> tuple[StudyAnalysis, Path]:
    """Load the table (and tuning.csv beside it) and analyse it; bad input exits with one line."""
    from scaling.analysis.study import analyze_study

    source = resolve_results_path(location)
    frame = read_table(source)
    missing = missing_study_columns(frame)
    if missing:
        raise TableError(_not_a_results_table(source, frame, missing))
    table = validate_results(frame, source=str(source), x_column=args.x_column)
    tuning = load_tuning(source.parent)
    analysis = analyze_study(table, tuning=tuning, method=args.method, n_boot=args.n_boot,
                             seed=args.seed, level=args.level, x_column=args.x_column,
                             rule=args.rule, bootstrap=args.bootstrap)
    return analysis, source


def _not_a_results_table(source: Path, frame: pd.DataFrame, missing: list[str]) -> str:
    """The missing columns, what the study analysis needs, and the way to fit a single law."""
    names = ", ".join(repr(c) for c in missing)
    columns = [str(c) for c in frame.columns]
    shown = ", ".join(columns[:10]) + (", ..." if len(columns) > 10 else "")
    return (f"{source}: missing column{'s' if len(missing) > 1 else ''} {names}: the study "
            f"analysis needs {', '.join(REQUIRED_COLUMNS)} (see `dcsl fit --help`); to fit one "
            f"law L(x) = A / x^alpha + E to two of this table's columns ({shown}), run "
            f"`dcsl fit {source} --x COLUMN --y COLUMN`")


def main(argv: list[str] | None = None) -> int:
    """`python -m scaling.cli fit|report ...` without the dcsl dispatcher."""
    parser = argparse.ArgumentParser(prog="dcsl", description="dcsl scaling commands")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (TableError, ValueError, OSError) as exc:  # one line, as under the dcsl dispatcher
        raise SystemExit(f"dcsl {args.command}: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
