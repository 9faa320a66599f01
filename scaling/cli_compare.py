"""`dcsl compare A B`: two studies side by side (studies, results tables or report folders)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scaling.table.contract import RESULTS_NAMES
from scaling.table.load import TableError


def register(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser(
        "compare", help="two studies side by side: headline numbers, laws, phenomena",
        description="Analyse two studies (each as its report would: its analysis.json's "
                    "settings) and show them side by side: the headline numbers each report opens "
                    "with (at its main budget, and each data law's limit) with their "
                    "intervals, every law both fitted with whether the "
                    "parameters' intervals overlap, and the reference study's phenomena. Writes "
                    "compare.md, compare.json and an overlay of loss against parameters.")
    compare.add_argument("first", metavar="A", help="a study file, a study's root, a results table, "
                                                    "or a report folder")
    compare.add_argument("second", metavar="B", help="the same for the other study")
    compare.add_argument("--labels", default=None, metavar="A,B",
                         help="names for the two in tables and the figure (default: the folders' names)")
    compare.add_argument("--compare-dir", type=Path, default=Path("compare"),
                         help="folder for compare.md, compare.json and the figure (default: compare)")
    compare.add_argument("--n-boot", type=int, default=None, metavar="N",
                         help="bootstrap resamples (default: each study's analysis.json, else 1000)")
    compare.add_argument("--json", action="store_true", help="print JSON instead of tables (default: tables)")
    compare.set_defaults(func=run_compare)


def results_of(location: str) -> Path:
    """The results table of a study's root, of a results file, or of the root a report
    folder sits in."""
    path = Path(location)
    if path.is_dir() and not any((path / n).is_file() for n in RESULTS_NAMES) and (path / "report.md").is_file():
        path = path.parent
    if path.is_dir():
        for name in RESULTS_NAMES:
            if (path / name).is_file():
                return path / name
        raise TableError(f"{location}: no results table here (results.parquet or results.csv), "
                         "nor is it a report folder inside a study's root")
    if not path.is_file():
        raise TableError(f"{location}: no such file or folder")
    return path


def analyse(location: str, n_boot: int | None):  # noqa: ANN201 - a StudyAnalysis
    from scaling.analysis.study import analyze_study
    from scaling.cli import resolve_settings
    from scaling.table.load import load_curves, load_tuning, read_table, validate_results

    source = results_of(location)
    args = argparse.Namespace(n_boot=n_boot, bootstrap_seed=None, method=None, bootstrap=None,
                              level=None, x_column=None, rule=None)
    study = resolve_settings(args, source)
    table = validate_results(read_table(source), source=str(source), x_column=args.x_column)
    return analyze_study(table, tuning=load_tuning(source.parent), curves=load_curves(source.parent),
                         method=args.method, n_boot=args.n_boot, seed=args.bootstrap_seed,
                         level=args.level, x_column=args.x_column, rule=args.rule,
                         bootstrap=args.bootstrap, main_budget=study.get("main_budget")), source


def run_compare(args: argparse.Namespace) -> int:
    from scaling.analysis.compare import compare
    from scaling.report.figures_compare import overlay
    from scaling.report.page import markdown_table
    from scaling.report.style import save

    (a, source_a), (b, source_b) = analyse(args.first, args.n_boot), analyse(args.second, args.n_boot)
    if args.labels:
        labels = tuple(part.strip() for part in args.labels.split(","))
        if len(labels) != 2 or not all(labels):
            raise ValueError(f"--labels {args.labels!r}: give two names, e.g. --labels seed0,seed1")
    else:
        labels = (source_a.parent.name, source_b.parent.name)
        if labels[0] == labels[1]:
            labels = ("A", "B")
    result = compare(a, b, labels)
    out = args.compare_dir
    out.mkdir(parents=True, exist_ok=True)
    drawn = overlay(a, b, labels)
    figure = save(drawn.figure, out, drawn.name, drawn.caption)
    sections = [("Headline numbers", result.headline), ("Laws both fitted", result.laws),
                ("The reference study's phenomena", result.phenomena)]
    page = [f"# {labels[0]} and {labels[1]}", "",
            f"{labels[0]}: `{source_a}`; {labels[1]}: `{source_b}`. Intervals that do not overlap "
            "are differences a reader may take as real; overlapping ones are not evidence either way."]
    for title, frame in sections:
        page += ["", f"## {title}", "", markdown_table(frame)]
    page += ["", f"![{drawn.caption}]({figure.png.name})", "", f"*{drawn.caption}*"]
    (out / "compare.md").write_text("\n".join(page) + "\n", encoding="utf-8")
    (out / "compare.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for title, frame in sections:
        if not frame.empty:
            print(f"== {title} ==")
            print(frame.to_string(index=False))
            print()
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'} and {figure.png}")
    return 0
