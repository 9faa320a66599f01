"""Multiple-choice benchmarks (zero- or few-shot): scores, metrics, and the eval run kind.

For each choice, the log-likelihood of ``" " + choice`` after the prompt (Winogrande: of the
shared continuation after each choice's context), scored by
``eval.likelihood.score_pairs`` (harness tokenisation rules, each context computed once).
``acc`` takes the largest summed log-probability, ``acc_norm`` the largest per character
of the choice. An example with a choice longer than the model's window is skipped whole
and counted (``skipped_too_long``), never scored on its last tokens: lm-evaluation-harness
refuses such requests, so accuracy over the examples scored agrees with it exactly.

The eval run kind (``eval.kinds.EVAL``: ``DownstreamEvalSpec``, ``run_downstream_eval``) ends
the module: like training, a downstream eval is a spec, a run directory and table rows.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from eval.ensemble import open_members
from eval.fewshot import DEFAULT_FEWSHOT_SEED, DEFAULT_FEWSHOT_SPLIT
from eval.kinds import MODEL_FIELDS, STUDY_SPLIT, DownstreamEvalSpec
from eval.likelihood import encode_pairs, score_pairs, too_long
from eval.rules import RULES, SOUP
from eval.soup import nested_soups
from eval.tasks import (
    PAPER_TASKS,
    TASKS,
    TaskData,
    check_split,
    check_tasks,
    data_identity,
    default_source,
    identity_of,
    load_tasks,
    resolve_fewshot_split,
)
from pretrain.load import TrainedRun, resolve_device
from pretrain.rundir import RunDir, atomic_write_bytes, execute_run
from pretrain.sizes import param_counts
from pretrain.tokenizer import eos_id, load_tokenizer

LOGLIKELIHOODS = "loglikelihoods.jsonl"
SKIPPED_TOO_LONG = "too_long"
"""Why an example is not scored: a choice does not fit in the model's window."""


@dataclass
class ExampleScores:
    """What one example's choices scored; enough to re-score without the model."""

    task: str
    index: int
    gold: int
    lls: list[float]
    choice_chars: list[int]
    greedy: list[bool]
    skipped: str | None = None
    """Why the example was not scored (``SKIPPED_TOO_LONG``); ``lls`` is then empty."""

    def pred(self) -> int:
        return int(np.argmax(self.lls))

    def pred_norm(self) -> int:
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty choice: as numpy does in the harness
            return int(np.argmax(np.asarray(self.lls) / np.asarray(self.choice_chars, dtype=float)))


def score_tasks(models: Sequence[torch.nn.Module], tokenizer: Tokenizer, prefix_id: int,
                tasks: Sequence[TaskData], max_len: int, rule: str = "logit-mean", batch_size: int = 32,
                device: str | torch.device = "cpu") -> list[ExampleScores]:
    """Every choice of every example of ``tasks`` scored in one batched pass.

    An example is scored whole or not at all: acc compares all its choices, so one choice
    longer than ``max_len`` tokens (a request the harness refuses) skips the example.
    """
    examples = [(task.name, i, ex) for task in tasks for i, ex in enumerate(task.examples)]
    texts = [r for name, _, ex in examples for r in ex.requests(TASKS[name].target_delimiter)]
    pairs = encode_pairs(tokenizer, texts, prefix_id)
    refused, spans, start = set(too_long(pairs, max_len)), [], 0
    for _, _, ex in examples:
        spans.append(range(start, start + len(ex.choices)))
        start += len(ex.choices)
    fits = [refused.isdisjoint(span) for span in spans]
    lls, greedy = score_pairs(models, [pairs[j] for span, ok in zip(spans, fits, strict=True) if ok
                                       for j in span], max_len, rule, batch_size, device)
    out, k = [], 0
    for (name, i, ex), ok in zip(examples, fits, strict=True):
        chars, n = [len(c) for c in ex.choices], len(ex.choices)
        if not ok:
            out.append(ExampleScores(name, i, ex.gold, [], chars, [], skipped=SKIPPED_TOO_LONG))
            continue
        out.append(ExampleScores(name, i, ex.gold, [float(x) for x in lls[k:k + n]], chars,
                                 [bool(g) for g in greedy[k:k + n]]))
        k += n
    return out


def _mean_stderr(values: np.ndarray) -> float | None:  # the harness's: sample std (n - 1) / sqrt(n)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None  # no example scored: no accuracy


