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
from scaling.fit.power_law import METHODS
from scaling.table.contract import REQUIRED_COLUMNS, RULES, X_COLUMNS, contract_help
from scaling.table.load import (
    TableError,
    load_analysis_settings,
    load_curves,
    load_tuning,
    missing_study_columns,
    read_table,
    resolve_results_path,
    validate_results,
)
from scaling.table.points import LAWS

if TYPE_CHECKING:
    import pandas as pd

    from scaling.analysis.study import StudyAnalysis

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

the field's two-variable laws (any table, or a dcsl results table with no column options):
  dcsl fit points.csv --law chinchilla --n params --d tokens --y loss [--compute 1e21]
  dcsl fit points.csv --law data-constrained --n params --d tokens --u unique --y loss
  dcsl fit runs/demo --law data-constrained [--group recipe] [--compute 1e15]
  fit L = E + A / N^alpha + B / D^beta (Hoffmann et al.'s approach 3), or Muennighoff et al.'s
  law of effective parameters N' and data D' with decay constants R_N* and R_D* (in
  repetitions), with bootstrap intervals, what the data identify, a lack-of-fit check and,
  with --compute, the loss-minimising N, D and epochs at that many FLOPs (C = 6 N D; under
  the data-constrained law at the unique-token limit --data-limit, default the table's
  largest U). N is parameters, D tokens seen, U the unique tokens they repeat. From a dcsl
  results table the points are each recipe's best loss at each (N, D, U) over its succeeded
  training runs. --fixed NAME=VALUE holds parameters (e.g. the base law, fitting only R_D and
  R_N); --markdown prints a markdown section; docs/laws.md has the formulas.

"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `fit`, `report` and `compare` to a dcsl-style sub-command parser."""
    from scaling import cli_compare

    cli_compare.register(subparsers)
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
                             "recipe (default: none, one law over every row; with --law on a "
                             "results table: recipe)")
    single.add_argument("--noise", type=_positive_float, default=None, metavar="NATS",
                        help="seed-to-seed noise of a loss, for the lack-of-fit check "
                             "(default: none; replicated points and sign runs are still checked)")
    joint = fit.add_argument_group("a two-variable law (--law), on any table or a results table")
    joint.add_argument("--law", choices=LAWS, default=None,
                       help="fit L(N, D) (chinchilla) or the data-constrained law (default: none)")
    joint.add_argument("--n", metavar="COLUMN", default=None,
                       help="column of parameters N (default: a results table's n_params)")
    joint.add_argument("--d", metavar="COLUMN", default=None,
                       help="column of tokens seen D (default: a results table's tokens_seen)")
    joint.add_argument("--u", metavar="COLUMN", default=None,
                       help="column of unique tokens U, data-constrained law only (default: a "
                            "results table's budget_tokens)")
    joint.add_argument("--fixed", metavar="NAME=VALUE", action="append", default=[],
                       help="hold a parameter (E, A, B, alpha, beta, R_D, R_N) at a value; "
                            "repeatable (default: none, fit all)")
    joint.add_argument("--compute", type=_positive_float, default=None, metavar="FLOPS",
                       help="also print the optimal allocation at this many training FLOPs "
                            "(default: none)")
    joint.add_argument("--data-limit", type=_positive_float, default=None, metavar="TOKENS",
                       help="unique tokens U for the allocation (default: the table's largest U "
                            "for the data-constrained law; none for L(N, D))")
    joint.add_argument("--markdown", action="store_true",
                       help="print a markdown section instead of text (default: text)")
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


# Fitting settings: a flag given on the command line, else the study's (analysis.json beside
# the table, which collect writes from the study file), else these.
DEFAULTS = {"n_boot": DEFAULT_N_BOOT, "bootstrap_seed": 0, "method": "huber-log",
            "bootstrap": "pairs", "level": DEFAULT_LEVEL, "x_column": "n_params",
            "rule": "logit-mean"}
