"""`dcsl fit` and `dcsl report`: the scaling package's command-line interface.

The `dcsl` console script calls register() to add both sub-commands; `python -m scaling.cli`
builds the same commands on its own parser. matplotlib is only imported by `report`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scaling.bootstrap import DEFAULT_LEVEL, DEFAULT_N_BOOT
from scaling.fit import BOOTSTRAPS, METHODS
from scaling.table import RULES, X_COLUMNS, TableError, load_tuning, resolve_results_path

if TYPE_CHECKING:
    from scaling.analysis import StudyAnalysis


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `fit` and `report` to a dcsl-style sub-command parser."""
    fit = subparsers.add_parser(
        "fit", help="fit scaling laws to a results table and print them",
        description="Fit the study's laws (asymptotes, double limits, data laws, effective-data "
                    "multipliers) to a results table and print them as tables or JSON.")
    fit.add_argument("table", help="results.parquet / results.csv, or a folder holding one")
    fit.add_argument("--json", action="store_true", help="print JSON instead of tables")
    _add_analysis_options(fit)
    fit.set_defaults(func=run_fit)

    report = subparsers.add_parser(
        "report", help="write figures and a markdown + HTML report",
        description="Analyse a results table and write <dir>/report/: report.md, report.html "
                    "and figures/*.png|pdf. A tuning.csv next to the table is included.")
    report.add_argument("table_or_dir", metavar="TABLE_OR_DIR",
                        help="results.parquet / results.csv, or a folder holding one "
                             "(and optionally tuning.csv)")
    report.add_argument("--out", type=Path, default=None,
                        help="report folder (default: <folder of the table>/report)")
    _add_analysis_options(report)
    report.set_defaults(func=run_report)


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                        help=f"bootstrap resamples, 0 for none (default {DEFAULT_N_BOOT})")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--method", choices=METHODS, default="huber-log",
                        help="fit objective (default huber-log)")
    parser.add_argument("--x-column", choices=X_COLUMNS, default="n_params",
                        help="parameter count used as N (default n_params)")
    parser.add_argument("--bootstrap", choices=BOOTSTRAPS, default="pairs",
                        help="resampling scheme for intervals (default pairs)")
    parser.add_argument("--rule", choices=RULES, default="logit-mean",
                        help="ensemble rule to analyse (default logit-mean)")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL,
                        help=f"interval level (default {DEFAULT_LEVEL})")


def run_fit(args: argparse.Namespace) -> int:
    analysis, _ = _analyse(args.table, args)
    from scaling import summary

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


def run_report(args: argparse.Namespace) -> int:
    analysis, source = _analyse(args.table_or_dir, args)
    from scaling.report import write_report

    out = args.out if args.out is not None else source.parent / "report"
    try:
        path = write_report(analysis, out, source=str(source))
    except OSError as exc:
        raise OSError(f"cannot write {out}: {exc}") from exc
    n_figures = len(list((out / "figures").glob("*.png")))
    print(f"wrote {path} and {path.with_suffix('.html')} ({n_figures} figures)")
    return 0


def _analyse(location: str, args: argparse.Namespace) -> tuple[StudyAnalysis, Path]:
    """Load the table (and tuning.csv beside it) and analyse it; bad input exits with one line."""
    from scaling.analysis import analyze_study
    from scaling.table import load_results

    source = resolve_results_path(location)
    table = load_results(source, x_column=args.x_column)
    tuning = load_tuning(source.parent)
    analysis = analyze_study(table, tuning=tuning, method=args.method, n_boot=args.n_boot,
                             seed=args.seed, level=args.level, x_column=args.x_column,
                             rule=args.rule, bootstrap=args.bootstrap)
    return analysis, source


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
