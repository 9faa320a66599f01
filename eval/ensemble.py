"""Ensemble evaluation as a run kind: K trained members, one streaming pass, every nested K.

The validation set is cut into chunks of whole sequences. For each chunk the members
are run one after another and folded into a ``MemberAccumulator``; after member k the
accumulator holds the ensemble of members 0..k, so the losses of every nested ensemble
(K = 1..K_max) and every rule come out of the same pass. Only one member's logits and
one running buffer per rule exist at any time, for one chunk: memory does not grow
with K. By default members are also loaded one at a time (reloaded per chunk, with
safetensors); ``keep_members`` trades K models of memory for no reloads.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from eval.combine import MemberAccumulator
from eval.kinds import EnsembleEvalSpec
from eval.rules import LOSS_RULES, RULES, SOUP, check_rules
from eval.soup import soup_nll
from pretrain.data import validation_batches
from pretrain.load import RunNotReadyError, TrainedRun, open_run, resolve_device
from pretrain.rundir import RunDir, execute_run
from pretrain.sizes import param_counts
from pretrain.store import TokenStore

T = TypeVar("T")


def check_members(runs: Sequence[TrainedRun], store: TokenStore | None = None, what: str = "member") -> None:
    """Members must share a size and a tokenizer (and the validation store's tokenizer)."""
    if not runs:
        raise ValueError(f"no {what}s given")
    first = runs[0]
    seen: dict[str, Path] = {}
    for k, run in enumerate(runs):
        if run.run_id in seen:
            raise ValueError(f"{what} {k} ({run.path}) is the same run as {seen[run.run_id]}")
        seen[run.run_id] = run.path
        if run.spec.size != first.spec.size:
            raise ValueError(f"{what} {k} ({run.path}) is size {run.spec.size}, but {what} 0 "
                             f"({first.path}) is {first.spec.size}: {what}s must share a size")
    check_tokenizers(runs, store, what)


def check_tokenizers(runs: Sequence[TrainedRun], store: TokenStore | None = None, what: str = "member") -> None:
    """The runs share one tokenizer (and the store's, given one): their token ids mean the same."""
    first = runs[0]
    for k, run in enumerate(runs[1:], start=1):
        if run.store.tokenizer_sha256 != first.store.tokenizer_sha256:
            raise ValueError(f"{what} {k} ({run.path}) uses tokenizer {run.store.tokenizer_sha256[:12]}, "
                             f"but {what} 0 ({first.path}) uses {first.store.tokenizer_sha256[:12]}")
    if store is not None:
        store.check_tokenizer(first.store.tokenizer_sha256, f"{what} 0 ({first.path})")


def open_members(dirs: Sequence[str | Path], ids: Sequence[str] | None = None,
                 what: str = "member") -> list[TrainedRun]:
    """Open the run directories as finished runs sharing one tokenizer; given ``ids`` (what a
    spec names), check each directory holds its run. One-line errors name the run."""
    if not dirs:
        raise ValueError(f"no {what}s given")
    if ids is not None and len(ids) != len(dirs):
        raise ValueError(f"{len(dirs)} {what} directories for {len(ids)} {what} ids: "
                         "each id needs its directory")
    runs = []
    for k, path in enumerate(dirs):
        try:
            run = open_run(path)
        except RunNotReadyError:
            raise  # it names the run already
        except (ValueError, FileNotFoundError) as e:
            # the store's errors (its tokenizer file missing, say) name the store, not the run
            raise ValueError(f"run {path}: {e}") from None
        if ids is not None and run.run_id != ids[k]:
            raise ValueError(f"{what} {k} directory {run.path} holds run {run.run_id}, "
                             f"but the spec names {ids[k]}")
        runs.append(run)
    check_tokenizers(runs, what=what)
    return runs


def rss_tracks_live_memory(threshold: int = 1 << 18) -> bool:
    """Make glibc serve every allocation over ``threshold`` bytes by mmap, so freeing a
    tensor returns its pages at once and RSS follows live memory (for measurements).

    By default glibc raises that threshold as large blocks are freed and then keeps
    freed blocks in its heap, where fragmentation makes RSS creep up with the number
    of alloc/free cycles whatever the live memory. Process-wide and permanent (it turns
    glibc's dynamic threshold off); returns False where there is no glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(-3, threshold))  # -3 is M_MMAP_THRESHOLD


class PeakMemory:
    """Peak memory while a block runs: CUDA bytes allocated on a GPU, else sampled RSS.

    Peak RSS from getrusage only ever rises over a process's life, so on CPU a thread
    samples /proc/self/statm instead; that makes several measurements in one process
    comparable. ``baseline_bytes`` is the reading at entry.
    """

    def __init__(self, device: torch.device | str = "cpu", interval_s: float = 0.0005) -> None:
        self.device, self.interval_s = torch.device(device), interval_s
        self.peak_bytes = self.baseline_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def rss_bytes() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, self.rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_bytes = torch.cuda.memory_allocated(self.device)
        else:
            self.baseline_bytes = self.peak_bytes = self.rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, self.rss_bytes())


@dataclass
class EnsembleLosses:
    """Summed negative log-likelihoods of one pass; ``losses`` turns them into means."""

    rules: tuple[str, ...]
    nll: dict[str, list[float]]
    """rule -> summed NLL of the ensemble of members 0..k, for k = 0..K-1."""
    member_nll: list[float]
    """Summed NLL of each member alone."""
    tokens: int = 0
    chunk_sequences: int = 0
    buffer_bytes: int = 0
    """Bytes of the largest chunk's logits plus one running buffer per rule."""
    loads: int = 0
    """Member loads from disk (K per chunk unless members are kept)."""

    def losses(self, rule: str) -> list[float]:
        return [s / self.tokens for s in self.nll[rule]]

    def member_losses(self) -> list[float]:
        return [s / self.tokens for s in self.member_nll]


def chunk_sequences_for(buffer_mb: int, seq_len: int, vocab_size: int, n_rules: int) -> int:
    """Sequences per chunk so that one member's logits, the rule buffers and the two
    transients of a prob-mean update (log-softmax, log-add-exp) fit in ``buffer_mb``."""
    per_sequence = seq_len * vocab_size * 4 * (n_rules + 3)
    return max(1, buffer_mb * 2**20 // per_sequence)


@torch.no_grad()
def ensemble_losses(
    members: Sequence[TrainedRun], tokens: np.ndarray, seq_len: int, rules: Sequence[str] = RULES,
    batch_size: int = 16, chunk_sequences: int = 64, device: torch.device | str = "cpu",
    keep_members: bool = False, autocast: bool = False,
) -> EnsembleLosses:
    """One streaming pass over ``tokens`` (a validation stream) and the members.

    Every token but the first is scored once (full sequences, then the tail), exactly
    as training's validation does, so K = 1 reproduces a member's own validation loss.
    """
    rules, device = check_rules(list(rules), LOSS_RULES), torch.device(device)
    k_max = len(members)
    out = EnsembleLosses(rules, {r: [0.0] * k_max for r in rules}, [0.0] * k_max, chunk_sequences=chunk_sequences)
    max_len = max(seq_len, *(m.spec.seq_len for m in members))
    soups, rules = SOUP in rules, tuple(r for r in rules if r != SOUP)
    resident = [m.load_model(device, max_len) for m in members] if keep_members else None
    out.loads = k_max if keep_members else 0
    for rows in validation_batches(tokens, seq_len, chunk_sequences):
        rows_t = torch.from_numpy(rows).to(device)
        inputs, targets = rows_t[:, :-1], rows_t[:, 1:]
        acc = MemberAccumulator(rules) if rules else None
        for k, member in enumerate(members):
            if resident is not None:
                model = resident[k]
            else:
                model, out.loads = member.load_model(device, max_len), out.loads + 1
            # Filled in place: a cat of per-batch outputs would briefly hold the logits twice.
            logits = torch.empty(*inputs.shape, model.shape.vocab_size, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                for i in range(0, len(inputs), batch_size):
                    logits[i : i + batch_size] = model(inputs[i : i + batch_size])
            del model  # the reloaded member's weights go before the next one loads
            nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
            out.member_nll[k] += nll.double().sum().item()  # fp64 sums: a chunk can be 1M tokens
            if acc is not None:
                acc.add(logits)
            out.buffer_bytes = max(out.buffer_bytes, logits.nbytes * (1 + len(rules)))
            del logits
            for rule in rules:
                logp = acc.log_probs(rule)
                out.nll[rule][k] -= logp.gather(-1, targets.unsqueeze(-1)).double().sum().item()
                del logp
        out.tokens += targets.numel()
    if soups:  # its own pass: one soup model at a time, K member loads
        out.nll[SOUP] = soup_nll(members, tokens, seq_len, batch_size, device, max_len, autocast)
        out.loads += k_max
    return out


def _prepare(spec: EnsembleEvalSpec) -> tuple[list[TrainedRun], TokenStore]:
    store = TokenStore.expecting(spec.store, spec.store_id)
    members = open_members(spec.member_dirs, spec.member_ids)
    check_members(members, store)
    if members[0].spec.size != spec.size:
        raise ValueError(f"the spec says size {spec.size}, but the members are {members[0].spec.size}")
    return members, store


def member_recipe(members: Sequence[TrainedRun]) -> dict[str, Any]:
    """The members' shared hyperparameters (member 0's), and whether all members agree."""
    keys = ("tokens", "epochs", "lr", "weight_decay", "batch_size", "seq_len", "warmup_frac")
    s0 = members[0].spec
    return {
        "size": s0.size, "budget_tokens": s0.tokens, "epochs": s0.epochs, "lr": s0.lr,
        "weight_decay": s0.weight_decay, "seed": s0.init_seed,
        "seeds": [[m.spec.init_seed, m.spec.data_seed] for m in members],
        "uniform": all(getattr(m.spec, k) == getattr(s0, k) for m in members for k in keys),
    }


def run_ensemble(spec: EnsembleEvalSpec, run_dir: str | Path, log: Callable[[str], Any] = print) -> dict:
    """Evaluate the spec's nested ensembles in ``run_dir``; returns result.json."""

    def work(run: RunDir, inputs: tuple[list[TrainedRun], TokenStore]) -> dict:
        members, store = inputs
        if spec.threads:
            torch.set_num_threads(spec.threads)
        device = resolve_device(spec.device)
        autocast = device.type == "cuda" and spec.precision in ("auto", "bf16-mixed")
        chunk = chunk_sequences_for(spec.buffer_mb, spec.seq_len, store.vocab_size,
                                    len([r for r in spec.rules if r != SOUP]))
        started = time.perf_counter()
        with PeakMemory(device) as mem:
            ev = ensemble_losses(members, store.val_tokens(), spec.seq_len, spec.rules, spec.batch_size,
                                 chunk, device, spec.keep_members, autocast)
        wall = time.perf_counter() - started
        losses = {rule: ev.losses(rule) for rule in spec.rules}
        for rule in spec.rules:
            log(f"{run.path.name} {rule}: " + ", ".join(f"K={k + 1} {v:.4f}" for k, v in enumerate(losses[rule])))
        total, non_embedding = param_counts(members[0].shape)
        member_losses = ev.member_losses()
        return {
            "kind": "ensemble", "K": len(members), "rules": list(spec.rules), "losses": losses,
            "member_losses": member_losses, "mean_member_loss": float(np.mean(member_losses)),
            "members": [{"run_id": m.run_id, "path": str(m.path), "weights_sha256": m.weights_sha256}
                        for m in members],
            "member_recipe": member_recipe(members),
            "n_params": total, "n_params_non_embedding": non_embedding, "vocab_size": store.vocab_size,
            "val_tokens": ev.tokens, "seq_len": spec.seq_len, "chunk_sequences": chunk,
            "buffer_bytes": ev.buffer_bytes, "member_loads": ev.loads,
            "peak_memory_bytes": mem.peak_bytes, "memory_measure": "cuda" if device.type == "cuda" else "rss",
            "wall_s": wall, "tokens_per_s": ev.tokens * len(members) / wall if wall > 0 else math.nan,
            "device": str(device),
        }

    return execute_run(spec, run_dir, lambda: _prepare(spec), work)