FROM_STUDY = "the study's analysis.json beside the table, else"


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    """How every law is fitted and bootstrapped (the study's and a single law's alike)."""
    parser.add_argument("--n-boot", type=_non_negative_int, default=None, metavar="N",
                        help=f"bootstrap resamples, 0 for none (default: {FROM_STUDY} "
                             f"{DEFAULTS['n_boot']})")
    parser.add_argument("--bootstrap-seed", type=int, default=None, metavar="N",
                        help="seed of the bootstrap resamples (default: 0)")
    parser.add_argument("--method", choices=METHODS, default=None,
                        help="fit objective: Huber loss on log L, or squared error on L "
                             f"(default: {FROM_STUDY} {DEFAULTS['method']})")
    parser.add_argument("--bootstrap", choices=BOOTSTRAPS, default=None,
                        help=f"resampling scheme for intervals (default: {FROM_STUDY} "
                             f"{DEFAULTS['bootstrap']})")
    parser.add_argument("--level", type=float, default=None, metavar="P",
                        help=f"interval level, between 0 and 1 (default: {FROM_STUDY} "
                             f"{DEFAULTS['level']})")


def _add_study_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--x-column", choices=X_COLUMNS, default=None,
                        help=f"parameter count used as N in size laws (default: {FROM_STUDY} "
                             f"{DEFAULTS['x_column']})")
    parser.add_argument("--rule", choices=RULES, default=None,
                        help=f"ensemble rule to analyse (default: {FROM_STUDY} {DEFAULTS['rule']})")


def resolve_settings(args: argparse.Namespace, source: Path) -> dict[str, object]:
    """Fill every fitting flag left unset from the study's analysis.json, then the defaults;
    returns what analysis.json said (main budget, whether to check the phenomena)."""
    study = load_analysis_settings(source)
    for name, default in DEFAULTS.items():
        if getattr(args, name, None) is None:
            key = "seed" if name == "bootstrap_seed" else name
            setattr(args, name, study.get(key, default) if key in study else default)
    return study


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run_fit(args: argparse.Namespace) -> int:
    from scaling.cli_laws import run_joint_law, run_single_law

    joint_only = [flag for flag, value in (("--n", args.n), ("--d", args.d), ("--u", args.u),
                                           ("--fixed", args.fixed), ("--compute", args.compute),
                                           ("--data-limit", args.data_limit),
                                           ("--markdown", args.markdown)) if value]
    if args.law is not None:
        return run_joint_law(args)
    if joint_only:
        raise ValueError(f"{joint_only[0]} goes with --law chinchilla or --law data-constrained")
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


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"--level must be between 0 and 1, got {level}")


def run_report(args: argparse.Namespace) -> int:
    analysis, source = _analyse(args.table_or_dir, args)
    from scaling.report.page import write_report

    findings = None
    if args.study_settings.get("phenomena"):
        # A study that asks its report to check the reference study's phenomena (the demo):
        # the same sentences the demo printed, from the same fits.
        from scaling.analysis.phenomena import check_phenomena

        findings = [check.sentence() for check in check_phenomena(analysis)]
    out = args.report_dir if args.report_dir is not None else source.parent / "report"
    try:
        path = write_report(analysis, out, source=str(source), findings=findings)
    except OSError as exc:
        raise OSError(f"cannot write {out}: {exc}") from exc
    n_figures = len(list((out / "figures").glob("*.png")))
    print(f"wrote {path} and {path.with_suffix('.html')} ({n_figures} figures)")
    return 0


def _analyse(location: str, args: argparse.Namespace) -> tuple[StudyAnalysis, Path]:
    """Load the table (and tuning.csv beside it) and analyse it; bad input exits with one line."""
    from scaling.analysis.study import analyze_study

    source = resolve_results_path(location)
    args.study_settings = resolve_settings(args, source)
    _check_level(args.level)
    frame = read_table(source)
    missing = missing_study_columns(frame)
    if missing:
        raise TableError(_not_a_results_table(source, frame, missing))
    table = validate_results(frame, source=str(source), x_column=args.x_column)
    tuning = load_tuning(source.parent)
    analysis = analyze_study(table, tuning=tuning, curves=load_curves(source.parent), method=args.method, n_boot=args.n_boot,
                             seed=args.bootstrap_seed, level=args.level, x_column=args.x_column,
                             rule=args.rule, bootstrap=args.bootstrap,
                             main_budget=args.study_settings.get("main_budget"),
                             noise=getattr(args, "noise", None))
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