def task_metrics(scores: Sequence[ExampleScores]) -> dict:
    """acc and acc_norm with standard errors, and the chance level (mean of 1 / #choices),
    over the examples scored (``n``); skipped ones are counted (``skipped_too_long``)."""
    scored = [s for s in scores if s.skipped is None]
    acc = np.array([s.pred() == s.gold for s in scored], dtype=float)
    acc_norm = np.array([s.pred_norm() == s.gold for s in scored], dtype=float)
    return {
        "acc": _mean(acc), "acc_stderr": _mean_stderr(acc),
        "acc_norm": _mean(acc_norm), "acc_norm_stderr": _mean_stderr(acc_norm),
        "chance": _mean(np.array([1.0 / len(s.lls) for s in scored])), "n": len(scored),
        "skipped_too_long": sum(s.skipped == SKIPPED_TOO_LONG for s in scores),
    }


def metrics_by_task(scores: Sequence[ExampleScores]) -> dict[str, dict]:
    by_task: dict[str, list[ExampleScores]] = {}
    for s in scores:
        by_task.setdefault(s.task, []).append(s)
    return {name: task_metrics(group) for name, group in by_task.items()}


def paper_average(metrics: dict[str, dict]) -> dict | None:
    """Mean of ARC-Easy, PIQA and SciQ (the paper's average) when all three were scored;
    its standard error treats the three task means as independent."""
    if not all(t in metrics for t in PAPER_TASKS):
        return None
    out: dict = {"tasks": list(PAPER_TASKS)}
    for key in ("acc", "acc_norm", "chance"):
        values = [metrics[t][key] for t in PAPER_TASKS]
        out[key] = None if None in values else float(np.mean(values))
    for key in ("acc_stderr", "acc_norm_stderr"):
        errs = [metrics[t][key] for t in PAPER_TASKS]
        out[key] = None if None in errs else float(math.sqrt(sum(e * e for e in errs)) / len(errs))
    return out


def scores_to_jsonl(scores: Sequence[ExampleScores]) -> bytes:
    return "".join(json.dumps(s.__dict__, separators=(",", ":")) + "\n" for s in scores).encode()


def rescore(jsonl_path: str) -> dict[str, dict]:
    """Metrics recomputed from a saved per-example log-likelihood file (no model needed)."""
    with open(jsonl_path) as f:
        scores = [ExampleScores(**json.loads(line)) for line in f if line.strip()]
    metrics = metrics_by_task(scores)
    return {**metrics, **({"average": avg} if (avg := paper_average(metrics)) else {})}


# ---------------------------------------------------------------------------------------
# The eval run kind

def make_spec(member_dirs: Sequence[str | Path], tasks: Sequence[str] = PAPER_TASKS,
              rule: str = "logit-mean", limit: int | None = None, source: str | None = None,
              batch_size: int = 32, device: str = "auto", threads: int = 0,
              split: str = STUDY_SPLIT, num_fewshot: int = 0, fewshot_seed: int = DEFAULT_FEWSHOT_SEED,
              fewshot_split: str = DEFAULT_FEWSHOT_SPLIT, nested: bool = False) -> DownstreamEvalSpec:
    """The spec of scoring these runs (an ensemble when several); loads the data to hash it.

    ``split``: "default" for the harness's split of each task (``dcsl eval``'s default), or
    a split name for every task; here it defaults to ``STUDY_SPLIT`` for study files.
    ``num_fewshot`` examples precede each question, drawn with ``fewshot_seed`` from
    ``fewshot_split`` ("default": where lm-eval draws them; or a split name).
    """
    runs = open_members(member_dirs)
    source = source or default_source()
    tasks = check_tasks(list(tasks))
    check_split(split, tasks)  # a split a task lacks fails before any data is read
    for name in tasks:
        resolve_fewshot_split(name, fewshot_split)
    data = data_identity(source, tasks, limit, split, num_fewshot, fewshot_seed, fewshot_split)
    return DownstreamEvalSpec(
        runs=tuple(r.run_id for r in runs), data=data, tasks=tasks,
        rule=rule, limit=limit, split=split, num_fewshot=num_fewshot, fewshot_seed=fewshot_seed,
        fewshot_split=fewshot_split, nested=nested, members=tuple(str(r.path) for r in runs), source=source,
        batch_size=batch_size, device=device, threads=threads, label=runs[0].spec.readable_name())


