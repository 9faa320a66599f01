"""Training-step throughput: dcsl's Lightning loop against a bare PyTorch loop.

Same model (tiny-5m), same batches, same optimiser, same thread count, in one process,
alternating the two loops to share the machine's noise. Prints tokens/s of each, their
ratio, and achieved FLOP/s (6N + attention per token) as a fraction of the fp32 matmul
peak measured here. Targets (issue 2): ratio >= 0.95, >= 65% of matmul peak.

    python bench/bench_train.py [--size tiny-5m] [--steps 8] [--rounds 2]

On a GPU (found by itself) both loops train in bf16-mixed and it prints MFU: model FLOP/s
over the datasheet's dense bf16 peak and over a measured bf16 matmul peak. The paper's
batch at 300m (issue 15's target: MFU >= 40% on an H100-class GPU):

    python bench/bench_train.py --size 300m --seq-len 4096 --batch 64 --micro 8 \
        --vocab 128256 --steps 6 --warmup 3 --rounds 1 --compile

The cost of metrics.csv (issue 24: step time with metrics over step time without, target
< 1.02): the dcsl loop writing a row every --metrics-every steps (the default, 10; each row
reads the gradient norm) against the same loop writing none, alternated over --rounds:

    python bench/bench_train.py --metrics-overhead [--steps 60] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from machine import cpu_model  # bench/ is on sys.path when run as a script
from peak import datasheet_peak, matmul_peak

from pretrain.data import EpochSchedule, StepDataset
from pretrain.lit import PretrainModule, sequence_loss, warmup_cosine
from pretrain.metrics import METRICS_FILE, MetricsFile, MetricsLog
from pretrain.model import build_model
from pretrain.sizes import flops_per_token, get_shape
from pretrain.spec import DEFAULT_METRICS_EVERY, TrainSpec
from pretrain.train import build_trainer


class LoopTimer(L.Callback):
    """Wall time of the loop from the end of warm-up steps to the last step's end."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        _sync()
        if trainer.global_step == self.warmup:
            self.t0 = time.perf_counter()
        self.t1 = time.perf_counter()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class TimedMetricsLog(MetricsLog):
    """fit_run's metrics writer, timing its own work (the gradient norm, the row, the write) in
    the timed steps, to tell its cost apart from the machine's noise."""

    def __init__(self, file: MetricsFile, module: PretrainModule, warmup: int) -> None:
        super().__init__(file)
        self.warmup, self.seconds = warmup, 0.0
        norm = module._grad_norm

        def timed_norm(opt):  # noqa: ANN001, ANN202
            t0 = time.perf_counter()
            value = norm(opt)
            if module.global_step >= self.warmup:
                self.seconds += time.perf_counter() - t0
            return value

        module._grad_norm = timed_norm

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step > self.warmup:
            self.seconds += time.perf_counter() - t0


