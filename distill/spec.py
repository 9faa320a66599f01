"""Specs of the distillation run kinds, torch-free so planners import them cheaply.

``GenerateSpec``: teacher sampling into a synthetic token store (distill/generate.py).
``DistillSpec``: a student, i.e. a training run plus its teacher (distill/student.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from eval.rules import RULES
from pretrain.spec import SpecBase, TrainSpec, human_tokens

MODES = ("sequence", "token")


def check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; use {' or '.join(RULES)}")


@dataclass(frozen=True)
class GenerateSpec(SpecBase):
    """Unconditional samples of a teacher, written as a token store."""

    kind: ClassVar[str] = "generate"
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset({"teacher_dirs", "store", "device", "threads"})

    teacher_ids: tuple[str, ...]
    """Run ids of the teacher's members (one id: self-distillation)."""
    teacher_dirs: tuple[str, ...]
    """Their run directories (operational)."""
    store: str
    """The real token store: its tokenizer and validation set go into the synthetic store."""
    store_id: str
    """Content id of the real store."""
    tokens: int
    """Sampled tokens wanted; rounded up to whole sequences (leading EOS not counted)."""
    seq_len: int
    """Tokens sampled per sequence (at most the teachers' training seq_len)."""
    rule: str = "logit-mean"
    """How an ensemble teacher's members combine: logit-mean or prob-mean."""
    temperature: float = 1.0
    """Sampling temperature (the paper samples at 1)."""
    seed: int = 0
    """Seed of the sampling."""
    batch_size: int = 32
    """Sequences sampled together; semantic, since float results (hence samples) can depend on it."""
    device: str = "auto"
    """auto (cuda when available, else cpu), cpu, cuda, cuda:1, ..."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""

    def __post_init__(self) -> None:
        check_rule(self.rule)
        if not self.teacher_ids or len(self.teacher_dirs) != len(self.teacher_ids):
            raise ValueError(f"need one teacher dir per teacher id, got {len(self.teacher_dirs)} dirs "
                             f"for {len(self.teacher_ids)} ids")
        for name in ("tokens", "seq_len", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @property
    def n_sequences(self) -> int:
        return math.ceil(self.tokens / self.seq_len)

    def readable_name(self) -> str:
        k = len(self.teacher_ids)
        return f"generate-K{k}-{human_tokens(self.tokens)}-T{self.temperature:g}-s{self.seed}"


@dataclass(frozen=True)
class DistillSpec(TrainSpec):
    """A student: a training run (every TrainSpec field) plus its teacher and mixture."""

    kind: ClassVar[str] = "distill"
    OPERATIONAL: ClassVar[frozenset[str]] = TrainSpec.OPERATIONAL | {"teacher_dirs", "synthetic_store"}

    mode: str = "sequence"
    """sequence: real + synthetic mixture; token: KL to the teacher on the real data."""
    teacher_ids: tuple[str, ...] = ()
    """Run ids of the teacher's members (the synthetic store's teachers in sequence mode)."""
    teacher_dirs: tuple[str, ...] = ()
    """Their run directories (operational)."""
    rule: str = "logit-mean"
    """How the teacher's members combine."""
    synthetic_store: str = ""
    """Synthetic token store directory (sequence mode; operational)."""
    synthetic_store_id: str = ""
    """Content id of the synthetic store."""
    synthetic_weight: float = 0.0
    """Share w of the rows that are synthetic; total steps = real steps / (1 - w)."""
    kd_temperature: float = 1.0
    """Token mode: temperature of both distributions in the KL term."""
    kd_weight: float = 1.0
    """Token mode: weight of the KL term against the real-data cross-entropy."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rule(self.rule)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.teacher_ids or len(self.teacher_dirs) != len(self.teacher_ids):
            raise ValueError(f"need teacher_ids and one teacher dir each, got {len(self.teacher_dirs)} "
                             f"dirs for {len(self.teacher_ids)} ids")
        if not 0 <= self.synthetic_weight < 1:
            raise ValueError(f"synthetic_weight must be in [0, 1), got {self.synthetic_weight}")
        # Fields of the other mode must keep their defaults: they would change the run id
        # without changing the run.
        if self.mode == "sequence":
            if self.synthetic_weight > 0 and not self.synthetic_store_id:
                raise ValueError("a sequence-level student with synthetic_weight > 0 needs a synthetic store")
            if (self.kd_temperature, self.kd_weight) != (1.0, 1.0):
                raise ValueError("kd_temperature and kd_weight apply to token-level students only")
        if self.mode == "token":
            if self.synthetic_weight or self.synthetic_store_id:
                raise ValueError("a token-level student trains on real data only (no synthetic store)")
            if not self.kd_temperature > 0 or not 0 < self.kd_weight <= 1:
                raise ValueError(f"kd_temperature must be > 0 and kd_weight in (0, 1], got "
                                 f"{self.kd_temperature} and {self.kd_weight}")

    def readable_name(self) -> str:
        mix = f"w{self.synthetic_weight:g}" if self.mode == "sequence" else f"T{self.kd_temperature:g}"
        return (f"distill-{self.mode[:3]}-K{len(self.teacher_ids)}-{self.size}-D{human_tokens(self.tokens)}"
                f"-ep{self.epochs}-{mix}-lr{self.lr:g}-wd{self.weight_decay:g}-s{self.init_seed}")
