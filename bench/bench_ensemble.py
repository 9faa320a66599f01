"""Ensemble evaluation cost in K, and teacher sampling with and without the KV cache.

1. ``eval.ensemble.ensemble_losses`` over a whole validation set for K = 1, 2, 4 members
   (both rules, members reloaded per chunk with safetensors, as ``dcsl ensemble eval``
   runs): wall time, time / K relative to K = 1 (target: near 1, i.e. linear in K), and
   peak memory above the starting point (target: flat in K). On CPU, memory is RSS
   sampled by a thread, with glibc told to mmap large blocks so that RSS follows live
   memory (``rss_tracks_live_memory``); on a GPU, CUDA's peak allocated bytes.
2. ``distill.generate.sample_sequences`` at 512-token sequences on a tiny model, with
   the KV cache and without it (every step reruns the whole prefix through the model,
   output head included, as a plain ``model(prefix)[:, -1]`` does): tokens/s of each and
   their ratio (target >= 5x), plus whether both drew the same tokens. Runs first.

Members are untrained (random init, one seed each) and saved as finished run
directories; neither time nor memory depends on the weights' values. Everything is
measured in this one process, alternating configurations over rounds.

    python bench/bench_ensemble.py [--size tiny-200k] [--rounds 2] [--gen-len 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from distill.generate import batch_generator, sample_sequences
from eval.ensemble import PeakMemory, chunk_sequences_for, ensemble_losses, rss_tracks_live_memory
from pretrain.corpus import CorpusSource
from pretrain.load import open_run
from pretrain.model import build_model
from pretrain.rundir import RunDir
from pretrain.spec import TrainSpec
from pretrain.store import PrepareConfig, TokenStore, prepare_store


def untrained_member(root: Path, store: TokenStore, size: str, seq_len: int, seed: int) -> Path:
    """A finished-looking training run whose weights are a fresh init with ``seed``."""
    spec = TrainSpec(size=size, store=str(store.path), store_id=store.store_id, tokens=store.train_size,
                     seq_len=seq_len, init_seed=seed, data_seed=seed)
    run = RunDir(root / spec.dirname)
    run.path.mkdir(parents=True)
    run.write_spec(spec.to_json())
    model = build_model(size, store.vocab_size, seq_len, seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run.path / "model.safetensors"))
    run.mark_succeeded({"kind": "train", "note": "untrained benchmark member"})
    return run.path


def bench_ensemble(members, store: TokenStore, seq_len: int, rounds: int, device: torch.device,
                   buffer_mb: int) -> None:
    rules = ("logit-mean", "prob-mean")
    chunk = chunk_sequences_for(buffer_mb, seq_len, store.vocab_size, len(rules))
    tokens = store.val_tokens()
    print(f"ensemble eval: {len(tokens):,} validation tokens, seq {seq_len}, vocab {store.vocab_size}, "
          f"chunks of {chunk} sequences ({buffer_mb} MB budget), {device}")
    times: dict[int, list[float]] = {1: [], 2: [], 4: []}
    peaks: dict[int, list[int]] = {1: [], 2: [], 4: []}
    for _ in range(rounds):
        for k in times:
            started = time.perf_counter()
            with PeakMemory(device) as mem:
                ensemble_losses(members[:k], tokens, seq_len, rules, batch_size=16, chunk_sequences=chunk,
                                device=device)
            times[k].append(time.perf_counter() - started)
            peaks[k].append(mem.peak_bytes - mem.baseline_bytes)
    t1, m1 = statistics.median(times[1]), statistics.median(peaks[1])
    for k in times:
        t, m = statistics.median(times[k]), statistics.median(peaks[k])
        print(f"  K={k}: {t:6.2f} s  ({t / t1 / k:.2f} x linear)   peak +{m / 2**20:7.1f} MB  "
              f"({m / m1:.2f} x K=1)")
    print(f"time(K=4)/time(K=1): {statistics.median(times[4]) / t1:.2f}  (linear: 4.00)")
    print(f"memory(K=4)/memory(K=1): {statistics.median(peaks[4]) / m1:.2f}  (flat: 1.00); "
          f"memory(K=4)/memory(K=2): {statistics.median(peaks[4]) / statistics.median(peaks[2]):.2f}")


def bench_generation(size: str, vocab: int, gen_len: int, batch: int, rounds: int, device: torch.device) -> None:
    model = build_model(size, vocab, gen_len, 0).to(device).eval()
    rate: dict[bool, list[float]] = {True: [], False: []}
    same = True
    for _ in range(rounds):
        out = {}
        for use_cache in (True, False):
            started = time.perf_counter()
            out[use_cache] = sample_sequences([model], batch, gen_len, 0, batch_generator(0, 0),
                                              use_cache=use_cache)
            rate[use_cache].append(batch * gen_len / (time.perf_counter() - started))
        same &= torch.equal(out[True], out[False])
    cached, uncached = statistics.median(rate[True]), statistics.median(rate[False])
    print(f"generation: {size}, vocab {vocab}, {batch} sequences x {gen_len} tokens, {device}")
    print(f"  KV cache {cached:,.0f} tokens/s; no cache {uncached:,.0f} tokens/s; same tokens: {same}")
    print(f"KV cache speed-up: {cached / uncached:.1f}x  (target >= 5x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny-200k")
    ap.add_argument("--store", default=None, help="token store (default: a Bible store built in a temp dir)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--buffer-mb", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gen-size", default="tiny-200k")
    ap.add_argument("--gen-len", type=int, default=512)
    ap.add_argument("--gen-batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=2048, help="vocabulary of the generation model")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"{torch.get_num_threads()} threads")
    # Generation first: the allocator setting below (mmap for every large block) would
    # charge page faults to the uncached baseline's big per-step activations.
    bench_generation(args.gen_size, args.vocab, args.gen_len, args.gen_batch, args.rounds, device)
    if device.type == "cpu":
        rss_tracks_live_memory()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.store:
            store = TokenStore(args.store)
        else:
            prepare_store(PrepareConfig(source=CorpusSource(kind="bible"), out=str(root / "store"),
                                        vocab_size=2048, val_tokens=50_000, max_train_tokens=100_000,
                                        tokenizer_docs=2_000), log=lambda _: None)
            store = TokenStore(root / "store")
        members = [open_run(untrained_member(root / "runs", store, args.size, args.seq_len, k)) for k in range(4)]
        bench_ensemble(members, store, args.seq_len, args.rounds, device, args.buffer_mb)


if __name__ == "__main__":
    main()
