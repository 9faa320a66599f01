"""Run specs and their ids.

A spec separates *semantic* fields (what is computed: they decide the run id, so two
studies asking for the same run share it) from *operational* ones (paths, memory
knobs, logging: they never change the id). Every run kind in dcsl (training here,
ensemble evals, teachers, students, downstream evals elsewhere) follows this shape.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from pretrain.sizes import SIZES, ModelShape, custom_shape, get_shape, shape_fields

ID_LENGTH = 10
BASE_CONFIG = "base-config.json"
"""A continued run's architecture (a HF config), written beside its final weights."""
# Lightning precision names dcsl trains with ("auto": 32-true on CPU, bf16-mixed on GPU).
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
# How one run spreads over devices. "auto": one device alone; on several, DDP when a whole
# replica trains on one device, else FSDP (pretrain.memory.pick_strategy).
STRATEGIES = ("auto", "ddp", "fsdp")
# Experiment trackers a run can log its metrics.csv rows to: Lightning's own loggers
# (pretrain.trackers), the last three each an optional extra of the package.
TRACKERS = ("csv", "tensorboard", "wandb", "mlflow")
DEFAULT_METRICS_EVERY = 10


def spec_id(kind: str, semantic: dict[str, Any]) -> str:
    """Short hash of the canonical JSON of a run's kind and semantic fields."""
    canonical = json.dumps({"kind": kind, **semantic}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_LENGTH]


def steps_per_epoch(tokens: int, seq_len: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over a budget: whole sequences of seq_len + 1 tokens (input
    and shifted target), whole batches of them; the rest of the budget is not trained on."""
    return (tokens - 1) // seq_len // batch_size


def human_tokens(n: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def auto_precision(precision: str, on_gpu: bool) -> str:
    """Lightning's precision for ``precision``: ``auto`` is bf16-mixed on GPUs, fp32 on CPUs
    (docs/machines.md: CPUs here have no fast bf16). Training and the memory plan both ask."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if on_gpu else "32-true"


class RankLayout:
    """The processes one run trains on: a run's spec and a study's ``training`` section both
    have ``devices`` (per node) and ``nodes``, and the batch is split over all of them."""

    devices: int
    nodes: int
    batch_size: int

    @property
    def world_size(self) -> int:
        return self.devices * self.nodes

    @property
    def local_batch_size(self) -> int:
        """Sequences of each global batch that one process trains on."""
        return self.batch_size // self.world_size


class SpecBase:
    """Shared behaviour of run specs (frozen dataclasses with an OPERATIONAL set)."""

    kind: ClassVar[str]
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset()
    LATER: ClassVar[frozenset[str]] = frozenset()
    """Semantic fields added after runs already existed: left out of the id while they hold
    their default, so those runs keep their ids (and finished work stays found)."""

    def semantic(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in fields(self)}  # type: ignore[arg-type]
        return {k: v for k, v in asdict(self).items()
                if k not in self.OPERATIONAL and not (k in self.LATER and v == defaults[k])}

    @property
    def run_id(self) -> str:
        return spec_id(self.kind, self.semantic())

    def readable_name(self) -> str:
        return self.kind

    @property
    def dirname(self) -> str:
        return f"{self.readable_name()}-{self.run_id}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.run_id, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]):  # noqa: ANN206
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _untuple(v) for k, v in data.items() if k in names})


