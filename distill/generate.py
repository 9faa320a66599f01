"""Teacher sampling into a synthetic token store (sequence-level distillation's data).

A teacher is one trained model (self-distillation) or an ensemble of them, combined per
token by a named rule (logit-mean, as the paper). Every sequence starts from EOS and
samples ``seq_len`` tokens at ``temperature``; the store's training stream is those
sequences one after another, each with its leading EOS, so documents stay separated
by EOS as in real data.

Sampling goes batch by batch; batch b draws from a generator seeded by (seed, b), so
the output is a pure function of the spec (on one device) and resuming after a kill
is a truncate-and-continue: ``ckpt/progress.json`` says how many batches are on disk.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.spec import GenerateSpec
from eval.combine import MemberAccumulator
from eval.ensemble import check_members, open_members
from pretrain.load import TrainedRun, resolve_device
from pretrain.model import KVCache, Llama
from pretrain.rundir import RunDir, atomic_write_json, execute_run, read_json
from pretrain.store import MANIFEST_VERSION, TokenStore


def batch_generator(seed: int, batch: int) -> torch.Generator:
    """The CPU generator of one sampling batch: a pure function of (seed, batch)."""
    state = np.random.SeedSequence([seed, batch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def sample_from(logp: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row of log-probabilities (B, V), by inverse CDF of one uniform each.

    The uniforms come from a CPU generator whatever the device, so a seed draws the same
    numbers everywhere, and a tiny float difference in the probabilities moves a sample
    only if its uniform lands within that difference of a boundary.
    """
    probs = torch.softmax(logp.float() / temperature, dim=-1)
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=generator).to(probs.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp_(max=probs.shape[-1] - 1).squeeze(-1)


@torch.no_grad()
def sample_sequences(
    models: Sequence[Llama], n: int, seq_len: int, eos_id: int, generator: torch.Generator,
    rule: str = "logit-mean", temperature: float = 1.0, use_cache: bool = True,
) -> torch.Tensor:
    """``n`` sequences (n, seq_len + 1): EOS, then ``seq_len`` sampled tokens.

    With ``use_cache`` each member keeps a KV cache and sees one new token per step;
    without it every step reruns the whole prefix (the reference the cache must match).
    """
    device = next(models[0].parameters()).device
    seqs = torch.full((n, seq_len + 1), eos_id, dtype=torch.long, device=device)
    caches = [KVCache(m, n, seq_len) for m in models] if use_cache else None
    for t in range(seq_len):
        acc = MemberAccumulator((rule,))
        for i, model in enumerate(models):
            if caches is not None:
                logits = model(seqs[:, t : t + 1], caches[i])[:, -1]
            else:
                logits = model(seqs[:, : t + 1])[:, -1]
            acc.add(logits)
        seqs[:, t + 1] = sample_from(acc.log_probs(rule), temperature, generator)
    return seqs


@dataclass
class _Inputs:
    teachers: list[TrainedRun]
    store: TokenStore


def _prepare(spec: GenerateSpec) -> _Inputs:
    store = TokenStore.expecting(spec.store, spec.store_id)
    teachers = open_members(spec.teacher_dirs, spec.teacher_ids, what="teacher")
    check_members(teachers, store, what="teacher")
    shortest = min(t.spec.seq_len for t in teachers)
    if spec.seq_len > shortest:
        raise ValueError(f"seq_len {spec.seq_len} exceeds the teachers' training seq_len {shortest}")
    return _Inputs(teachers, store)


def _sha256_prefix(path: Path, n_bytes: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while n_bytes > 0 and (block := f.read(min(1 << 22, n_bytes))):
            h.update(block)
            n_bytes -= len(block)
    return h.hexdigest()


def run_generate(spec: GenerateSpec, run_dir: str | Path, log: Callable[[str], Any] = print,
                 progress_seconds: float = 30.0) -> dict:
    """Sample the spec's synthetic store into ``<run_dir>/store`` (resuming); returns result.json."""

    def work(run: RunDir, inputs: _Inputs) -> dict:
        return _generate(spec, run, inputs, log, progress_seconds)

    return execute_run(spec, run_dir, lambda: _prepare(spec), work)


def _generate(spec: GenerateSpec, run: RunDir, inputs: _Inputs, log: Callable[[str], Any],
              progress_seconds: float) -> dict:
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = resolve_device(spec.device)
    real, row = inputs.store, spec.seq_len + 1
    out = run.path / "store"
    out.mkdir(exist_ok=True)
    progress_path = run.ckpt_dir / "progress.json"
    progress = read_json(progress_path) or {"batches": 0, "sequences": 0, "sample_s": 0.0}
    train_bin = out / "train.bin"
    # Whatever a kill left past the last recorded batch is dropped, then sampling continues.
    with open(train_bin, "ab") as f:
        f.truncate(progress["sequences"] * row * real.dtype.itemsize)
    n_batches = math.ceil(spec.n_sequences / spec.batch_size)
    if progress["batches"]:
        log(f"resuming {run.path.name} at batch {progress['batches']}/{n_batches}")
    models = [t.load_model(device, spec.seq_len) for t in inputs.teachers]
    last_log = time.monotonic()
    for b in range(progress["batches"], n_batches):
        started = time.perf_counter()
        n = min(spec.batch_size, spec.n_sequences - b * spec.batch_size)
        seqs = sample_sequences(models, n, spec.seq_len, real.eos_id, batch_generator(spec.seed, b),
                                spec.rule, spec.temperature)
        with open(train_bin, "ab") as f:
            f.write(seqs.cpu().numpy().astype(real.dtype).tobytes())
            f.flush()
            os.fsync(f.fileno())  # on disk before progress.json says so
        progress = {"batches": b + 1, "sequences": progress["sequences"] + n,
                    "sample_s": progress["sample_s"] + time.perf_counter() - started}
        atomic_write_json(progress_path, progress)
        if time.monotonic() - last_log >= progress_seconds or b + 1 == n_batches:
            last_log = time.monotonic()
            log(f"batch {b + 1}/{n_batches}: {progress['sequences'] * spec.seq_len:,} tokens sampled, "
                f"{progress['sequences'] * spec.seq_len / max(progress['sample_s'], 1e-9):,.0f} tok/s")
    manifest = _finish_store(spec, inputs, out, progress["sequences"])
    store = TokenStore(out)
    sampled = progress["sequences"] * spec.seq_len
    return {
        "kind": "generate", "store": str(out), "store_id": store.store_id,
        "sequences": progress["sequences"], "sampled_tokens": sampled, "store_tokens": store.train_size,
        "teacher": manifest["teacher"], "sample_s": progress["sample_s"],
        "tokens_per_s": sampled / progress["sample_s"] if progress["sample_s"] > 0 else math.nan,
        "device": str(device),
    }


def _finish_store(spec: GenerateSpec, inputs: _Inputs, out: Path, sequences: int) -> dict:
    """Copy the real store's tokenizer and validation set, then write the manifest last
    (a store without a manifest does not open, so a half-sampled one never looks whole)."""
    real, teachers = inputs.store, inputs.teachers
    for name in (real.manifest["tokenizer"]["file"], "val.bin"):
        shutil.copyfile(real.path / name, out / name)
    n_tokens = sequences * (spec.seq_len + 1)
    manifest = {
        "version": MANIFEST_VERSION,
        "source": {"kind": "synthetic", "real_store": str(real.path), "real_store_id": real.store_id},
        "order": (f"{sequences} sequences sampled in batches of {spec.batch_size}; each is EOS then "
                  f"{spec.seq_len} tokens sampled at temperature {spec.temperature:g}; batch b uses "
                  f"a generator seeded by (seed {spec.seed}, b); val.bin is the real store's"),
        "tokenizer": real.manifest["tokenizer"],
        "dtype": real.dtype.name,
        "train": {"tokens": n_tokens, "documents": sequences,
                  "sha256": _sha256_prefix(out / "train.bin", n_tokens * real.dtype.itemsize)},
        "val": real.manifest["val"],
        "teacher": {
            "run_ids": [t.run_id for t in teachers], "weights_sha256": [t.weights_sha256 for t in teachers],
            "dirs": [str(t.path) for t in teachers], "size": teachers[0].spec.size, "K": len(teachers),
            "rule": spec.rule, "temperature": spec.temperature, "seed": spec.seed,
            "seq_len": spec.seq_len, "batch_size": spec.batch_size,
            "sampled_tokens": sequences * spec.seq_len, "tokenizer_sha256": real.tokenizer_sha256,
            "generate_run_id": spec.run_id,
        },
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
