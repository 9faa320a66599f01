"""Exact duplicates among a store's documents, by a fast hash of their normalised text.

``dcsl data prepare`` hashes every document it writes (NFC Unicode, whitespace runs as one
space, ends stripped; 64-bit BLAKE2b). It reports documents repeated inside the training
stream, and refuses a store in which a validation document is also a training one: every
validation loss would then be measured partly on training data. ``dedupe`` (``--dedupe``)
instead drops every repeat of a text before the split, so neither can happen.

Memory: one hash per written document (a few tens of bytes each in a set).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

HASH = "blake2b-64 of the NFC text, whitespace collapsed"
EXAMPLE_CHARS = 60


def text_hash(text: str) -> int:
    """The document's identity for duplicate checks (equal up to Unicode form and whitespace)."""
    normal = " ".join(unicodedata.normalize("NFC", text).split())
    return int.from_bytes(hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest(), "big")


def example(text: str) -> str:
    short = " ".join(text.split())
    return repr(short[:EXAMPLE_CHARS] + ("..." if len(short) > EXAMPLE_CHARS else ""))


@dataclass
class Ledger:
    """What was written where, by hash; the counts a manifest records."""

    dedupe: bool = False
    read: int = 0
    dropped: int = 0
    """Repeats ``unique`` dropped before the split (dedupe only)."""
    train_duplicates: int = 0
    """Training documents whose text an earlier training document had."""
    train: set[int] = field(default_factory=set)
    val: dict[int, str] = field(default_factory=dict)
    """Validation hashes and an example of each (the validation set is small)."""
    train_example: str = ""

    def unique(self, docs: Iterator[str]) -> Iterator[str]:
        """``docs`` without repeats when deduplicating (every document, counted, otherwise)."""
        seen: set[int] = set()
        for text in docs:
            self.read += 1
            if self.dedupe:
                h = text_hash(text)
                if h in seen:
                    self.dropped += 1
                    continue
                seen.add(h)
            yield text

    def wrote(self, text: str, split: str) -> None:
        h = text_hash(text)
        if split == "val":
            self.val.setdefault(h, text)
        elif h in self.train:
            self.train_duplicates += 1
            self.train_example = self.train_example or example(text)
        else:
            self.train.add(h)

    def contaminated(self) -> tuple[int, str]:
        """(validation texts that are also training texts, an example of one)."""
        both = [h for h in self.val if h in self.train]
        return len(both), (example(self.val[both[0]]) if both else "")

    def report(self) -> str:
        """One line on the training stream's repeats ('' when there are none)."""
        if self.dedupe:
            return f"dropped {self.dropped:,} repeated documents of {self.read:,} before the split" if self.dropped else ""
        if not self.train_duplicates:
            return ""
        return (f"{self.train_duplicates:,} training documents repeat an earlier one (e.g. {self.train_example}); "
                "--dedupe drops repeats before the split")

    def record(self) -> dict:
        """The manifest's ``documents`` entry (the store id does not hash it)."""
        return {"hash": HASH, "dedupe": self.dedupe, "read": self.read, "duplicates_dropped": self.dropped,
                "train_duplicates": self.train_duplicates}
