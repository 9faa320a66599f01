"""``dcsl sweep plan|launch|status|collect`` and ``dcsl demo``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="study files: plan, launch, status, collect")
    actions = sweep.add_subparsers(dest="sweep_command", metavar="ACTION")

    def study_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text)
        p.add_argument("study", help="study YAML file (e.g. sweeps/studies/paper.yaml), or the name "
                                     f"of a packaged study ({', '.join(packaged_studies())})")
        p.add_argument("--root", default=None,
                       help="output folder (default: the study's root: its root key, else "
                            "runs/<name>, relative to the current directory; printed first)")
        p.add_argument("--seed", type=int, default=None,
                       help="replicate of the whole study: every run trains with other seeds, in a "
                            "root of its own (<root>-seedN); as dcsl demo --seed (default: the "
                            "study file's seed)")
        return p

    p = study_parser("plan", "review a study before compute: runs and time per stage, design "
                             "warnings, and whether its laws will be identifiable (simulated)")
    p.add_argument("--vocab-size", type=int, default=None, help="vocab for estimates before the store exists")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the few-second training probe of tokens/s (assume a CPU rate instead)")
    p.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilisation assumed for GPU-hours")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak (H100 bf16 dense: 989)")
    p.add_argument("--noise", type=float, default=0.01,
                   help="seed-to-seed noise of one loss in nats, for the simulation (default 0.01)")
    p.add_argument("--sims", type=int, default=40, help="simulated draws per law (0: no simulation)")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples per simulated fit")
    p.add_argument("--simulation-seed", type=int, default=0, help="seed of the simulated draws")
    p.add_argument("--assume-law", action="append", default=[], metavar="KIND=A,alpha[,E]",
                   help="simulate this law instead of the default: size=A,alpha,E (x: total parameters), "
                        "ensemble=A,alpha (L(K) = A/K^alpha + the K-asymptote), joint=A,alpha,E "
                        "(K-asymptotes over parameters), data=A,alpha,E (the standard recipe over tokens); "
                        "repeatable; default: the paper's shapes scaled to the study (scaling/design.py)")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(func=_plan)

    p = study_parser("launch", "run the study's stages (skips finished runs; resumable)")
    p.add_argument("--executor", choices=["local", "slurm", "debug"], default=None,
                   help="where runs go: local worker processes, Slurm job arrays, or this process "
                        "(default: the study's executor.kind)")
    p.add_argument("--parallelism", type=int, default=None,
                   help="local workers at once (default: the study's executor.parallelism)")
    p.add_argument("--profile", default=None,
                   help="cluster profile name or YAML file, see slurm/profiles/ (default: the study's)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--cancel-on-exit", action="store_true",
                   help="cancel the Slurm jobs this launcher submitted when it is stopped (Ctrl-C, "
                        "SIGTERM); local workers always stop, each at a checkpoint")
    p.set_defaults(func=_launch)

    p = study_parser("status", "succeeded/running/pending/failed/missing per recipe, size and budget")
    p.add_argument("--watch", action="store_true",
                   help="a live view instead, refreshed until no run is running or pending (or "
                        "Ctrl-C): each running run's step out of its total, tokens/s and time left, "
                        "runs done/running/pending/failed per stage, and the ETA of them all")
    p.add_argument("--every", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between refreshes of --watch")
    p.set_defaults(func=_status)

    p = study_parser("collect", "rebuild results.parquet/.csv and tuning.csv from the run directories")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_collect)

    d = sub.add_parser("demo", help="the embedded study in miniature on this machine")
    d.add_argument("--root", default=None,
                   help="the study's root: store, runs and report (default: the demo study's "
                        "own, demo-output, or demo-quick-output with --quick; -seedN added for "
                        "--seed N), where sweep status demo and report demo-output find it")
    d.add_argument("--quick", action="store_true", help="a smaller study (about 3 minutes), used by the tests")
    d.add_argument("--seed", type=int, default=0,
                   help="replicate of the whole study: every run gets other seeds")
    d.add_argument("--cpt", action="store_true",
                   help="continued pretraining instead: a Bible-trained base continued on Wikipedia "
                        "paragraphs, epochs against ensembles and soups (default root: cpt-demo-output)")
    d.set_defaults(func=_demo)


def packaged_studies() -> list[str]:
    from importlib import resources

    folder = resources.files("sweeps") / "studies"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def study_path(name: str):  # noqa: ANN201 - a Path
    """A study file, or the packaged study of that name (``demo`` for sweeps/studies/demo.yaml),
    so the demo's own study is at hand wherever dcsl is installed."""
    from importlib import resources
    from pathlib import Path

    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    packaged = Path(str(resources.files("sweeps") / "studies" / f"{name}.yaml"))
    return packaged if packaged.is_file() else path


