"""Log-likelihoods of continuations with lm-evaluation-harness conventions.

For each (context, continuation) request: trailing whitespace of the context moves onto
the continuation, both are tokenised together and split at the context's token length,
an empty context becomes the end-of-text token, and too long a sequence loses context
tokens from the left. A continuation longer than the window itself is refused, as the
harness refuses it (``ContinuationTooLong``): its last tokens alone would be a different
number, so callers leave such requests out (``too_long``) and say so. K members combine
through ``eval.combine.MemberAccumulator`` (logit-mean, or prob-mean on request).

Requests that share a context are packed into one row (``PackedRow``): the context is
computed once and each choice sees only it and its own tokens. Rows are sorted by length
and right-padded; padding never reaches a real position, so scores do not depend on the
batch size. ``eval.downstream`` (tasks, metrics, the eval run kind) and ``eval.harness``
(the lm-eval adapter) both score through ``score_pairs``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tokenizers import Tokenizer

from eval.combine import MemberAccumulator
from eval.rules import check_rules

Pair = tuple[list[int], list[int]]
MASK_ENTRIES = 2**24
"""Most attention-mask entries (B x T x T) in one batch of shared-context rows: 16 MiB as
booleans; an attention kernel that materialises the scores holds heads x 4 bytes each."""


class ContinuationTooLong(ValueError):
    """A continuation that does not fit in the model's window: it cannot be scored whole."""


def too_long(pairs: Sequence[Pair], max_len: int) -> list[int]:
    """Indices of the requests whose continuation alone exceeds ``max_len`` tokens.

    lm-evaluation-harness refuses them (``HFLM._loglikelihood_tokens`` asserts
    ``len(continuation) <= max_length``); a longer context is merely cut on the left.
    """
    return [i for i, (_, cont) in enumerate(pairs) if len(cont) > max_len]


def tok_encode(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    # No special tokens: the harness encodes causal-LM requests without BOS/EOS too.
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def encode_pairs(tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], prefix_id: int) -> list[Pair]:
    """(context tokens, continuation tokens) for each (context, continuation) string pair."""
    moved: list[tuple[str, str]] = []
    for context, continuation in pairs:
        n = len(context) - len(context.rstrip())
        moved.append((context[:-n], context[-n:] + continuation) if n else (context, continuation))
    wholes = tok_encode(tokenizer, [c + x for c, x in moved])
    unique_contexts = list(dict.fromkeys(c for c, _ in moved))
    context_ids = dict(zip(unique_contexts, tok_encode(tokenizer, unique_contexts), strict=True))
    out: list[Pair] = []
    for (context, _), whole in zip(moved, wholes, strict=True):
        if context == "":
            # Condition on end-of-text instead of nothing (a whitespace-only context counts
            # as empty here; the harness would score its first token unconditioned).
            out.append(([prefix_id], whole) if not whole or whole[0] != prefix_id else (whole[:1], whole[1:]))
        else:
            ctx = context_ids[context]
            out.append((ctx, whole[len(ctx):]))
    return out


