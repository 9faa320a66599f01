"""Training-step throughput: dcsl's Lightning loop against a bare PyTorch loop.

Same model (tiny-5m), same batches, same optimiser, same thread count, in one process,
alternating the two loops to share the machine's noise. Prints tokens/s of each, their
ratio, and achieved FLOP/s (6N + attention per token) as a fraction of the fp32 matmul
peak measured here. Targets (issue 2): ratio >= 0.95, >= 65% of matmul peak.

    python bench/bench_train.py [--size tiny-5m] [--steps 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning as L
import numpy as np
import torch
from peak import matmul_peak  # bench/ is on sys.path when run as a script

from pretrain.data import EpochSchedule, StepDataset
from pretrain.lit import PretrainModule, sequence_loss, warmup_cosine
from pretrain.model import build_model
from pretrain.sizes import flops_per_token, get_shape
from pretrain.spec import TrainSpec
from pretrain.train import build_trainer


class LoopTimer(L.Callback):
    """Wall time of the loop from the end of warm-up steps to the last step's end."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step == self.warmup:
            self.t0 = time.perf_counter()
        self.t1 = time.perf_counter()


def lightning_loop(spec: TrainSpec, schedule: EpochSchedule, vocab: int, warmup: int) -> float:
    module = PretrainModule(spec, vocab, schedule.total_steps, schedule.steps_per_epoch)
    timer = LoopTimer(warmup)
    with tempfile.TemporaryDirectory() as root:
        trainer = build_trainer(spec, schedule.total_steps, root, [timer])
        loader = torch.utils.data.DataLoader(StepDataset(schedule), batch_size=None)
        trainer.fit(module, train_dataloaders=loader)
    return timer.t1 - timer.t0


def bare_loop(spec: TrainSpec, schedule: EpochSchedule, vocab: int, warmup: int) -> float:
    model = build_model(spec.size, vocab, spec.seq_len, spec.init_seed)
    opt = torch.optim.AdamW(model.decay_groups(spec.weight_decay), lr=spec.lr, betas=(0.9, 0.95), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, schedule.total_steps, 1))
    t0 = None
    for step in range(schedule.total_steps):
        if step == warmup:
            t0 = time.perf_counter()
        rows = torch.from_numpy(schedule.batch(step))
        loss, n = sequence_loss(model, rows)
        (loss / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        loss.item()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny-5m")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per loop")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()

    total = args.steps + args.warmup
    tokens = np.random.default_rng(0).integers(0, args.vocab, total * args.batch * args.seq_len + 1)
    schedule = EpochSchedule(tokens.astype(np.uint16), args.seq_len, args.batch, 1, 0)
    spec = TrainSpec(size=args.size, store="-", store_id="-", tokens=len(tokens), batch_size=args.batch,
                     seq_len=args.seq_len, precision="32-true")
    shape = get_shape(args.size, args.vocab)
    step_tokens = args.batch * args.seq_len
    peak = matmul_peak()
    print(f"{args.size}: {torch.get_num_threads()} threads, batch {args.batch} x {args.seq_len}, "
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
    print(f"dcsl MFU vs measured peak: {rate['dcsl'] * fpt / peak:.0%}  (target >= 65%)")


if __name__ == "__main__":
    main()
