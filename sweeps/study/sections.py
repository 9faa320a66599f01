"""A study's sections as types: how its runs train (``Training``), the hyperparameter
lattice and the recipes searched on it, downstream evals and the executor. ``load_study``
(``sweeps.study.study``) builds them from a study file; ensembles and students are in
``sweeps.study.study_ensembles``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pretrain.spec import STRATEGIES, TRACKERS, RankLayout, TrainSpec

AXES = ("epochs", "lr", "weight_decay")
SEARCHES = ("grid", "adaptive")
RECIPE_ROLES = ("standard", "regularized")
@dataclass(frozen=True)
class Training(RankLayout):
    """How every run of a study trains: TrainSpec's shared fields, with TrainSpec's defaults
    (written there once). A study file's ``training`` section sets any of them."""

    batch_size: int = field(default=TrainSpec.batch_size, metadata={"positive": True})
    seq_len: int = field(default=TrainSpec.seq_len, metadata={"positive": True})
    warmup_frac: float = field(default=TrainSpec.warmup_frac, metadata={"min": 0})
    micro_batch_size: int | None = field(default=TrainSpec.micro_batch_size, metadata={"positive": True})
    val_every: int = field(default=TrainSpec.val_every, metadata={"min": 0})
    ckpt_every: int = field(default=TrainSpec.ckpt_every, metadata={"min": 0})
    threads: int = field(default=TrainSpec.threads, metadata={"min": 0})
    precision: str = TrainSpec.precision
    compile: bool | None = TrainSpec.compile
    activation_checkpointing: bool = TrainSpec.activation_checkpointing
    keep_checkpoints: bool = TrainSpec.keep_checkpoints
    devices: int = field(default=TrainSpec.devices, metadata={"positive": True})
    nodes: int = field(default=TrainSpec.nodes, metadata={"positive": True})
    strategy: str = field(default=TrainSpec.strategy, metadata={"choices": STRATEGIES})
    metrics_every: int = field(default=TrainSpec.metrics_every, metadata={"positive": True})
    loggers: tuple[str, ...] = field(default=TrainSpec.loggers, metadata={"choices": TRACKERS})
    custom_sizes: dict[str, dict[str, Any]] | None = field(default=None, metadata={"from": "sizes"})
    """The shapes of the study's custom sizes (its ``sizes:`` list, not this section): every spec
    gets them all and keeps its own (``TrainSpec.custom_sizes``)."""

    def spec_fields(self) -> dict[str, Any]:
        """Keyword arguments for TrainSpec."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Lattice:
    """The hyperparameter grid every recipe lives on (the paper's lattices by default)."""

    epochs: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    lr: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    weight_decay: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)

    def axis(self, name: str) -> tuple:
        return getattr(self, name)

    def size(self, fixed: dict[str, Any]) -> int:
        n = 1
        for a in AXES:
            n *= 1 if a in fixed else len(self.axis(a))
        return n


@dataclass(frozen=True)
class Recipe:
    """A way of choosing hyperparameters per (budget, size): a grid or a certificate search."""

    name: str
    search: str = "grid"
    role: str = "regularized"
    """What the analysis does with the recipe: "standard" (the baseline: best run per budget,
    data law, the reference of multipliers) or "regularized" (tuned per size: a size law with
    an asymptote). Recipes named standard and regularized default to those roles."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """Axes held constant (the standard recipe fixes weight_decay at 0.1)."""
    start: dict[str, Any] = field(default_factory=dict)
    """Adaptive search: the first lattice point (the free axes)."""
    grid: dict[str, tuple] = field(default_factory=dict)
    """Grid search: subsets of the lattice per axis (default: the whole axis)."""
    max_rounds: int = 10
    budgets: tuple[int, ...] = ()
    sizes: tuple[str, ...] = ()
    repeat_budgets: tuple[int, ...] = ()
    """Data-scaling repeats: further budgets searched with fewer sizes and rounds."""
    repeat_sizes: tuple[str, ...] = ()
    repeat_rounds: int = 0
    """Adaptive rounds at each repeat budget; 0 trains only the tuned point of the main budget."""

    def free_axes(self) -> tuple[str, ...]:
        return tuple(a for a in AXES if a not in self.fixed)

    @property
    def at_tuned_point(self) -> bool:
        """A repeat cell with no rounds of its own (``sweeps.planning.plan.cells`` gives it
        ``max_rounds`` 0): one run at the main budget's tuned point, grid or adaptive."""
        return self.max_rounds == 0


@dataclass(frozen=True)
class Evals:
    """Downstream evals of a study's best models (offline data, validation splits)."""

    tasks: tuple[str, ...] = ("arc_easy", "piqa", "sciq")
    limit: int | None = field(default=None, metadata={"positive": True})
    """Score only the first this many examples of each task."""
    models: tuple[str, ...] = ("standard", "regularized", "ensemble")
    """Which models: recipe names, "ensemble" (the largest size's) and/or "students"."""
    nested_ensembles: bool = False
    """Score the ensemble under each of ``ensembles.rules`` (soups too) for every K, not only
    all K members under logit-mean: downstream accuracy against K, a report figure."""
    num_fewshot: int = field(default=0, metadata={"min": 0})
    """Examples before each question, drawn as lm-evaluation-harness draws them (seed 1234);
    the offline data has validation splits only, so shots come from it, never the question itself."""

    @property
    def fewshot(self) -> dict:
        """The few-shot arguments of the eval spec and its data identity."""
        if not self.num_fewshot:
            return {}
        return {"num_fewshot": self.num_fewshot, "fewshot_split": "validation"}


@dataclass(frozen=True)
class Executor:
    """Where a study's runs go."""

    kind: str = field(default="local", metadata={"choices": ("local", "slurm", "debug")})
    """local (this machine, worker processes), slurm (job arrays via submitit) or debug (in-process)."""
    profile: str = "local"
    """Cluster profile name or YAML file (slurm/profiles/)."""
    parallelism: int = field(default=2, metadata={"positive": True})
    """Local workers at once."""
    runs_per_task: int = field(default=1, metadata={"positive": True})
    """Runs one Slurm array task works through."""

    # What each kind can do, asked here rather than by comparing kind names where it matters.
    @property
    def runs_here(self) -> bool:
        """Runs train on this machine (debug: in-process; local: worker processes), so this
        machine's probe times them; Slurm's train on the cluster's nodes."""
        return self.kind != "slurm"

    @property
    def starts_multi_process_runs(self) -> bool:
        """Only a Slurm job has the tasks a run on several devices or nodes needs."""
        return self.kind == "slurm"

    @property
    def local_workers(self) -> int | None:
        """Runs this machine trains at once: 1 in-process, ``parallelism`` local workers;
        None for Slurm, where the cluster decides."""
        return None if not self.runs_here else 1 if self.kind == "debug" else self.parallelism

    def workers(self, runs: int) -> int:
        """How many of ``runs`` train at once: the local workers, or one Slurm array task per
        ``runs_per_task`` runs (all at once if the cluster allows)."""
        if self.local_workers is not None:
            return max(1, min(self.local_workers, runs))
        return max(1, -(-runs // self.runs_per_task))
