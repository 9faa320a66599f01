"""``dcsl data prepare`` and ``dcsl train``."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from collections.abc import Collection
from pathlib import Path
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal under each field), as plain
    text for help screens (RST ``code`` marks dropped)."""
    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(cls)).body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).replace("``", "").split())
    return docs


def add_run_location(p: argparse.ArgumentParser) -> None:
    """--root and --run-dir: where a command that makes one run puts its run directory."""
    p.add_argument("--root", default="runs", help="folder in which the run directory is created")
    p.add_argument("--run-dir", default=None,
                   help="the run directory itself (default: <root>/<readable name>-<run id>)")


def run_dir_for(args: argparse.Namespace, spec) -> Path:  # noqa: ANN001 - any run spec
    return Path(args.run_dir) if args.run_dir else Path(args.root) / spec.dirname


def add_device_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="token stores").add_subparsers(dest="data_command", metavar="ACTION")
    _add_prepare(data)

    v = data.add_parser("verify", help="hash a token store's data files against its manifest")
    v.add_argument("store", help="token store directory")
    v.set_defaults(func=_verify)

    t = sub.add_parser("train", help="train one model on a token budget (resumes if interrupted)")
    from pretrain.spec import TrainSpec

    docs = field_docs(TrainSpec)
    add_run_location(t)
    t.add_argument("--spec", default=None, metavar="RUN/spec.json",
                   help="rerun one run exactly from its spec.json (a sweep's or another dcsl train's): same "
                        "run id and hyperparameters; only settings that leave the id alone (--store, "
                        "--threads, --val-every, ...) may be given beside it")
    add_spec_flags(t, TrainSpec, NOT_FLAGS, docs, required=False)
    from pretrain.spec import TRACKERS

    t.add_argument("--logger", action="append", default=[], choices=TRACKERS, metavar="NAME",
                   help="an experiment tracker that also gets every metrics.csv row, repeatable: "
                        f"{', '.join(TRACKERS)} (Lightning's loggers; tensorboard, wandb and mlflow need "
                        "their extra, e.g. pip install -e '.[wandb]')")
    t.set_defaults(func=_train)


def _spec_from_flags(args: argparse.Namespace):  # noqa: ANN202 - a TrainSpec
    from pretrain.spec import TrainSpec
    from pretrain.store import TokenStore, parse_tokens

    values = given_spec_flags(args, TrainSpec, NOT_FLAGS)
    missing = [f"--{n}" for n in ("store", "tokens") if n not in values]
    if missing:
        raise ValueError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                         "(or --spec RUN/spec.json to rerun a run)")
    size, init_from = values.get("size"), values.get("init_from")
    if init_from is None and size is None:
        raise ValueError("--size is required (or --init-from a Hugging Face Llama to continue)")
    if init_from is not None and size is not None:
        raise ValueError("--size and --init-from exclude each other: the base's config is the size")
    store = TokenStore(values["store"])
    values["tokens"] = parse_tokens(values["tokens"])
    values["loggers"] = tuple(args.logger)
    init_id = ""
    if init_from is not None:
        from pretrain.hfconfig import base_id

        values["init_from"] = str(Path(init_from).resolve())
        values["size"] = Path(values["init_from"]).name
        init_id = base_id(values["init_from"])
    return TrainSpec(store_id=store.store_id, init_id=init_id, **values)


def _spec_from_file(args: argparse.Namespace):  # noqa: ANN202 - a TrainSpec
    """The spec a run was trained with, for ``--spec``. Flags that would change its id are
    refused (that would be another run); operational ones (where the store now is, threads,
    checkpoints, trackers) apply. The store is still checked against the spec's store id."""
    import json

    from pretrain.spec import TrainSpec

    path = Path(args.spec)
    if path.is_dir():
        path = path / "spec.json"
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"--spec {args.spec}: cannot read it ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--spec {path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("kind") != TrainSpec.kind:
        kind = data.get("kind") if isinstance(data, dict) else None
        raise ValueError(f"--spec {path}: its kind is {kind!r}, not a training run; dcsl train --spec reruns "
                         "spec.json files of kind 'train'")
    try:
        spec = TrainSpec.from_json(data)
    except TypeError as e:
        raise ValueError(f"--spec {path}: not a training spec dcsl can read ({e})") from None
    given = given_spec_flags(args, TrainSpec, NOT_FLAGS)
    changes = sorted(n for n in given if n not in TrainSpec.OPERATIONAL)
    if changes:
        raise ValueError(f"--spec reruns {path} exactly; {', '.join('--' + n.replace('_', '-') for n in changes)} "
                         "would make another run (train it without --spec)")
    if args.logger:
        given["loggers"] = tuple(dict.fromkeys((*spec.loggers, *args.logger)))
    spec = dataclasses.replace(spec, **given)
    if spec.run_id != data.get("id"):
        raise ValueError(f"--spec {path}: its fields give run id {spec.run_id}, not the {data.get('id')!r} "
                         "it records; the file was edited or written by another dcsl version")
    return spec


