"""What the demo's learning-curve validations cost in demo time (issue 24: within 5%).

The demo validates every 500 steps (``training.val_every`` in sweeps/studies/demo.yaml) so the
report can draw learning curves; before, it validated at each run's end only. This prices the
extra validations with the real training loop on the demo's own store (the King James Bible,
vocab 512, the 50k-token validation set), at the demo's batch (8 x 128) and one thread:

- per size, two ``train_run`` calls of the same run, alternated over ``--rounds`` in this
  process: one validating every ``--every`` steps, one at its end only. The difference over
  the extra validations is the time of one validation; the plain run's time per step is the
  training cost (start-up included, as in a demo run).
- the demo's own runs (``--table``: a finished demo's results.csv, by default the test
  fixture) say how many steps each run trained and how many validations every 500 steps adds
  (one at each multiple of 500 before its last step; the last step always validates).

Prints each size's validation and step times, and the extra validations' time over the demo
runs' training time, with the CPU model.

    python bench/bench_validation.py [--rounds 2] [--steps 125] [--every 25]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import cpu_model  # bench/ is on sys.path when run as a script

from pretrain.corpus import CorpusSource
from pretrain.spec import TrainSpec
from pretrain.store import PrepareConfig, TokenStore, prepare_store
from pretrain.train import train_run

DEMO_VAL_EVERY = 500
BATCH, SEQ_LEN = 8, 128
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "demo" / "results.csv"


def demo_store(folder: Path) -> TokenStore:
    """The demo's store: 128k training tokens of the Bible, vocab 512, 50k validation tokens."""
    out = folder / "store"
    prepare_store(PrepareConfig(source=CorpusSource(kind="bible"), out=str(out), vocab_size=512,
                                val_tokens=50_000, max_train_tokens=128_000), log=lambda _: None)
    return TokenStore(out)


def timed_run(spec: TrainSpec, folder: Path) -> float:
    start = time.perf_counter()
    train_run(spec, folder / f"{spec.run_id}-{time.monotonic_ns()}", log=lambda _: None)
    return time.perf_counter() - start


def size_costs(store: TokenStore, size: str, steps: int, every: int, rounds: int,
               folder: Path) -> tuple[float, float]:
    """(seconds per validation, seconds per training step) of ``size`` in the real loop."""
    tokens = steps * BATCH * SEQ_LEN
    base = TrainSpec(size=size, store=str(store.path), store_id=store.store_id, tokens=tokens,
                     batch_size=BATCH, seq_len=SEQ_LEN, threads=1, val_every=10**9)
    often = dataclasses.replace(base, val_every=every)
    extra = math.ceil(steps / every) - 1  # validations before the last step
    plain, validated = [], []
    for _ in range(rounds):
        plain.append(timed_run(base, folder))
        validated.append(timed_run(often, folder))
    t_plain, t_validated = statistics.median(plain), statistics.median(validated)
    return max(0.0, t_validated - t_plain) / extra, t_plain / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=125, help="steps per timed run (125: one epoch of 128k)")
    ap.add_argument("--every", type=int, default=25, help="validation interval of the validated runs")
    ap.add_argument("--table", type=Path, default=FIXTURE, help="a finished demo's results.csv")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    runs = pd.read_csv(args.table)
    runs = runs[(runs.status == "succeeded") & runs.kind.isin(["train", "distill"])].drop_duplicates("run_id")
    runs = runs.assign(steps=(runs.tokens_seen // (BATCH * SEQ_LEN)).astype(int))
    runs = runs.assign(extra=((runs.steps - 1) // DEMO_VAL_EVERY).clip(lower=0))
    print(f"CPU: {cpu_model()}; {len(runs)} demo training runs from {args.table}, "
          f"{int(runs.extra.sum())} validations added by val_every {DEMO_VAL_EVERY}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = demo_store(folder)
        costs = {}
        for size in sorted(runs["size"].unique(), key=lambda s: runs[runs["size"] == s].n_params.iloc[0]):
            costs[size] = size_costs(store, size, args.steps, args.every, args.rounds, folder)
            print(f"  {size:>10}: one validation of {store.val_size:,} tokens {costs[size][0]:.2f} s, "
                  f"one training step {1e3 * costs[size][1]:.1f} ms")
    val_s = sum(r.extra * costs[r.size][0] for r in runs.itertuples())
    train_s = sum(r.steps * costs[r.size][1] for r in runs.itertuples())
    print(f"extra validations {val_s:,.0f} s over the demo runs' {train_s:,.0f} s of training "
          f"(one thread each): {val_s / train_s:.1%} of demo training time (target < 5%)")


if __name__ == "__main__":
    main()
