"""Tokenizers: load a ``tokenizers`` JSON file, or train a small byte-level BPE."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")
DEFAULT_EOS = "<|endoftext|>"


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise ValueError(f"{path} is not a tokenizers JSON file: {e}") from None


def eos_id(tokenizer: Tokenizer, eos_token: str | None = None) -> int:
    """The id of the end-of-document token: ``eos_token`` or the first known candidate."""
    candidates = [eos_token] if eos_token else list(EOS_CANDIDATES)
    for token in candidates:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    raise ValueError(f"tokenizer has none of the end-of-document tokens {candidates}; pass --eos-token")


def train_bpe(documents: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE with ``vocab_size`` entries (including the EOS token) trained on
    ``documents``; deterministic for the same documents in the same order."""
    if vocab_size < 257:
        raise ValueError(f"vocab_size {vocab_size} is too small for byte-level BPE (need >= 257)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[DEFAULT_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    return tokenizer
