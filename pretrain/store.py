"""The token store: one ordered stream of training tokens, a fixed validation set.

Layout of a store directory::

    train.bin      numpy memmap of token ids (uint16 when the vocab fits, else uint32)
    val.bin        the fixed validation tokens, disjoint from every training budget
    tokenizer.json the tokenizer that produced them
    manifest.json  source, order rule, tokenizer hash, dtype, counts, checksums

A training budget is a prefix of ``train.bin`` (200M is a prefix of 400M), chosen at
train time. Readers check the manifest against the files and refuse a mismatch. The
manifest's ``documents`` counts duplicates found or dropped; the store id hashes only the
training stream and the tokenizer, so stores prepared before those counts keep their ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrain.corpus import CorpusSource, iter_documents
from pretrain.duplicates import Ledger
from pretrain.rundir import atomic_write_json
from pretrain.tokenizer import eos_id, load_tokenizer, sha256_file, train_bpe

MANIFEST_VERSION = 1
_SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


class StoreError(ValueError):
    """A token store that is missing, inconsistent with its manifest, or too small."""


def parse_tokens(value: str | int) -> int:
    """'200M' -> 200,000,000; '1.6B'; '50k'; plain integers pass through."""
    if isinstance(value, int):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*", str(value))
        if not m:
            raise ValueError(f"cannot read token count {value!r}; use e.g. 50000, 50k, 200M, 1.6B")
        n = round(float(m.group(1)) * _SUFFIXES.get(m.group(2).lower(), 1))
    if n <= 0:
        raise ValueError(f"token count must be positive, got {value!r}")
    return n


def dtype_for_vocab(vocab_size: int, requested: str | None = None) -> np.dtype:
    dtype = np.dtype(requested) if requested else np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)
    if dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
        raise ValueError(f"token dtype must be uint16 or uint32, got {dtype}")
    if vocab_size > np.iinfo(dtype).max + 1:
        raise ValueError(f"vocab size {vocab_size} does not fit dtype {dtype} (max {np.iinfo(dtype).max + 1})")
    return dtype


@dataclass(frozen=True)
class PrepareConfig:
    """How to turn a corpus into a token store."""

    source: CorpusSource
    out: str
    tokenizer: str | None = None
    """Path of a tokenizers JSON file; None trains a byte-level BPE of ``vocab_size``."""
    vocab_size: int = 4096
    eos_token: str | None = None
    val_tokens: int = 50_000
    """Exact size of the fixed validation set."""
    val_every: int = 10
    """Document i goes to validation when i % val_every == 0, until it is full."""
    max_train_tokens: int | None = None
    """Stop the training stream here (exact); None keeps the whole corpus."""
    tokenizer_docs: int = 20_000
    """Train the BPE on at most this many training documents."""
    dtype: str | None = None
    batch_docs: int = 256
    dedupe: bool = False
    """Drop every repeat of a document's text (``pretrain.duplicates``) before the split;
    without it, repeats are reported and a validation document in training is refused."""

    def __post_init__(self) -> None:
        # A study's data.prepare is checked here when it loads: a wrong value is a one-line
        # error naming the option, not a failure after the BPE has trained.
        for name in ("vocab_size", "val_tokens", "val_every", "tokenizer_docs", "batch_docs", "max_train_tokens"):
            v = getattr(self, name)
            if not (v is None and name == "max_train_tokens") and (type(v) is not int or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("tokenizer", "eos_token"):
            if (v := getattr(self, name)) is not None and (not isinstance(v, str) or not v.strip()):
                raise ValueError(f"{name} must be a non-empty string, got {v!r}")
        if self.tokenizer is None and self.vocab_size < 257:
            raise ValueError(f"vocab_size {self.vocab_size} is too small for a byte-level BPE (need >= 257)")
        if not isinstance(self.dedupe, bool):
            raise ValueError(f"dedupe must be true or false, got {self.dedupe!r}")
        if self.dtype not in (None, "uint16", "uint32"):
            raise ValueError(f"dtype must be uint16 or uint32, got {self.dtype!r}")


# `dcsl data prepare`'s option names (and a study's data.prepare keys) for CorpusSource's
# fields; every other option is PrepareConfig's own field of the same name.
SOURCE_OPTIONS = {"source": "kind", "dataset": "name", "revision": "revision", "split": "split",
                  "files": "files", "text_field": "text_field", "shuffle_seed": "shuffle_seed",
                  "shuffle_buffer": "shuffle_buffer"}
CONFIG_OPTIONS = ("tokenizer", "vocab_size", "eos_token", "val_tokens", "val_every",
                  "max_train_tokens", "tokenizer_docs", "dtype", "batch_docs", "dedupe")
PREPARE_OPTIONS = (*SOURCE_OPTIONS, *CONFIG_OPTIONS)


def prepare_config(options: dict, out: str | Path) -> PrepareConfig:
    """The one mapping from prepare options (the command line's, a study's data.prepare) to a
    PrepareConfig; token counts may be written as "50k" or "1.6B". Defaults are the
    dataclasses' own. Raises ValueError naming an unknown option or a bad value."""
    unknown = sorted(set(options) - set(PREPARE_OPTIONS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown prepare option; known: {', '.join(PREPARE_OPTIONS)}")
    source = {SOURCE_OPTIONS[k]: v for k, v in options.items() if k in SOURCE_OPTIONS and v is not None}
    if isinstance(source.get("files"), list | tuple):  # paths, as the command line gives them
        source["files"] = tuple(str(f) if isinstance(f, Path) else f for f in source["files"])
    if isinstance(source.get("shuffle_seed"), int) and source["shuffle_seed"] < 0:
        source["shuffle_seed"] = None  # a negative seed keeps the source order
    config = {k: v for k, v in options.items() if k in CONFIG_OPTIONS and v is not None}
    for key in ("val_tokens", "max_train_tokens"):
        if key in config:
            try:
                config[key] = parse_tokens(config[key])
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
    return PrepareConfig(source=CorpusSource(**source), out=str(out), **config)


def _train_candidates(docs: Iterator[str], val_every: int) -> Iterator[str]:
    for i, doc in enumerate(docs):
        if i % val_every != 0:
            yield doc


class _StreamWriter:
    """Appends token arrays to a .bin file, hashing as it goes, up to a token limit."""

    def __init__(self, path: Path, dtype: np.dtype, limit: int | None) -> None:
        self.file = open(path, "wb")
        self.dtype, self.limit, self.count = dtype, limit, 0
        self.sha = hashlib.sha256()

    @property
    def full(self) -> bool:
        return self.limit is not None and self.count >= self.limit

    def write(self, ids: np.ndarray) -> None:
        if self.limit is not None:
            ids = ids[: self.limit - self.count]
        data = ids.astype(self.dtype, copy=False).tobytes()
        self.file.write(data)
        self.sha.update(data)
        self.count += len(ids)

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def prepare_store(cfg: PrepareConfig, log=print) -> Path:  # noqa: ANN001
    """Build a token store; returns its directory. Streams, holding one 64-bit hash per
    written document for the duplicate checks (``pretrain.duplicates``): repeats in the
    training stream are logged, a validation document that is also a training one is refused,
    and ``cfg.dedupe`` drops repeats before the split.

    The store is written to a temporary sibling directory and renamed into place at
    the end, so an interrupted prepare never leaves a half store that looks whole.
    """
    out = Path(cfg.out)
    if (out / "manifest.json").exists():
        raise StoreError(f"{out} already holds a token store; remove it or choose another --store")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out} exists and is not an empty folder; choose another --store")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if cfg.tokenizer:
            tokenizer = load_tokenizer(cfg.tokenizer)
            shutil.copyfile(cfg.tokenizer, tmp / "tokenizer.json")
        else:
            # The BPE learns from training documents: of the deduplicated stream, with dedupe.
            unique = Ledger(dedupe=cfg.dedupe).unique(iter_documents(cfg.source))
            docs = itertools.islice(_train_candidates(unique, cfg.val_every), cfg.tokenizer_docs)
            first = next(docs, None)
            if first is None:
                raise StoreError(f"corpus {cfg.source.kind} {cfg.source.name or ''} is empty".strip())
            log(f"training a byte-level BPE with {cfg.vocab_size} tokens")
            tokenizer = train_bpe(itertools.chain([first], docs), cfg.vocab_size)
            tokenizer.save(str(tmp / "tokenizer.json"))
        vocab_size = tokenizer.get_vocab_size()
        dtype = dtype_for_vocab(vocab_size, cfg.dtype)
        eos = eos_id(tokenizer, cfg.eos_token)

        train = _StreamWriter(tmp / "train.bin", dtype, cfg.max_train_tokens)
        val = _StreamWriter(tmp / "val.bin", dtype, cfg.val_tokens)
        n_docs = {"train": 0, "val": 0}
        ledger = Ledger(dedupe=cfg.dedupe)
        docs = enumerate(ledger.unique(iter_documents(cfg.source)))
        while not (train.full and val.full):
            batch = list(itertools.islice(docs, cfg.batch_docs))
            if not batch:
                break
            # encode_batch runs on all cores (tokenizers' own thread pool).
            encoded = tokenizer.encode_batch([text for _, text in batch])
            for (i, text), enc in zip(batch, encoded, strict=True):
                ids = np.asarray(enc.ids + [eos], dtype=np.int64)
                target = val if (i % cfg.val_every == 0 and not val.full) else train
                if not target.full:
                    target.write(ids)
                    split = "val" if target is val else "train"
                    n_docs[split] += 1
                    ledger.wrote(text, split)
            log(f"  {train.count:,} train / {val.count:,} val tokens")
        train.close()
        val.close()
        if train.count == 0:
            raise StoreError("corpus is empty: no training tokens were produced")
        if val.count < cfg.val_tokens:
            raise StoreError(
                f"corpus too small for {cfg.val_tokens:,} validation tokens (got {val.count:,}); "
                "lower --val-tokens or --val-every"
            )
        if cfg.max_train_tokens is not None and train.count < cfg.max_train_tokens:
            raise StoreError(
                f"corpus has only {train.count:,} training tokens, fewer than "
                f"--max-train-tokens {cfg.max_train_tokens:,}"
            )
        both, shown = ledger.contaminated()
        if both:
            raise StoreError(f"{both:,} validation documents are also in the training stream (e.g. {shown}): "
                             "every validation loss would be measured partly on training data; prepare with "
                             "--dedupe (a study: data.prepare.dedupe: true) to drop repeated documents before "
                             "the split")
        if ledger.report():
            log(ledger.report())
        manifest = {
            "version": MANIFEST_VERSION,
            "source": cfg.source.describe(),
            "order": (
                f"documents in {'source order' if cfg.source.shuffle_seed is None else f'buffered shuffle (seed {cfg.source.shuffle_seed}, buffer {cfg.source.shuffle_buffer})'};"
                f" document i is validation when i % {cfg.val_every} == 0 until {cfg.val_tokens} tokens,"
                " else training; each document ends with EOS; streams truncated at their exact sizes"
                + ("; repeats of a document's normalised text dropped before the split" if cfg.dedupe else "")
            ),
            "tokenizer": {
                "file": "tokenizer.json",
                "sha256": sha256_file(tmp / "tokenizer.json"),
                "vocab_size": vocab_size,
                "eos_id": eos,
                "trained": cfg.tokenizer is None,
                "origin": cfg.tokenizer or f"byte-level BPE trained on <= {cfg.tokenizer_docs} training documents",
            },
            "dtype": dtype.name,
            "train": {"tokens": train.count, "documents": n_docs["train"], "sha256": train.sha.hexdigest()},
            "val": {"tokens": val.count, "documents": n_docs["val"], "sha256": val.sha.hexdigest()},
            "documents": ledger.record(),  # counts only: the store id hashes the streams, not these
        }
        atomic_write_json(tmp / "manifest.json", manifest)
        if out.exists():
            out.rmdir()  # only an empty directory can be here (a store was refused above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"token store {out}: {train.count:,} train, {val.count:,} val tokens, vocab {vocab_size}")
    return out


VERIFIED_FILE = ".verified.json"


class TokenStore:
    """A verified, read-only view of a token store directory."""

    def __init__(self, path: str | Path, verify_checksums: bool = True) -> None:
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            raise StoreError(f"{self.path} is not a token store (no manifest.json); run `dcsl data prepare`")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            self.dtype = np.dtype(self.manifest["dtype"])
            tok = self.manifest["tokenizer"]
            self.vocab_size, self.eos_id = int(tok["vocab_size"]), int(tok["eos_id"])
            self.tokenizer_path = self.path / tok["file"]
            if any(int(self.manifest[s]["tokens"]) < 0 or not self.manifest[s]["sha256"] for s in ("train", "val")):
                raise ValueError("a negative token count or an empty sha256")
        except (ValueError, TypeError, KeyError) as e:  # JSON, a missing field, a dtype numpy lacks
            what = f"no field {e}" if isinstance(e, KeyError) else " ".join(str(e).split())
            raise StoreError(f"{manifest_path} is damaged ({what}): prepare the store again") from None
        if not self.tokenizer_path.is_file():
            raise StoreError(f"{self.tokenizer_path} is missing (manifest names it)")
        if sha256_file(self.tokenizer_path) != tok["sha256"]:
            raise StoreError(f"{self.tokenizer_path} does not match the sha256 in {manifest_path}")
        if self.vocab_size > np.iinfo(self.dtype).max + 1:
            raise StoreError(f"{manifest_path}: vocab {self.vocab_size} does not fit dtype {self.dtype}")
        for split in ("train", "val"):
            self._check_file(split, verify_checksums)

    def _check_file(self, split: str, verify_checksum: bool) -> None:
        path = self.path / f"{split}.bin"
        expected = int(self.manifest[split]["tokens"]) * self.dtype.itemsize
        if not path.is_file():
            raise StoreError(f"{path} is missing")
        actual = path.stat().st_size
        if actual != expected:
            raise StoreError(
                f"{path} has {actual:,} bytes but the manifest says {expected:,} "
                f"({self.manifest[split]['tokens']:,} x {self.dtype}): truncated or resized"
            )
        if verify_checksum and not self._verified(split, path):
            raise StoreError(f"{path} does not match its sha256 in {self.path / 'manifest.json'}: "
                             "the file changed after the store was prepared; prepare it again")

    def _verified(self, split: str, path: Path, use_cache: bool = True) -> bool:
        """Whether ``path`` hashes to the manifest's sha256. A match is remembered in
        ``.verified.json`` by size and modification time, so a store is hashed once, not at
        every open; a file rewritten in place gets a new mtime and is hashed again."""
        expected = self.manifest[split]["sha256"]
        stat = path.stat()
        stamp = {"sha256": expected, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        cache_path = self.path / VERIFIED_FILE
        try:
            cache = json.loads(cache_path.read_text()) if use_cache else {}
        except (OSError, ValueError):
            cache = {}
        if cache.get(split) == stamp:
            return True
        if sha256_file(path) != expected:
            return False
        try:
            atomic_write_json(cache_path, {**cache, split: stamp})
        except OSError:
            pass  # a read-only store is verified at every open instead
        return True

    def verify(self) -> None:
        """Hash both data files now, ignoring the cache (``dcsl data verify``)."""
        for split in ("train", "val"):
            path = self.path / f"{split}.bin"
            if not self._verified(split, path, use_cache=False):
                raise StoreError(f"{path} does not match its sha256 in {self.path / 'manifest.json'}")

    @property
    def store_id(self) -> str:
        """Content identity: the training stream and tokenizer hashes, not the path."""
        key = self.manifest["train"]["sha256"] + self.manifest["tokenizer"]["sha256"]
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @classmethod
    def expecting(cls, path: str | Path, store_id: str, what: str = "store") -> TokenStore:
        """The store at ``path``, refused unless it is the one a spec names by ``store_id``."""
        store = cls(path)
        if store.store_id != store_id:
            raise ValueError(f"{what} {path} has id {store.store_id}, but the spec asks for {store_id}")
        return store

    @property
    def tokenizer_sha256(self) -> str:
        return self.manifest["tokenizer"]["sha256"]

    @property
    def train_size(self) -> int:
        return int(self.manifest["train"]["tokens"])

    @property
    def val_size(self) -> int:
        return int(self.manifest["val"]["tokens"])

    def train_tokens(self, budget: int | None = None) -> np.memmap:
        """The first ``budget`` training tokens (all of them when None)."""
        budget = self.train_size if budget is None else budget
        if budget > self.train_size:
            raise StoreError(
                f"budget of {budget:,} tokens exceeds the {self.train_size:,} training tokens in {self.path}"
            )
        return np.memmap(self.path / "train.bin", dtype=self.dtype, mode="r", shape=(budget,))

    def val_tokens(self) -> np.memmap:
        return np.memmap(self.path / "val.bin", dtype=self.dtype, mode="r", shape=(self.val_size,))

    def check_tokenizer(self, other_sha256: str, what: str) -> None:
        if other_sha256 != self.tokenizer_sha256:
            raise StoreError(
                f"{what} uses tokenizer {other_sha256[:12]} but store {self.path} uses "
                f"{self.tokenizer_sha256[:12]}"
            )