# TrainSpec fields without a flag of their own: content ids, a study's shapes, the trackers
# (--logger, repeatable) and the labels a sweep gives them.
NOT_FLAGS = ("store_id", "init_id", "custom_sizes", "loggers", "tracker_tags")


def _add_prepare(data: argparse._SubParsersAction) -> None:
    """The ``data prepare`` parser; its defaults are the dataclasses' own (written once)."""
    from pretrain.corpus import SUPPORTED_FILES, TXT_DOCUMENTS, CorpusSource
    from pretrain.store import PrepareConfig
    from pretrain.tokenizer import EOS_CANDIDATES

    def default(cls: type, name: str):  # noqa: ANN202 - the field's default value
        return next(f.default for f in dataclasses.fields(cls) if f.name == name)

    p = data.add_parser(
        "prepare", help="tokenize a corpus into a token store (train.bin, val.bin, manifest)",
        description="Tokenize a corpus into a token store: train.bin (one ordered stream; "
                    "training budgets are its prefixes), val.bin (a fixed validation set "
                    "disjoint from it), tokenizer.json and manifest.json. Every document "
                    f"ends with the EOS token; {TXT_DOCUMENTS}; a JSON line or a parquet "
                    "row is one document.")
    p.add_argument("--store", required=True, help="token store directory to create (absent or empty)")
    p.add_argument("--source", choices=["bible", "files", "hub"], default=default(CorpusSource, "kind"),
                   help="bible: the embedded King James Bible, one document per chapter; "
                        "files: the local files given with --files; hub: a Hugging Face dataset "
                        "(or local dataset folder) named by --dataset, streamed "
                        "(default: %(default)s)")
    p.add_argument("--files", nargs="+", default=[], metavar="FILE",
                   help=f"local corpus files, read only with --source files: {SUPPORTED_FILES}. "
                        f"{TXT_DOCUMENTS[0].upper()}{TXT_DOCUMENTS[1:]}; a JSON line or parquet row "
                        "is one document (its --text-field)")
    p.add_argument("--dataset", default="",
                   help="dataset name or local dataset folder, read only with --source hub, "
                        "e.g. mlfoundations/dclm-baseline-1.0")
    p.add_argument("--revision", default=None,
                   help="dataset revision (commit) to pin, with --source hub (default: the latest)")
    p.add_argument("--split", default=default(CorpusSource, "split"),
                   help="dataset split to read, with --source hub (default: %(default)s)")
    p.add_argument("--text-field", default=default(CorpusSource, "text_field"),
                   help="the field of a JSON line, parquet row or dataset row that holds the "
                        "document text (default: %(default)s)")
    p.add_argument("--shuffle-seed", type=int, default=default(CorpusSource, "shuffle_seed"),
                   help="seed of the buffered document shuffle; -1 keeps the source order "
                        "(default: %(default)s)")
    p.add_argument("--shuffle-buffer", type=int, default=default(CorpusSource, "shuffle_buffer"),
                   help="documents held in the shuffle buffer (default: %(default)s)")
    p.add_argument("--tokenizer", default=None,
                   help="a tokenizers JSON file, e.g. Llama-3's tokenizer.json (default: train a "
                        "byte-level BPE of --vocab-size on the training documents)")
    p.add_argument("--vocab-size", type=int, default=default(PrepareConfig, "vocab_size"),
                   help="vocabulary size of the trained BPE; unused with --tokenizer "
                        "(default: %(default)s)")
    p.add_argument("--tokenizer-docs", type=int, default=default(PrepareConfig, "tokenizer_docs"),
                   help="train the BPE on at most this many training documents; unused with "
                        "--tokenizer (default: %(default)s)")
    p.add_argument("--eos-token", default=None,
                   help="the end-of-document token appended to every document (default: the "
                        f"first of {', '.join(EOS_CANDIDATES)} that the tokenizer has)")
    p.add_argument("--val-tokens", default=default(PrepareConfig, "val_tokens"),
                   help="exact size of the fixed validation set, e.g. 50k or 4.2M "
                        "(default: %(default)s)")
    p.add_argument("--val-every", type=int, default=default(PrepareConfig, "val_every"),
                   help="document i goes to validation when i %% val_every == 0, until the "
                        "validation set is full; the rest is training (default: %(default)s)")
    p.add_argument("--max-train-tokens", default=None,
                   help="stop the training stream at exactly this many tokens, e.g. 1.6B "
                        "(default: the whole corpus)")
    p.add_argument("--dedupe", action="store_true",
                   help="drop every repeat of a document (same text up to Unicode form and whitespace) "
                        "before the split; without it, repeats in the training stream are reported and a "
                        "validation document that is also a training one is refused")
    p.add_argument("--dtype", choices=["uint16", "uint32"], default=None,
                   help="token id type of train.bin and val.bin (default: uint16 when the "
                        "vocabulary fits, else uint32)")
    p.set_defaults(func=_prepare)


