"""Benchmarks: the whole scaling analysis of a paper-sized study vs one plain curve_fit pass,
and a joint law L(N, D) fitted to 240 points vs the one-variable law on as many points.

The table is the paper's design (4 budgets x 4 sizes, standard / regularized / ensemble up to
K = 5, distillation students, downstream evals), drawn from known laws with 0.2% noise. The
analysis fits every curve robustly from a grid of starts, with 1000 bootstrap resamples per
curve propagated through the double limit, the data laws and the multipliers. The baseline
is what the paper's authors ran: one scipy curve_fit per curve, raw loss, one start, no
intervals. Target: the full analysis in under 20 s on 2 cores.

The joint fit: 240 points of L = E + A / N^alpha + B / D^beta (Besiroglu et al.'s fit, 1%
noise) on a design shaped like Hoffmann et al.'s (sizes 70M-16B, 4-60 tokens per parameter
and beyond), fitted from the published 4,500-start grid with 1,000 pairs resamples; target
under 10 s on 2 cores. `--chinchilla-csv` runs it on the real points instead (Epoch AI's
svg_extracted_data.csv from epoch-research/analyzing-chinchilla, not shipped here). Prints
figures and the CPU, asserts nothing.

    .venv/bin/python bench/bench_scaling.py [--n-boot 1000] [--repeats 3] [--report]
                                            [--joint-only] [--chinchilla-csv PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import numpy as np
from machine import cores, cpu_model  # bench/ is on sys.path when run as a script
from scipy.optimize import OptimizeWarning, curve_fit

from scaling import analyze_study, fit_chinchilla_law, fit_power_law, write_report
from scaling.analysis.types import budget_label
from scaling.fit.forms import chinchilla_loss
from scaling.synthetic import synthetic_study

BESIROGLU = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def curve_fit_pass(analysis) -> tuple[float, int, int, dict]:
    """Time one plain curve_fit per curve of the analysis, chaining stages as the analysis does.

    Returns (seconds, fits, failures, E per curve name)."""

    def law(x, A, alpha, E):
        return A / x**alpha + E

    def plain_fit(x, y):
        p0 = [(y.max() - y.min()) * x.min() ** 0.5 + 1e-3, 0.5, 0.9 * y.min()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params, _ = curve_fit(law, x, y, p0=p0, maxfev=10_000)
        return params

    fits = failures = 0
    floors: dict[str, float] = {}
    start = time.perf_counter()
    curves = list(analysis.regularized.values()) + list(analysis.ensembles.values())
    for curve in curves:
        fits += 1
        try:
            floors[curve.name] = plain_fit(curve.x, curve.y)[2]
        except RuntimeError:
            failures += 1
    for budget, joint in analysis.joint.items():
        xs, ys = [], []
        for size, x in zip(joint.point_labels, joint.x, strict=True):
            name = f"ensemble {size} ({budget_label(budget)})"
            if name in floors:
                xs.append(x)
                ys.append(floors[name])
        fits += 1
        try:
            floors[joint.name] = plain_fit(np.array(xs), np.array(ys))[2]
        except (RuntimeError, TypeError, ValueError):
            failures += 1
    for curve in analysis.data_laws.values():
        fits += 1
        try:
            floors[curve.name] = plain_fit(curve.x, curve.y)[2]
        except RuntimeError:
            failures += 1
    return time.perf_counter() - start, fits, failures, floors


def joint_points(csv: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """240 (N, D, L) points: Epoch AI's extracted Chinchilla runs (the 5 highest losses left
    out, as they did) or a synthetic design of the same size."""
    if csv is not None:
        import pandas as pd

        frame = pd.read_csv(csv)
        n = frame["Model Size"].to_numpy(float)
        d = frame["Training FLOP"].to_numpy(float) / (6 * n)
        loss = frame["loss"].to_numpy(float)
        keep = loss < np.sort(loss)[-5]
        return n[keep], d[keep], loss[keep], f"{csv} ({int(keep.sum())} points)"
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), 240))
    d = n * np.exp(rng.uniform(np.log(1.0), np.log(200.0), 240))
    loss = chinchilla_loss(n, d, **BESIROGLU) * np.exp(rng.normal(0, 0.01, 240))
    return n, d, loss, "synthetic, 240 points drawn from Besiroglu et al.'s law with 1% noise"


def joint_benchmark(n_boot: int, repeats: int, csv: str | None) -> None:
    n, d, loss, what = joint_points(csv)
    fit_chinchilla_law(n[:40], d[:40], loss[:40])  # warm imports
    joint, single = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fit = fit_chinchilla_law(n, d, loss, n_boot=n_boot, seed=0)
        joint.append(time.perf_counter() - start)
        start = time.perf_counter()
        fit_power_law(n, loss, n_boot=n_boot, seed=0)
        single.append(time.perf_counter() - start)
    median, base = statistics.median(joint), statistics.median(single)
    print(f"\njoint law L(N, D) on {what}:")
    print(f"  {fit.law_text(4)}; Huber sum {fit.huber_sum:.10f}; "
          f"{len(fit.warnings)} warnings")
    print(f"  joint fit, {n_boot} pairs resamples:   {median:6.2f} s (best {min(joint):.2f} s; "
          f"target < 10 s: {'met' if median < 10 else 'MISSED'})")
    print(f"  one-variable fit of the same {n.size} points, {n_boot} resamples: {base:6.2f} s")
    print(f"  ratio joint / one-variable: {median / base:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--report", action="store_true", help="also time figures + report")
    parser.add_argument("--joint-only", action="store_true", help="only the joint-law benchmark")
    parser.add_argument("--chinchilla-csv", default=None, metavar="PATH",
                        help="Epoch AI's svg_extracted_data.csv, for the joint fit of real points")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {cores()} cores")
    if args.joint_only:
        joint_benchmark(args.n_boot, args.repeats, args.chinchilla_csv)
        return

    table, _ = synthetic_study(noise=0.002, seed=0)
    print(f"table: {len(table)} rows, {table['budget_tokens'].nunique()} budgets, "
          f"{table['size'].nunique()} sizes, K up to {int(table['K'].max())}; "
          f"n_boot = {args.n_boot}")

    analyze_study(table, n_boot=10)  # warm imports and caches
    timings = {}
    for scheme in ("pairs", "residual"):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            analysis = analyze_study(table, n_boot=args.n_boot, seed=0, bootstrap=scheme)
            runs.append(time.perf_counter() - start)
        timings[scheme] = (statistics.median(runs), min(runs), analysis)
    no_boot = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        point = analyze_study(table, n_boot=0)
        no_boot.append(time.perf_counter() - start)

    baseline = [curve_fit_pass(point) for _ in range(args.repeats)]
    base_time = statistics.median(b[0] for b in baseline)
    _, fits, failures, floors = baseline[0]
    n_curves = sum(c.fit is not None for c in point.curves())

    print(f"\ncurves fitted: {n_curves} (plain curve_fit pass: {fits} fits, {failures} failed)")
    print(f"plain curve_fit pass (no intervals):       {base_time * 1e3:8.1f} ms")
    print(f"robust fits, no bootstrap:                 {statistics.median(no_boot):8.2f} s"
          f"   ({statistics.median(no_boot) / base_time:6.0f}x curve_fit)")
    for scheme, (median, best, _) in timings.items():
        print(f"full analysis, {args.n_boot} {scheme:8s} resamples:  {median:8.2f} s "
              f"(best {best:.2f} s)   ({median / base_time:6.0f}x curve_fit; "
              f"{median / n_curves * 1e3:.0f} ms per curve; target < 20 s: "
              f"{'met' if median < 20 else 'MISSED'})")

    differences = {c.name: abs(c.fit.E - floors[c.name]) for c in point.curves()
                   if c.fit is not None and c.name in floors and np.isfinite(floors[c.name])}
    far = {name: d for name, d in differences.items() if d > 0.05}
    print(f"\nasymptotes, robust vs curve_fit over {len(differences)} curves: median |dE| = "
          f"{np.median(list(differences.values())):.4f} nats; {len(far)} differ by > 0.05 nats"
          + (f" ({', '.join(f'{n}: {d:.3g}' for n, d in far.items())})" if far else ""))
    analysis = timings["pairs"][2]
    joint = next(iter(analysis.joint.values())).asymptote
    print(f"example: double limit at the smallest budget = {joint.format(4)} (pairs), "
          f"{next(iter(timings['residual'][2].joint.values())).asymptote.format(4)} (residual)")

    if args.report:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_report(analysis, folder)
            print(f"figures + report.md/.html: {time.perf_counter() - start:.2f} s")
    joint_benchmark(args.n_boot, args.repeats, args.chinchilla_csv)


if __name__ == "__main__":
    main()