def lightning_loop(spec: TrainSpec, schedule: EpochSchedule, vocab: int, warmup: int,
                   metrics: bool = False) -> float | tuple[float, float]:
    """Seconds of the timed steps; ``metrics``: with fit_run's metrics.csv writer (rows every
    ``spec.metrics_every`` steps), and then also the seconds its own work took in them."""
    module = PretrainModule(spec, vocab, schedule.total_steps, schedule.steps_per_epoch)
    timer = LoopTimer(warmup)
    with tempfile.TemporaryDirectory() as root:
        writer = None
        if metrics:
            file = MetricsFile(Path(root) / METRICS_FILE)
            file.open(0)
            writer = TimedMetricsLog(file, module, warmup)
        trainer = build_trainer(spec, schedule.total_steps, root, [writer] * metrics + [timer])
        loader = torch.utils.data.DataLoader(StepDataset(schedule), batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
        if writer is not None:
            file.close()
            return timer.t1 - timer.t0, writer.seconds
    return timer.t1 - timer.t0


def metrics_overhead(spec: TrainSpec, schedule: EpochSchedule, vocab: int, warmup: int, rounds: int,
                     every: int) -> None:
    """Step time with metrics.csv over step time without (the norm and the row every ``every``
    steps), the two loops alternated to share the machine's noise."""
    off = dataclasses.replace(spec, metrics_every=10**9)  # no row (the last step's norm is read)
    on = dataclasses.replace(spec, metrics_every=every)
    times: dict[str, list[float]] = {"without": [], "with": []}
    shares = []
    for r in range(rounds):
        times["without"].append(lightning_loop(off, schedule, vocab, warmup))
        seconds, own = lightning_loop(on, schedule, vocab, warmup, metrics=True)
        times["with"].append(seconds)
        shares.append(own / seconds)
        print(f"  round {r + 1}: without {times['without'][-1]:.3f}s  with {seconds:.3f}s, "
              f"of which the metrics' own work {own * 1e3:.2f} ms")
    ratio = statistics.median(times["with"]) / statistics.median(times["without"])
    steps = schedule.total_steps - warmup
    print(f"metrics overhead on {cpu_model()}, {torch.get_num_threads()} threads, {spec.size}, batch "
          f"{spec.batch_size} x {spec.seq_len}, a row every {every} steps, {steps} steps, median of {rounds} rounds:")
    print(f"  step time with / without metrics.csv: {ratio:.4f}  (target < 1.02; wall clock, as noisy "
          "as the machine)")
    print(f"  the metrics' own work (norm, row, write) timed inside the loop: {statistics.median(shares):.3%} "
          "of step time, i.e. a ratio of "
          f"{1 / (1 - statistics.median(shares)):.4f} (on a GPU it also waits for the step's queued kernels)")


def bare_loop(spec: TrainSpec, schedule: EpochSchedule, vocab: int, warmup: int) -> float:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = build_model(spec.size, vocab, spec.seq_len, spec.init_seed).to(device)
    forward = torch.compile(model) if spec.compile else model
    opt = torch.optim.AdamW(model.decay_groups(spec.weight_decay), lr=spec.lr, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, schedule.total_steps, 1))
    micro = spec.micro_batch_size or spec.batch_size
    t0 = None
    for step in range(schedule.total_steps):
        if step == warmup:
            _sync()
            t0 = time.perf_counter()
        rows = torch.from_numpy(schedule.batch(step)).to(device)
        n = rows.shape[0] * (rows.shape[1] - 1)
        for part in rows.split(micro):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss, _ = sequence_loss(forward, part)
            (loss / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        loss.item()
    _sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny-5m")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per loop (default: 8; 60 with "
                    "--metrics-overhead)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--micro", type=int, default=None, help="micro-batch (default: the whole batch)")
    ap.add_argument("--compile", action="store_true", help="torch.compile both loops' models")
    ap.add_argument("--metrics-overhead", action="store_true",
                    help="measure metrics.csv's cost instead: dcsl's loop with and without it")
    ap.add_argument("--metrics-every", type=int, default=DEFAULT_METRICS_EVERY)
    args = ap.parse_args()
    args.steps = args.steps or (60 if args.metrics_overhead else 8)
    cuda = torch.cuda.is_available()

    total = args.steps + args.warmup
    tokens = np.random.default_rng(0).integers(0, args.vocab, total * args.batch * args.seq_len + 1)
    schedule = EpochSchedule(tokens.astype(np.uint16), args.seq_len, args.batch, 1, 0)
    spec = TrainSpec(size=args.size, store="-", store_id="-", tokens=len(tokens), batch_size=args.batch,
                     seq_len=args.seq_len, precision="bf16-mixed" if cuda else "32-true",
                     micro_batch_size=args.micro, compile=args.compile)
    if args.metrics_overhead:
        metrics_overhead(spec, schedule, args.vocab, args.warmup, args.rounds, args.metrics_every)
        return
    shape = get_shape(args.size, args.vocab)
    step_tokens = args.batch * args.seq_len
    if cuda:
        name = torch.cuda.get_device_name()
        peak = matmul_peak(8192, 10, "cuda", torch.bfloat16)
        sheet = datasheet_peak(name)
        print(f"{args.size}: {name}, bf16-mixed, batch {args.batch} x {args.seq_len}, micro {spec.micro_batch_size}, "
              f"compile {args.compile}; bf16 matmul peak {peak / 1e12:.0f} TFLOP/s measured, "
              f"{sheet / 1e12 if sheet else float('nan'):.0f} on the datasheet")
    else:
        peak = matmul_peak()
        print(f"{args.size}: {cpu_model()}, {torch.get_num_threads()} threads, batch {args.batch} x {args.seq_len}, "
              f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    times: dict[str, list[float]] = {"bare": [], "dcsl": []}
    for r in range(args.rounds):
        times["bare"].append(bare_loop(spec, schedule, args.vocab, args.warmup))
        times["dcsl"].append(lightning_loop(spec, schedule, args.vocab, args.warmup))
        print(f"  round {r + 1}: bare {times['bare'][-1]:.2f}s  dcsl {times['dcsl'][-1]:.2f}s "
              f"for {args.steps} steps")
    rate = {k: args.steps * step_tokens / statistics.median(v) for k, v in times.items()}
    fpt = flops_per_token(shape, args.seq_len)
    for k in ("bare", "dcsl"):
        print(f"{k:>5}: {rate[k]:,.0f} tokens/s, {rate[k] * fpt / 1e9:.1f} GFLOP/s, "
              f"{rate[k] * fpt / peak:.0%} of matmul peak")
    print(f"ratio dcsl/bare: {rate['dcsl'] / rate['bare']:.3f}  (target >= 0.95)")
    if cuda:
        if sheet:
            print(f"dcsl MFU (datasheet bf16 peak): {rate['dcsl'] * fpt / sheet:.1%}  (target >= 40% at 300m)")
        print(f"dcsl FLOP/s over the measured bf16 matmul peak: {rate['dcsl'] * fpt / peak:.1%}")
    else:
        print(f"dcsl MFU vs measured peak: {rate['dcsl'] * fpt / peak:.0%}  (target >= 65%)")


if __name__ == "__main__":
    main()
