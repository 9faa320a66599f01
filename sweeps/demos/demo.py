"""``dcsl demo``: the whole study in miniature on this machine, through the cluster code paths.

It loads the packaged ``demo.yaml`` (``demo-quick.yaml`` with ``--quick``), launches it
on the local executor (prepare the store, tune both recipes, ensemble members,
ensemble losses, distillation, downstream evals), collects the tables, fits every law
and writes the report. Interrupt it at any point and run it again: finished runs are
never redone.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from sweeps.collect import collect, write_tables
from sweeps.execution import launch
from sweeps.review import measure
from sweeps.study import Study, load_study


def demo_study(quick: bool, out: str | Path | None = None, seed: int = 0) -> Study:
    """The packaged demo study; its root is the file's (demo-output, demo-quick-output; a
    replicate's gets -seedN) unless ``out`` says otherwise."""
    name = "demo-quick.yaml" if quick else "demo.yaml"
    path = Path(str(resources.files("sweeps") / "studies" / name))
    return load_study(path, root=out, seed=seed)


def run_demo(quick: bool = False, out: str | Path | None = None, n_boot: int | None = None,
             log=print, seed: int = 0) -> dict:  # noqa: ANN001
    """Run the demo study into ``out``; ``seed`` picks a replicate (every run's seeds change).
    The laws are fitted as the study file's ``analysis`` section says (``n_boot`` overrides
    its resamples)."""
    study = demo_study(quick, out, seed)
    t0 = time.time()
    log(f"dcsl demo{' --quick' if quick else ''}: study {study.path.name} into {study.root}/ "
        "(interrupt and rerun to continue)")
    # The progress view's ETA before any run has reported: the plan's probe of this machine.
    report = launch(study, log=log, prior=lambda sizes, vocab: measure(study, sizes, vocab).flops_per_s)
    table, tuning, summary = collect(study)
    write_tables(study, table, tuning)
    log(f"runs: {summary['states']}; {len(summary['failed'])} failed")

    from scaling import analyze_study, write_report
    from scaling.analysis.phenomena import check_phenomena

    fitting = study.analysis
    n_boot = fitting.n_boot if n_boot is None else n_boot
    log(f"fitting laws ({n_boot} {fitting.bootstrap} bootstrap resamples) and writing the report")
    analysis = analyze_study(table, tuning=tuning, n_boot=n_boot, main_budget=study.main_budget,
                             bootstrap=fitting.bootstrap, x_column=fitting.x_column,
                             method=fitting.method, level=fitting.level, rule=fitting.rule)
    checks = check_phenomena(analysis)
    report_md = write_report(analysis, study.root / "report", source=str(study.root / "results.parquet"),
                             findings=[c.sentence() for c in checks])
    elapsed = time.time() - t0
    _print_summary(analysis, checks, log)
    log(f"report: {report_md} and {report_md.with_suffix('.html')} ({elapsed:,.0f}s in all)")
    return {"elapsed_s": elapsed, "launched": report.launched, "failed": report.failed,
            "report": str(report_md), "checks": {c.name: c.shown for c in checks},
            "headline": headline_numbers(analysis)}


def headline_numbers(analysis) -> dict[str, float]:  # noqa: ANN001 - a StudyAnalysis
    """The numbers the report opens with (scaling.analysis.headlines), without their
    intervals: what a rerun must reproduce."""
    from scaling.analysis.headlines import headline_estimates

    return {name: h.estimate.value for name, h in headline_estimates(analysis).items()}


def _print_summary(analysis, checks, log) -> None:  # noqa: ANN001
    """The main budget's headline numbers (the report's, picked by the same rule), then the
    phenomena."""
    from scaling.analysis.headlines import MULTIPLIER, headline_estimates

    heads = headline_estimates(analysis)
    budget = analysis.main_budget
    log("")
    log(f"asymptotes at D = {budget:,} tokens (nats/token):")
    if (best := heads.get("standard best")) is not None:
        log(f"  standard (best run over sizes)   {best.estimate.value:.4f}  ({best.source})")
    for label, name in (("regularized (N -> inf)", "regularized asymptote E"),
                        ("joint (K, N -> inf)", "double limit E")):
        limit = heads.get(name)
        log(f"  {label:<32} {limit.estimate.format(4) if limit else 'not fitted'}")
    for name, h in heads.items():
        if name.startswith(MULTIPLIER):
            log(f"  effective-data multiplier, {h.source} at {budget:,}: "
                f"{'unbounded' if h.estimate.unbounded else h.estimate.format(3)}")
    log("what the demo shows:")
    for c in checks:
        log(f"  - {c.sentence()}")