def run_downstream_eval(spec: DownstreamEvalSpec, run_dir: str | Path, log=print) -> dict:  # noqa: ANN001
    """Score ``spec`` in ``run_dir``; returns result.json (the stored one if already done).

    Members, tokenizer and data are checked before the directory is created. A failure
    is recorded in status.json and re-raised.
    """
    def prepare() -> tuple:
        members = open_members(spec.members, spec.runs)
        tokenizer = load_tokenizer(members[0].store.tokenizer_path)
        tasks = load_tasks(spec.tasks, spec.source, spec.limit, spec.split, spec.num_fewshot,
                           spec.fewshot_seed, spec.fewshot_split)
        if identity_of(tasks) != spec.data:
            raise ValueError(f"the data at {spec.source} ({identity_of(tasks)[:23]}) is not the data "
                             f"the spec asks for ({spec.data[:23]})")
        return members, tokenizer, tasks

    return execute_run(spec, run_dir, prepare, lambda run, inputs: _evaluate(spec, run, *inputs, log))


def _evaluate(spec: DownstreamEvalSpec, run: RunDir, members: list[TrainedRun], tokenizer: Tokenizer,
              tasks: list[TaskData], log) -> dict:  # noqa: ANN001
    device = resolve_device(spec.device)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    max_len = min(m.spec.seq_len for m in members)
    n_requests = sum(len(ex.choices) for t in tasks for ex in t.examples)
    ks = range(1, len(members) + 1) if spec.nested else [len(members)]
    log(f"{run.path.name}: scoring {n_requests} choices ({', '.join(spec.tasks)}, {spec.num_fewshot}-shot) with "
        f"{len(members)} member(s) under {spec.rule} on {device}" + (", for every K" if spec.nested else ""))
    t0 = time.perf_counter()
    by_k = []
    for k, models in zip(ks, _models_for(spec.rule, members, ks, device), strict=True):
        # A soup is one model: any output rule scores it alike.
        scores = score_tasks(models, tokenizer, eos_id(tokenizer), tasks, max_len,
                             RULES[0] if spec.rule == SOUP else spec.rule, spec.batch_size, device)
        metrics = metrics_by_task(scores)
        by_k.append({"K": k, "tasks": metrics, "average": paper_average(metrics)})
    wall = max(time.perf_counter() - t0, 1e-9)
    atomic_write_bytes(run.path / LOGLIKELIHOODS, scores_to_jsonl(scores))  # of all K members
    for t in tasks:
        metrics[t.name]["split"] = t.info["split"]
        metrics[t.name]["data"] = t.info
        for entry in by_k:
            entry["tasks"][t.name]["split"] = t.info["split"]
        if skipped := metrics[t.name]["skipped_too_long"]:
            log(f"{run.path.name}: {t.name}: {skipped} of {len(t.examples)} examples skipped: a choice is "
                f"longer than the model's window of {max_len} tokens (lm-eval refuses those too)")
    n_scored = sum(s.skipped is None for s in scores) * len(by_k)
    log(f"{run.path.name}: scored in {wall:.1f}s ({n_scored / wall:,.0f} examples/s)")
    nested = {"by_K": by_k} if spec.nested else {}
    return {**nested,
        "kind": "eval", "rule": spec.rule, "K": len(members), "split": spec.split,
        "num_fewshot": spec.num_fewshot, "fewshot_seed": spec.fewshot_seed, "fewshot_split": spec.fewshot_split,
        "tasks": metrics,
        "average": paper_average(metrics), "model": _model_summary(members),
        "members": [{"run_id": m.run_id, "path": str(m.path), "weights_sha256": m.weights_sha256}
                    for m in members],
        "loglikelihoods": LOGLIKELIHOODS, "max_len": max_len, "requests": n_requests,
        "requests_scored": sum(len(s.lls) for s in scores),
        "wall_s": wall, "examples_per_s": n_scored / wall, "device": str(device),
        "batch_size": spec.batch_size,
    }


def _models_for(rule: str, members: list[TrainedRun], ks: Sequence[int], device: torch.device):  # noqa: ANN202
    """For each K in ``ks``, the models that score the first K members under ``rule``: the
    members themselves, or their uniform soup as one model (built in place, K by K)."""
    if rule == SOUP:
        for k, soup in enumerate(nested_soups(members, device), start=1):
            if k in ks:
                yield [soup]  # scored before the next K overwrites its weights
        return
    models = [m.load_model(device) for m in members]
    for k in ks:
        yield models[:k]


def _model_summary(members: list[TrainedRun]) -> dict:
    """The evaluated model's table fields; a field the members disagree on is None."""
    def one(m: TrainedRun) -> dict:
        total, _ = param_counts(m.shape)
        return {"size": m.spec.size, "n_params": total, "budget_tokens": m.spec.tokens,
                "epochs": m.spec.epochs, "lr": m.spec.lr, "weight_decay": m.spec.weight_decay}
    each = [one(m) for m in members]
    return {k: each[0][k] if all(e[k] == each[0][k] for e in each) else None for k in MODEL_FIELDS}