def add_spec_flags(p: argparse.ArgumentParser, cls: type, skip: Collection[str], docs: dict[str, str],
                   required: bool = True) -> None:
    """One flag per field of the run spec ``cls`` (``--weight-decay`` for weight_decay), typed by
    its annotation, with its docstring as help; ``skip`` names the fields the command fills in
    itself. A flag left out is absent from the parsed namespace (``given_spec_flags`` reads the
    given ones; the spec's own defaults fill the rest), so a command can tell a given flag from
    a default. With ``required``, fields without a default are required flags."""
    from pretrain.sizes import SIZES

    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        missing = f.default is dataclasses.MISSING
        # Token counts are read as "100k". dcsl train checks --size itself (--init-from names
        # a continued run by its base instead).
        kind = str if f.name == "tokens" else {"int": int, "float": float, "bool": parse_bool}.get(
            str(f.type).split(" |")[0], str)
        note = ("" if missing or f.default in (None, False, "", ()) else f" (default: {f.default})")
        if missing and not required and f.name != "size":
            note = " (required unless --spec)"
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=argparse.SUPPRESS,
                       required=required and missing,
                       choices=list(SIZES) if f.name == "size" else None, help=docs.get(f.name, "") + note)


def given_spec_flags(args: argparse.Namespace, cls: type, skip: Collection[str]) -> dict[str, Any]:
    """The fields of ``cls`` whose flags (``add_spec_flags``) were given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if f.name not in skip and hasattr(args, f.name)}


def parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def _prepare(args: argparse.Namespace) -> int:
    from pretrain.store import PREPARE_OPTIONS, prepare_config, prepare_store

    # Inputs another source would silently ignore are refused before anything is read.
    if args.files and args.source != "files":
        raise ValueError(f"--files needs --source files (got --source {args.source})")
    if args.source == "files" and not args.files:
        raise ValueError("--source files needs --files FILE...")
    for flag, value in (("--dataset", args.dataset), ("--revision", args.revision)):
        if value and args.source != "hub":
            raise ValueError(f"{flag} needs --source hub (got --source {args.source})")
    cfg = prepare_config({key: getattr(args, key, None) for key in PREPARE_OPTIONS}, args.store)
    prepare_store(cfg)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pretrain.store import TokenStore

    store = TokenStore(args.store, verify_checksums=False)
    store.verify()
    print(f"{store.path}: train.bin ({store.train_size:,} tokens) and val.bin ({store.val_size:,} "
          f"tokens) match the manifest; store id {store.store_id}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from pretrain.trackers import check_trackers
    from pretrain.train import train_run

    check_trackers(args.logger)  # a missing tracker package is refused before anything runs
    spec = _spec_from_file(args) if args.spec else _spec_from_flags(args)
    run_dir = run_dir_for(args, spec)
    from pretrain.rundir import RunDir
    from pretrain.train import check_spec

    check_spec(spec)  # every input error before the run directory exists
    from pretrain.ranks import is_main_process

    if not is_main_process():  # a rank that Lightning's launcher started: rank 0 owns the run
        train_run(spec, run_dir)
        return 0
    with RunDir(run_dir).exclusive():
        result = train_run(spec, run_dir)
    print(f"{run_dir}: final validation loss {result['final_val_loss']:.4f} nats/token "
          f"(best {result['best_val_loss']:.4f}), {result['tokens_per_s']:,.0f} tokens/s")
    return 0