def _study(args: argparse.Namespace):  # noqa: ANN202
    from sweeps.study import load_study

    study = load_study(study_path(args.study), root=args.root, seed=args.seed)
    # Every command says where the study's outputs are (a root is relative to the current
    # directory); with --json the JSON holds it instead, and stderr is kept for the error.
    if not getattr(args, "json", False):
        print(f"study {study.name}: root {study.root.resolve()}"
              + ("" if args.root else " (the study's; --root to change)"), flush=True)
    return study


def _plan(args: argparse.Namespace) -> int:
    from sweeps.review import PlanOptions, render_text, review, to_json

    if args.sims < 0 or args.n_boot < 0:
        raise ValueError("--sims and --n-boot must be >= 0")
    options = PlanOptions(vocab=args.vocab_size, probe=not args.no_probe, mfu=args.mfu,
                          peak_tflops=args.peak_tflops, noise=args.noise, sims=args.sims,
                          n_boot=args.n_boot, seed=args.simulation_seed, assume=tuple(args.assume_law))
    result = review(_study(args), options)
    print(to_json(result) if args.json else render_text(result))
    if result.errors:
        # The review is printed in full; the error is also the command's one-line failure.
        raise ValueError(result.errors[0].message)
    return 0


def _launch(args: argparse.Namespace) -> int:
    from sweeps.execution import launch, with_executor

    study = _study(args)
    executor = with_executor(study, args.executor, args.parallelism, args.profile)
    report = launch(study, executor=executor, retry_failed=args.retry_failed,
                    cancel_on_exit=args.cancel_on_exit, prior=probe_prior(study, executor))
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


def probe_prior(study, executor):  # noqa: ANN001, ANN201 - a Study, its Executor; a liveview.Prior or None
    """The plan's probe of this machine (FLOP/s per size), for ETAs before any run has reported;
    measured only if needed. None for Slurm: its runs train on other machines."""
    if not executor.runs_here:
        return None

    def prior(sizes: list[str], vocab: int) -> dict[str, float]:
        from sweeps.review import measure

        return measure(study, sizes, vocab).flops_per_s

    return prior


def _status(args: argparse.Namespace) -> int:
    from sweeps.collect import status_table

    if args.watch:
        from sweeps.execution import watch_study

        if args.every <= 0:
            raise ValueError("--every must be > 0 seconds")
        study = _study(args)
        return watch_study(study, every_s=args.every, prior=probe_prior(study, study.executor))
    counts, problems = status_table(_study(args))
    if counts.empty:
        print("no runs yet")
    else:
        print(counts.to_string(index=False))
    for line in problems:
        print(line)
    return 0


def _collect(args: argparse.Namespace) -> int:
    study = _study(args)
    summary = _collect_and_write(study)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['rows']} rows; run states: {summary['states']}")
        for key in ("failed", "unreadable", "orphaned"):
            for line in summary[key]:
                print(f"{key}: {line}")
        if summary["missing"]:
            print(f"missing: {len(summary['missing'])} planned runs have no directory yet")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.cpt:
        from sweeps.demos import run_cpt_demo

        out = args.root or ("cpt-demo-output" if args.seed == 0 else f"cpt-demo-output-seed{args.seed}")
        return 0 if not run_cpt_demo(out, quick=args.quick, seed=args.seed)["failed"] else 1
    from sweeps.demos import run_demo

    result = run_demo(quick=args.quick, out=args.root, seed=args.seed)
    return 0 if not result["failed"] else 1
