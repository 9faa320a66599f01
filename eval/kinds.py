"""The eval package's run kinds: their specs and results-table rows (torch-free).

- ``ensemble``: the validation loss of nested ensembles of K trained members
  (``EnsembleEvalSpec``, run by ``eval.ensemble.run_ensemble``);
- ``eval``: zero- or few-shot downstream accuracy of a model or an ensemble
  (``DownstreamEvalSpec``, run by ``eval.downstream.run_downstream_eval``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from eval.fewshot import DEFAULT_FEWSHOT_SEED, DEFAULT_FEWSHOT_SPLIT
from eval.rules import LOSS_RULES, RULES, check_rules
from eval.tasks import PAPER_TASKS, check_split, resolve_fewshot_split
from pretrain.runkind import RunKind, TableRow
from pretrain.spec import SpecBase

MODEL_FIELDS = ("size", "n_params", "budget_tokens", "epochs", "lr", "weight_decay")
STUDY_SPLIT = "validation"
"""The split ``make_spec`` asks for unless told: study files name no split yet, the offline
data ships only validation splits, and every eval before splits existed scored them."""


@dataclass(frozen=True)
class EnsembleEvalSpec(SpecBase):
    """Validation loss of the nested ensembles of K trained members under named rules."""

    kind: ClassVar[str] = "ensemble"
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset(
        {"member_dirs", "store", "batch_size", "buffer_mb", "keep_members", "device", "precision", "threads"}
    )

    size: str
    """Model size of every member (checked against the members)."""
    member_ids: tuple[str, ...]
    """Run ids of the members, in order: member k joins the ensemble at K = k + 1."""
    member_dirs: tuple[str, ...]
    """Run directories of the members (operational: the ids above are what counts)."""
    store: str
    """Token store holding the validation set (operational: see store_id)."""
    store_id: str
    """Content id of that store; its val.bin is the fixed validation set."""
    seq_len: int
    """Evaluation context length (usually the members' training seq_len)."""
    rules: tuple[str, ...] = RULES
    """Combination rules: logit-mean (the paper's), prob-mean and/or uniform-soup."""
    batch_size: int = 16
    """Sequences per member forward pass."""
    buffer_mb: int = 512
    """Memory for one chunk's combined predictions; sets how many sequences a chunk holds."""
    keep_members: bool = False
    """Keep all K members loaded (memory grows with K by their weights; no reloads)."""
    device: str = "auto"
    """'auto' is cuda when available, else cpu."""
    precision: str = "auto"
    """'auto' is bf16 autocast on cuda, fp32 on cpu; logits are combined in fp32."""
    threads: int = 0

    def __post_init__(self) -> None:
        # Canonical rule order, so ("prob-mean", "logit-mean") is the same run as its reverse.
        chosen = check_rules(self.rules, LOSS_RULES)
        object.__setattr__(self, "rules", tuple(r for r in LOSS_RULES if r in chosen))
        if not self.member_ids:
            raise ValueError("an ensemble needs at least one member")
        if len(set(self.member_ids)) != len(self.member_ids):
            raise ValueError(f"member_ids repeat a run: {list(self.member_ids)}")
        if len(self.member_dirs) != len(self.member_ids):
            raise ValueError(f"{len(self.member_dirs)} member_dirs for {len(self.member_ids)} member_ids")
        for name in ("seq_len", "batch_size", "buffer_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def readable_name(self) -> str:
        return f"ensemble-{self.size}-K{len(self.member_ids)}-{self.member_ids[0][:6]}"


@dataclass(frozen=True)
class DownstreamEvalSpec(SpecBase):
    """Zero- or few-shot downstream accuracy of one model or a K-member ensemble."""

    kind: ClassVar[str] = "eval"
    OPERATIONAL: ClassVar[frozenset[str]] = frozenset(
        {"members", "source", "batch_size", "device", "threads", "label"})
    # Added with few-shot evals: at their defaults (0-shot) they stay out of the id.
    LATER: ClassVar[frozenset[str]] = frozenset({"num_fewshot", "fewshot_seed", "fewshot_split", "nested"})

    runs: tuple[str, ...]
    """Run ids of the evaluated training runs (ensemble members, in order)."""
    data: str
    """Identity of the examples scored (``eval.tasks.data_identity``)."""
    tasks: tuple[str, ...] = PAPER_TASKS
    rule: str = "logit-mean"
    """How members combine: logit-mean or prob-mean, or uniform-soup (one model whose weights are
    the members' mean); one member: always logit-mean."""
    limit: int | None = None
    """Score only the first this many examples of each task."""
    nested: bool = False
    """Score the ensemble (or soup) of the first K members for every K, not only of all of them:
    accuracy against K."""
    split: str = STUDY_SPLIT
    """"default" (the harness's: test where a task has one, else validation) or a split name."""
    num_fewshot: int = 0
    """Examples (with their answers) before each question, drawn as lm-evaluation-harness does."""
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    """Seed of the few-shot sampler (lm-eval's fewshot_random_seed)."""
    fewshot_split: str = DEFAULT_FEWSHOT_SPLIT
    """Where shots come from: "default" (lm-eval's split per task) or a split name."""
    members: tuple[str, ...] = ()
    """Run directories of the members (operational: the ids are in ``runs``)."""
    source: str = "offline"
    """Where the data is read: offline, hub or a local directory."""
    batch_size: int = 32
    device: str = "auto"
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    label: str = ""
    """Readable name of the first member, for the directory name only."""

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("an eval needs at least one run")
        if len(self.members) != len(self.runs):
            raise ValueError(f"{len(self.runs)} run ids but {len(self.members)} member directories")
        if self.rule not in LOSS_RULES:
            raise ValueError(f"unknown ensemble rule {self.rule!r}; use {', '.join(LOSS_RULES)}")
        if len(self.runs) == 1:  # one member scores the same under both rules: one run id
            object.__setattr__(self, "rule", RULES[0])
        check_split(self.split, self.tasks)
        if self.num_fewshot < 0:
            raise ValueError(f"num_fewshot must be 0 or more, got {self.num_fewshot}")
        for name in self.tasks:
            resolve_fewshot_split(name, self.fewshot_split)
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be positive, got {self.limit}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")

    def readable_name(self) -> str:
        k = f"-K{len(self.runs)}-{self.rule}" if len(self.runs) > 1 else ""
        shots = f"-{self.num_fewshot}shot" if self.num_fewshot else ""
        return f"eval-{self.label or self.runs[0]}{k}{'-nested' if self.nested else ''}{shots}"


def ensemble_rows(spec_json: dict, result_json: dict) -> list[TableRow]:
    """One results-table row per (K, rule) of a finished ensemble evaluation."""
    recipe = result_json["member_recipe"]
    rows = []
    for rule in result_json["rules"]:
        for k, loss in enumerate(result_json["losses"][rule], start=1):
            rows.append({
                "kind": "ensemble", "size": recipe["size"], "n_params": result_json["n_params"],
                "n_params_non_embedding": result_json["n_params_non_embedding"],
                "budget_tokens": recipe["budget_tokens"], "epochs": recipe["epochs"], "lr": recipe["lr"],
                "weight_decay": recipe["weight_decay"], "seed": recipe["seed"], "K": k, "rule": rule,
                "val_loss": loss, "best_val_loss": loss,
            })
    return rows


def eval_rows(spec_json: dict, result_json: dict) -> list[TableRow]:
    """Results-table rows of one eval run: one per task, then the paper's average (for each K,
    when the eval was nested)."""
    if "by_K" in result_json:
        return [row for entry in result_json["by_K"]
                for row in eval_rows(spec_json, {k: v for k, v in result_json.items() if k != "by_K"} | entry)]
    model = result_json.get("model", {})
    base = {"kind": "eval", "K": result_json.get("K", len(spec_json.get("runs", ()))),
            "rule": result_json.get("rule", spec_json.get("rule")),
            "num_fewshot": result_json.get("num_fewshot", 0),
            **{k: model.get(k) for k in MODEL_FIELDS}}
    keys = ("acc", "acc_norm", "acc_stderr", "acc_norm_stderr", "chance", "n")
    # Results from before splits were recorded scored validation; whether they cut a too-long
    # continuation then is unknown, so their skipped_too_long stays empty.
    rows = [{**base, "task": name, "split": m.get("split", STUDY_SPLIT), **{k: m.get(k) for k in keys},
             "skipped_too_long": m.get("skipped_too_long")}
            for name, m in result_json.get("tasks", {}).items()]
    average = result_json.get("average")
    if average:
        splits = "+".join(sorted({r["split"] for r in rows if r["task"] in average.get("tasks", ())}))
        rows.append({**base, "task": "average", "split": splits, **{k: average.get(k) for k in keys},
                     "n": None, "skipped_too_long": None})
    return rows


ENSEMBLE = RunKind("ensemble", EnsembleEvalSpec, "eval.ensemble:run_ensemble", ensemble_rows)
EVAL = RunKind("eval", DownstreamEvalSpec, "eval.downstream:run_downstream_eval", eval_rows)
KINDS = (ENSEMBLE, EVAL)
