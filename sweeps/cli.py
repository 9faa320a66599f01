"""``dcsl sweep plan|launch|status|collect`` and ``dcsl demo``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="study files: plan, launch, status, collect")
    actions = sweep.add_subparsers(dest="sweep_command", metavar="ACTION")

    def study_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text)
        p.add_argument("study", help="study YAML file (e.g. sweeps/studies/paper.yaml)")
        p.add_argument("--root", default=None, help="output folder (default: the study's root)")
        return p

    p = study_parser("plan", "expand a study into runs and estimate its compute")
    p.add_argument("--vocab-size", type=int, default=None, help="vocab for estimates before the store exists")
    p.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilisation assumed for GPU-hours")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak (H100 bf16 dense: 989)")
    p.set_defaults(func=_plan)

    p = study_parser("launch", "run the study's stages (skips finished runs; resumable)")
    p.add_argument("--executor", choices=["local", "slurm", "debug"], default=None)
    p.add_argument("--parallelism", type=int, default=None, help="local workers at once")
    p.add_argument("--profile", default=None, help="cluster profile name or YAML (slurm/profiles/)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.set_defaults(func=_launch)

    p = study_parser("status", "succeeded/running/pending/failed/missing per recipe, size and budget")
    p.set_defaults(func=_status)

    p = study_parser("collect", "rebuild results.parquet/.csv and tuning.csv from the run directories")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_collect)

    d = sub.add_parser("demo", help="the embedded study in miniature on this machine")
    d.add_argument("--out", default=None,
                   help="where the store, runs and report go (default demo-output, or "
                        "demo-output-seedN for --seed N)")
    d.add_argument("--quick", action="store_true", help="a smaller study (about 3 minutes), used by the tests")
    d.add_argument("--seed", type=int, default=0,
                   help="replicate of the whole study: every run gets other seeds (default 0)")
    d.set_defaults(func=_demo)


def _study(args: argparse.Namespace):  # noqa: ANN202
    from sweeps.study import load_study

    return load_study(args.study, root=args.root)


def _plan(args: argparse.Namespace) -> int:
    from pretrain.spec import human_tokens
    from sweeps.estimate import gpu_hours, summarize
    from sweeps.launch import check_budgets

    study = _study(args)
    check_budgets(study)
    s = summarize(study, vocab=args.vocab_size)
    t = s.table.copy()
    t["budget"] = t["budget_tokens"].map(human_tokens)
    t["PFLOP"] = (t["flops"] / 1e15).round(3)
    print(f"study {study.name}: {len(study.budgets)} budgets x {len(study.sizes)} sizes, "
          f"recipes {', '.join(study.recipes)}; store {study.store} ({s.store_id})")
    print(t[["recipe", "search", "size", "budget", "runs", "full_lattice", "succeeded", "PFLOP"]]
          .to_string(index=False))
    hours = gpu_hours(s.total_flops_now, args.mfu, args.peak_tflops * 1e12)
    print(f"first round: {s.total_runs_now} runs, {s.total_flops_now:.3g} FLOPs, "
          f"{hours:,.1f} GPU-hours at {args.mfu:.0%} MFU of {args.peak_tflops:g} TFLOP/s")
    full_hours = gpu_hours(s.full_lattice_flops, args.mfu, args.peak_tflops * 1e12)
    print(f"full lattice instead: {s.full_lattice_runs} runs, {s.full_lattice_flops:.3g} FLOPs, "
          f"{full_hours:,.1f} GPU-hours (adaptive searches add neighbour rounds until certified)")
    if s.member_runs:
        print(f"ensemble members (at the start point; the tuned point decides): {s.member_runs} runs, "
              f"{gpu_hours(s.member_flops, args.mfu, args.peak_tflops * 1e12):,.1f} GPU-hours")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from sweeps.launch import launch, with_executor

    study = _study(args)
    executor = with_executor(study, args.executor, args.parallelism, args.profile)
    report = launch(study, executor=executor, retry_failed=args.retry_failed)
    elsewhere = f", {report.elsewhere} run by another launcher" if report.elsewhere else ""
    print(f"launched {report.launched} runs: {report.succeeded} succeeded, {len(report.failed)} not"
          f"{elsewhere}")
    for line in report.failed + report.job_problems:
        print(f"  {line}")
    _collect_and_write(study)
    return 0 if not report.failed else 1


def _collect_and_write(study) -> dict:  # noqa: ANN001
    from sweeps.collect import collect, write_tables

    table, tuning, summary = collect(study)
    paths = write_tables(study, table, tuning)
    print(f"results: {', '.join(str(p) for p in paths)}")
    return summary


def _status(args: argparse.Namespace) -> int:
    from sweeps.collect import status_table

    counts, failures = status_table(_study(args))
    if counts.empty:
        print("no runs yet")
        return 0
    print(counts.to_string(index=False))
    for line in failures:
        print(f"failed: {line}")
    return 0


def _collect(args: argparse.Namespace) -> int:
    study = _study(args)
    summary = _collect_and_write(study)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['rows']} rows; run states: {summary['states']}")
        for key in ("failed", "unreadable"):
            for line in summary[key]:
                print(f"{key}: {line}")
        if summary["missing"]:
            print(f"missing: {len(summary['missing'])} planned runs have no directory yet")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sweeps.demo import run_demo

    out = args.out or ("demo-output" if args.seed == 0 else f"demo-output-seed{args.seed}")
    result = run_demo(quick=args.quick, out=out, seed=args.seed)
    return 0 if not result["failed"] else 1
