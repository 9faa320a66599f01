"""Peak memory and speed of the chunked loss (pretrain.loss) against the plain one.

The output head and loss of the paper's 150m model (d_model 512, vocab 128,256) on fixed
features, at a reduced number of tokens so that it runs on a CPU. Each mode's peak memory
is measured in a fresh process (max RSS over its baseline); speed alternates the two
modes in one process to share the machine's noise. Prints the CPU model, the peaks, and
the chunked/plain ratios of memory and of time.

    python bench/bench_loss.py [--tokens 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
from machine import cpu_model  # bench/ is on sys.path when run as a script

from pretrain.loss import CHUNK_LOGITS, summed_cross_entropy

D_MODEL, VOCAB = 512, 128_256  # the paper's 150m


class HeadOnly(torch.nn.Module):
    """The output head of a model whose final features are fixed (a bench stand-in for Llama)."""

    def __init__(self, tokens: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.shape = SimpleNamespace(vocab_size=VOCAB)
        self.head = torch.nn.Linear(D_MODEL, VOCAB, bias=False)
        self.h = torch.nn.Parameter(torch.randn(1, tokens, D_MODEL, generator=generator))

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.h

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(inputs))

    def head_loss(self, inputs: torch.Tensor, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        return loss(self.h.reshape(-1, D_MODEL), self.head.weight)


def step(model: HeadOnly, targets: torch.Tensor, chunked: bool) -> float:
    model.zero_grad(set_to_none=True)
    limit = CHUNK_LOGITS if chunked else targets.numel() * VOCAB
    loss = summed_cross_entropy(model, targets, targets, chunk_logits=limit)
    loss.backward()
    return loss.item()


def status_bytes(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_in_fresh_process(tokens: int, chunked: bool) -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    code = (f"import torch, json; import bench_loss as b; torch.manual_seed(0); "
            f"m = b.HeadOnly({tokens}); t = torch.randint(0, b.VOCAB, (1, {tokens})); "
            f"base = b.status_bytes('VmRSS'); b.step(m, t, {chunked}); "
            f"print(json.dumps(b.status_bytes('VmHWM') - base))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/", 1)[0])
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"head + loss of d_model {D_MODEL}, vocab {VOCAB:,}, {args.tokens} tokens: "
          f"{args.tokens * VOCAB / 1e6:.0f}M logits ({args.tokens * VOCAB * 4 / 2**20:.0f} MiB in fp32); "
          f"slices of {CHUNK_LOGITS // VOCAB} tokens")
    peaks = {chunked: peak_in_fresh_process(args.tokens, chunked) for chunked in (False, True)}
    model = HeadOnly(args.tokens)
    targets = torch.randint(0, VOCAB, (1, args.tokens), generator=torch.Generator().manual_seed(1))
    losses = {chunked: step(model, targets, chunked) for chunked in (False, True)}  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for chunked in (False, True):
            t0 = time.perf_counter()
            step(model, targets, chunked)
            times[chunked].append(time.perf_counter() - t0)
    plain_s, chunked_s = statistics.median(times[False]), statistics.median(times[True])
    print(f"loss: plain {losses[False]:.4f}, chunked {losses[True]:.4f}")
    print(f"peak memory over baseline: plain {peaks[False] / 2**20:,.0f} MiB, "
          f"chunked {peaks[True] / 2**20:,.0f} MiB, ratio {peaks[True] / peaks[False]:.2f}")
    print(f"step time (median of {args.rounds}): plain {plain_s:.3f}s, chunked {chunked_s:.3f}s, "
          f"chunked/plain {chunked_s / plain_s:.2f}")


if __name__ == "__main__":
    main()