def _take(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rows ``pos`` (B, C) of the positions of ``x`` (B, T, D): (B, C, D)."""
    return x.gather(1, pos.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def continuation_logits(model: torch.nn.Module, idx: torch.Tensor, pos: torch.Tensor,
                        positions: torch.Tensor | None = None,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """The model's logits at positions ``pos`` only: (B, C, V) instead of (B, T, V).

    The output projection is the largest matmul of a small model and most positions are
    context, so the hidden states are narrowed to ``pos`` on their way into ``model.head``
    (a pre-hook: ``forward`` itself stays the one contract). A model without a linear
    ``head`` gets its full logits gathered instead. ``positions`` and ``mask`` describe
    packed rows (``PackedRow``); without them each row is one causal sequence.
    """
    packed = {} if positions is None else {"positions": positions, "mask": mask}
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear):
        return _take(model(idx, **packed), pos)
    handle = head.register_forward_pre_hook(lambda _module, args: (_take(args[0], pos),))
    try:
        return model(idx, **packed)
    finally:
        handle.remove()


@dataclass
class PackedRow:
    """One context followed by the continuations of the requests that share it.

    Every continuation sits at the positions it would have right after the context and
    sees only the context and its own earlier tokens (``segments``: 0 for the context, k
    for the k-th continuation), so its logits are those of scoring it alone while the
    context is computed once instead of once per choice. A continuation's last token is
    only a target, never an input; its first target is predicted by the context's last token.
    """

    context: int
    """Number of context tokens (the start of the row)."""
    tokens: list[int]
    positions: list[int]
    segments: list[int]
    scored: list[int] = field(default_factory=list)
    """Row indices whose logits predict a target."""
    targets: list[int] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    """The request each scored index belongs to."""

    @property
    def shared(self) -> bool:
        """Whether several requests share the row (it then needs positions and a mask)."""
        return self.owners[0] != self.owners[-1]

    @classmethod
    def start(cls, context: list[int]) -> PackedRow:
        return cls(len(context), list(context), list(range(len(context))), [0] * len(context))

    def add(self, request: int, targets: list[int]) -> None:
        """Append a continuation: its inputs are all of ``targets`` but the last."""
        tail, offset = targets[:-1], len(self.tokens)
        self.tokens += tail
        self.positions += range(self.context, self.context + len(tail))
        self.segments += [self.segments[-1] + 1] * len(tail)
        self.scored += [self.context - 1, *range(offset, offset + len(tail))]
        self.targets += targets
        self.owners += [request] * len(targets)


def pack_requests(pairs: Sequence[Pair], max_len: int, share_context: bool = True) -> list[PackedRow]:
    """Rows to score ``pairs`` with: requests whose (truncated) contexts are equal share one.

    A request longer than ``max_len + 1`` tokens loses context tokens on the left, as in
    the harness; a continuation longer than ``max_len`` raises ``ContinuationTooLong``
    instead of losing its own first tokens. A row is never longer than one request can
    be (``max_len`` inputs), so a shared row costs no more memory than a plain one, and
    requests that fill the window (a rolling log-likelihood's) are not packed at all.
    Requests with nothing to score get no row.
    """
    if bad := too_long(pairs, max_len):
        first = bad[0]
        raise ContinuationTooLong(
            f"{len(bad)} of {len(pairs)} continuations are longer than the model's window of {max_len} "
            f"tokens (request {first}: {len(pairs[first][1])} tokens); lm-evaluation-harness refuses "
            "them too: leave them out (eval.likelihood.too_long) rather than score their last tokens")
    rows: list[PackedRow] = []
    open_rows: dict[tuple[int, ...], PackedRow] = {}
    for i, (ctx, cont) in enumerate(pairs):
        whole = (ctx + cont)[-(max_len + 1):]  # the continuation fits: only context is cut
        n = min(len(cont), len(whole) - 1)  # less only without context: its first token has no input
        if n <= 0:
            continue
        prefix = whole[:len(whole) - n]
        row = open_rows.get(tuple(prefix)) if share_context else None
        if row is None or len(row.tokens) + n - 1 > max_len:
            row = PackedRow.start(prefix)
            rows.append(row)
            if share_context:
                open_rows[tuple(prefix)] = row
        row.add(i, whole[len(whole) - n:])
    return rows


def _batch_tensors(rows: Sequence[PackedRow], n_requests: int, with_mask: bool) -> dict[str, torch.Tensor]:
    """Right-padded tensors of a batch of rows; padding is never seen by a real token."""
    t_max, c_max = max(len(r.tokens) for r in rows), max(len(r.scored) for r in rows)
    idx = torch.zeros(len(rows), t_max, dtype=torch.long)
    positions = torch.zeros(len(rows), t_max, dtype=torch.long)
    segments = torch.full((len(rows), t_max), -1, dtype=torch.long)
    pos = torch.zeros(len(rows), c_max, dtype=torch.long)
    tgt = torch.zeros(len(rows), c_max, dtype=torch.long)
    owner = torch.full((len(rows), c_max), n_requests, dtype=torch.long)  # padding -> a spare slot
    for r, row in enumerate(rows):
        t, c = len(row.tokens), len(row.scored)
        idx[r, :t], positions[r, :t], segments[r, :t] = (torch.tensor(v) for v in
                                                         (row.tokens, row.positions, row.segments))
        pos[r, :c], tgt[r, :c], owner[r, :c] = (torch.tensor(v) for v in (row.scored, row.targets, row.owners))
    out = {"idx": idx, "positions": positions, "pos": pos, "tgt": tgt, "owner": owner}
    if with_mask:
        causal = torch.ones(t_max, t_max, dtype=torch.bool).tril()
        keys, queries = segments.unsqueeze(1), segments.unsqueeze(2)
        out["mask"] = (causal & ((keys == 0) | (keys == queries))).unsqueeze(1)  # (B, 1, T, T)
    return out


def _log_probs(models: Sequence[torch.nn.Module], b: dict[str, torch.Tensor], rule: str) -> torch.Tensor:
    """Log-probabilities (B, C, V) at the scored positions of a batch, members combined."""
    packed = (b["positions"], b["mask"]) if "mask" in b else (None, None)
    if len(models) == 1:  # both rules reduce to the model's own log-softmax; skip a copy
        return torch.log_softmax(continuation_logits(models[0], b["idx"], b["pos"], *packed).float(), -1)
    acc = MemberAccumulator((rule,))
    for model in models:
        acc.add(continuation_logits(model, b["idx"], b["pos"], *packed))
    return acc.log_probs(rule)


@torch.inference_mode()
def score_pairs(models: Sequence[torch.nn.Module], pairs: Sequence[Pair], max_len: int,
                rule: str = "logit-mean", batch_size: int = 32,
                device: str | torch.device = "cpu", share_context: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability of each continuation and whether it is the greedy one.

    ``models`` are the ensemble members (one for a single model); their logits at the
    continuation positions are combined under ``rule`` before the log-softmax.
    ``batch_size`` counts rows (``pack_requests``): a context and its choices. Without
    ``share_context`` every request is its own causal row (the reference scoring). A
    continuation longer than ``max_len`` raises ``ContinuationTooLong``, as the harness
    refuses it; filter with ``too_long`` first to score the rest.
    """
    check_rules([rule])
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    # Longest first, as the harness does: the first batch shows the peak memory at once.
    # Rows holding one request are plain causal sequences and never share a batch with
    # shared rows, so each row is scored the same way whatever the batch size.
    rows = sorted(pack_requests(pairs, max_len, share_context), key=lambda r: (r.shared, -len(r.tokens)))
    logprob = torch.zeros(len(pairs) + 1, dtype=torch.float64)
    misses = torch.zeros(len(pairs) + 1, dtype=torch.long)
    for shared, group in itertools.groupby(rows, key=lambda r: r.shared):
        group = list(group)
        start = 0
        while start < len(group):
            n = max(1, min(batch_size, MASK_ENTRIES // len(group[start].tokens) ** 2)) if shared else batch_size
            batch = _batch_tensors(group[start:start + n], len(pairs), with_mask=shared)
            start += n
            b = {k: v.to(device) for k, v in batch.items()}
            logp = _log_probs(models, b, rule)
            token_lp = logp.gather(-1, b["tgt"].unsqueeze(-1)).squeeze(-1).double()
            owner = batch["owner"].flatten()
            logprob.index_add_(0, owner, token_lp.flatten().cpu())
            misses.index_add_(0, owner, (logp.argmax(-1) != b["tgt"]).long().flatten().cpu())
    return logprob[:-1].numpy(), (misses[:-1] == 0).numpy()