def _untuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@dataclass(frozen=True)
class TrainSpec(RankLayout, SpecBase):
    """One pretraining run on a fixed token budget (the paper's optimiser and schedule)."""

    kind: ClassVar[str] = "train"
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset(
        {"store", "micro_batch_size", "val_every", "ckpt_every", "precision", "compile", "threads",
         "keep_checkpoints", "init_from", "activation_checkpointing", "devices", "nodes", "strategy",
         "metrics_every", "loggers", "tracker_tags"}
    )
    LATER: ClassVar[frozenset[str]] = frozenset({"init_id", "custom_sizes"})

    size: str
    """Model size name (the registry in pretrain/sizes.py, or one of custom_sizes); with
    init_from, the base's name."""
    store: str
    """Token store directory (operational: the store's content id is ``store_id``)."""
    store_id: str
    """Content id of the token store."""
    tokens: int
    """Unique-data budget: a prefix of the store's training stream."""
    epochs: int = 1
    """Passes over the budget; the data order of each epoch is a function of the data seed."""
    lr: float = 3e-3
    """Peak learning rate of AdamW (linear warmup, then cosine decay to 0)."""
    weight_decay: float = 0.1
    """Decoupled weight decay on the weight matrices and the output head."""
    warmup_frac: float = 0.01
    """Share of the steps spent warming the learning rate up."""
    batch_size: int = 16
    """Global batch in sequences, independent of memory (see micro_batch_size)."""
    seq_len: int = 128
    """Tokens per training sequence."""
    init_seed: int = 0
    """Seed of the weight initialisation."""
    data_seed: int = 0
    """Seed of the data order."""
    micro_batch_size: int | None = None
    """Sequences per forward/backward on one device; gradients accumulate up to the device's
    share of batch_size (batch_size / world size)."""
    val_every: int = 0
    """Validate every this many steps (0: about ten times per run), and at the end."""
    ckpt_every: int = 0
    """Checkpoint every this many steps (0: every 100 steps or ~2 minutes, whichever first)."""
    precision: str = "auto"
    """'auto' is 32-true on CPU and bf16-mixed on GPU."""
    compile: bool | None = None
    """Train a torch.compile'd model (the checkpoints hold the plain one); unset: on when
    training on CUDA, where it pays, off on CPU, where compiling takes longer than small runs."""
    activation_checkpointing: bool = False
    """Recompute each block's activations in backward instead of keeping them: less memory
    for about a third more compute."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    devices: int = 1
    """Processes (GPUs) per node that train this one run together."""
    nodes: int = 1
    """Nodes that train this one run together (world size = devices x nodes)."""
    strategy: str = "auto"
    """auto, ddp or fsdp (see STRATEGIES). Like micro_batch_size, none of these three changes
    what is computed: the global batch and its data order are the same at any world size."""
    keep_checkpoints: bool = False
    """Keep the optimizer checkpoints after the run succeeds (default: drop them; the weights
    and result stay)."""
    init_from: str | None = None
    """A Hugging Face Llama directory to continue pretraining from, instead of a fresh init;
    its config is the model's shape (no --size) and its content hash joins the run id."""
    init_id: str = ""
    """Content id of that base: its config and weight files (pretrain.hfconfig.base_id)."""
    custom_sizes: dict[str, dict[str, Any]] | None = None
    """Shapes of sizes that are not registered, by name (``pretrain.sizes.custom_shape``'s
    fields). A study passes all of its own; the spec keeps only its size's, which joins the run
    id, so two studies' custom sizes of one name but different shapes never share a run."""
    metrics_every: int = DEFAULT_METRICS_EVERY
    """Write a row of the run's metrics.csv every this many optimizer steps, and at the last step."""
    loggers: tuple[str, ...] = ()
    """Experiment trackers that also get every metrics.csv row: csv, tensorboard, wandb, mlflow
    (Lightning's loggers; the last three need their extra, e.g. ``pip install -e '.[wandb]'``)."""
    tracker_tags: dict[str, str] | None = None
    """Names a tracker's run is grouped and filtered by (study, recipe, stage): filled by the sweep
    worker from the study's launch index; the spec's own fields (size, budget, ...) join them."""

    def __post_init__(self) -> None:
        self._keep_own_custom_size()
        object.__setattr__(self, "loggers", tuple(self.loggers))
        if self.init_from is None and self.size not in SIZES and not self.custom_sizes:
            raise ValueError(f"unknown model size {self.size!r}; known sizes: {', '.join(SIZES)}")
        if (self.init_from is None) != (not self.init_id):
            raise ValueError("init_from and init_id go together (init_id is the base's content id)")
        if self.init_from is not None and self.init_seed != 0:
            # The base replaces the init: runs that differ only in init_seed are one run.
            object.__setattr__(self, "init_seed", 0)
        for name in ("tokens", "epochs", "batch_size", "seq_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0 <= self.warmup_frac < 1:
            raise ValueError(f"warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.strategy == "fsdp" and self.precision == "16-mixed":
            raise ValueError("precision 16-mixed cannot train with strategy fsdp (Lightning's ModelParallelStrategy "
                             "has no fp16 gradient scaler): use bf16-mixed")
        for name in ("devices", "nodes", "metrics_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        unknown = [name for name in self.loggers if name not in TRACKERS]
        if unknown or len(set(self.loggers)) != len(self.loggers):
            raise ValueError(f"loggers must be distinct names among {', '.join(TRACKERS)}, got "
                             f"{', '.join(self.loggers) or 'none'}")
        if self.batch_size % self.world_size:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of the world size "
                             f"{self.world_size} (devices {self.devices} x nodes {self.nodes})")
        if self.micro_batch_size is not None and (
            self.micro_batch_size <= 0 or self.local_batch_size % self.micro_batch_size
        ):
            where = f"batch_size {self.batch_size}" if self.world_size == 1 else (
                f"the per-device batch {self.local_batch_size} (batch_size {self.batch_size} / world size "
                f"{self.world_size})")
            raise ValueError(f"micro_batch_size {self.micro_batch_size} must divide {where}")

    def _keep_own_custom_size(self) -> None:
        """``custom_sizes`` reduced to this spec's size, checked: None for a registered size
        (declared again with its own shape, it is the registered run, with the registered id)."""
        declared = (self.custom_sizes or {}).get(self.size)
        own = None
        if declared is not None:
            if self.init_from is not None:
                raise ValueError(f"custom size {self.size!r}: a continued run's shape is its base's config")
            try:
                shape = custom_shape(self.size, declared)
            except ValueError as e:
                raise ValueError(f"custom size {self.size!r}: {e}") from None
            registered = SIZES.get(self.size)
            if registered is not None and registered.with_vocab(0) != shape:
                raise ValueError(f"custom size {self.size!r} is a registered size with another shape: "
                                 "give it another name")
            own = None if registered is not None else {self.size: shape_fields(shape)}
        object.__setattr__(self, "custom_sizes", own)

    def validation_interval(self, total_steps: int) -> int:
        """Steps between validations: ``val_every``, or about ten times a run when it is 0."""
        return self.val_every or max(1, total_steps // 10)

    def shape(self, vocab_size: int) -> ModelShape:
        """The model's architecture: the registered or custom size, or the base's config.json.
        A base keeps its own vocabulary, which must cover the store's tokenizer."""
        if self.custom_sizes:
            return custom_shape(self.size, self.custom_sizes[self.size], vocab_size)
        if self.init_from is None:
            return get_shape(self.size, vocab_size)
        from pretrain.hfconfig import read_hf_config, shape_from_hf_config

        shape = shape_from_hf_config(read_hf_config(self.init_from), name=self.size)
        if vocab_size > shape.vocab_size:
            raise ValueError(f"the store's tokenizer has {vocab_size:,} tokens, more than the "
                             f"{shape.vocab_size:,} of base {self.init_from}: prepare the store with "
                             f"--tokenizer {self.init_from}/tokenizer.json")
        return shape

    def readable_name(self) -> str:
        return (
            f"{self.size}-D{human_tokens(self.tokens)}-ep{self.epochs}"
            f"-lr{self.lr:g}-wd{self.weight_decay:g}-s{self.init_seed}"
        )
