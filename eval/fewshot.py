"""Few-shot contexts with lm-evaluation-harness 0.4.x's semantics, without importing it.

What the harness does (``ConfigurableTask.fewshot_context`` with ``api.samplers``), and so
what this module does, for one task (each MMLU subject is a task of its own there):

- shots are drawn from the *few-shot split*: the task file's ``fewshot_split``, else its
  training split, else validation, else test (``TaskDef.harness_fewshot_split``);
- the sampler is one ``random.Random(seed)`` per task (seed 1234 unless told), drawn from
  once per scored document, in the order the documents are scored, so the shots of a
  document depend on those drawn before it (``--limit`` keeps a prefix of them);
- when the document itself may be in the pool, it draws ``n + 1`` and drops the document
  (rows compared whole), keeping the first ``n``; should that leave fewer than ``n`` (the
  document drawn twice as duplicate rows), it draws ``n`` again from the pool without it.
  The harness does so when the few-shot split equals the file's test split, which holds
  for files naming neither (HellaSwag, PIQA, Winogrande, BoolQ); dcsl also does it
  whenever the pool is the split being scored;
- the ``first_n`` sampler (MMLU) takes the first ``n`` rows of the pool, no randomness;
- the context is the description, then each shot as ``question + target_delimiter +
  gold choice text + fewshot_delimiter`` (Winogrande: the gold option's context and the
  shared continuation), then the question (``Example.as_shot``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eval.taskdefs import Example, TaskDataError, TaskDef

DEFAULT_FEWSHOT_SEED = 1234
"""lm-eval's ``fewshot_random_seed`` default."""
DEFAULT_FEWSHOT_SPLIT = "default"
"""Draw shots where the harness does (``TaskDef.harness_fewshot_split``)."""


def draws_without_self(task: TaskDef, pool_split: str, eval_split: str) -> bool:
    """Whether each document is left out of its own shots (and ``n + 1`` drawn): the
    harness's rule (few-shot split == test split, None == None included), or the pool is
    the split scored."""
    return task.fewshot_split == task.test_split or pool_split == eval_split


def draw(rnd: random.Random, pool: Sequence[tuple[dict, Example]], n: int, row: dict | None,
         sampler: str = "default") -> list[Example]:
    """``n`` shots for the document ``row`` (None: it is not in the pool), as
    ``ContextSampler.sample`` / ``FirstNSampler.sample`` draw them."""
    if n == 0:
        return []
    if sampler == "first_n":
        candidates = [p for p in pool if p[0] != row] if row is not None else list(pool)
        return [ex for _, ex in candidates[:n]]
    if row is None:
        return [ex for _, ex in rnd.sample(list(pool), n)]
    picked = [p for p in rnd.sample(list(pool), n + 1) if p[0] != row][:n]
    if len(picked) < n:
        picked = rnd.sample([p for p in pool if p[0] != row], n)
    return [ex for _, ex in picked]


def with_fewshot(task: TaskDef, examples: Sequence[Example], rows: Sequence[dict],
                 pool: Sequence[tuple[dict, Example]], n: int, seed: int = DEFAULT_FEWSHOT_SEED,
                 without_self: bool = False, subset: str = "", where: str = "") -> list[Example]:
    """``examples`` (from ``rows``, in scoring order) behind the task's description and ``n``
    shots drawn from ``pool`` ((row, example) pairs of the few-shot split)."""
    if n < 0:
        raise ValueError(f"num_fewshot must be 0 or more, got {n}")
    need = n + 1 if without_self and task.sampler != "first_n" else n
    if n and len(pool) < need:
        raise TaskDataError(f"{task.name}: {n}-shot needs {need} examples to draw from, but {where or 'the pool'} "
                            f"holds {len(pool)}")
    description = task.description_for(subset)
    rnd = random.Random(seed)
    out = []
    for ex, row in zip(examples, rows, strict=True):
        shots = draw(rnd, pool, n, row if without_self else None, task.sampler)
        if len(shots) < n:
            raise TaskDataError(f"{task.name}: {where or 'the pool'} holds fewer than {n} examples besides "
                                "the one scored")
        prefix = description + "".join(s.as_shot(task.target_delimiter, task.fewshot_delimiter) for s in shots)
        out.append(ex.with_prefix(prefix))
    return out
