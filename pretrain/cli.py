"""``dcsl data prepare`` and ``dcsl train``."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from pathlib import Path


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal under each field)."""
    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(cls)).body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="token stores").add_subparsers(dest="data_command", metavar="ACTION")
    p = data.add_parser("prepare", help="tokenize a corpus into a token store (train.bin, val.bin, manifest)")
    p.add_argument("--out", required=True, help="store directory to create")
    p.add_argument("--source", choices=["bible", "files", "hub"], default="bible",
                   help="bible: the embedded King James Bible; files: local .txt/.jsonl/.parquet; "
                        "hub: a Hugging Face dataset (or local dataset folder) streamed by name")
    p.add_argument("--files", nargs="*", default=[], help="local corpus files (with --source files)")
    p.add_argument("--dataset", default="", help="dataset name, e.g. mlfoundations/dclm-baseline-1.0")
    p.add_argument("--revision", default=None, help="dataset revision (commit) to pin")
    p.add_argument("--split", default="train")
    p.add_argument("--text-field", default="text")
    p.add_argument("--shuffle-seed", type=int, default=0, help="document shuffle seed; -1 keeps source order")
    p.add_argument("--shuffle-buffer", type=int, default=10_000)
    p.add_argument("--tokenizer", default=None, help="tokenizers JSON file; omit to train a byte-level BPE")
    p.add_argument("--vocab-size", type=int, default=4096, help="vocab of the trained BPE")
    p.add_argument("--eos-token", default=None)
    p.add_argument("--val-tokens", default="50k", help="exact validation size (e.g. 50k, 4.2M)")
    p.add_argument("--val-every", type=int, default=10, help="every n-th document goes to validation")
    p.add_argument("--max-train-tokens", default=None, help="truncate the training stream (e.g. 1.6B)")
    p.add_argument("--dtype", choices=["uint16", "uint32"], default=None)
    p.set_defaults(func=_prepare)

    v = data.add_parser("verify", help="hash a token store's data files against its manifest")
    v.add_argument("store", help="token store directory")
    v.set_defaults(func=_verify)

    t = sub.add_parser("train", help="train one model on a token budget (resumes if interrupted)")
    from pretrain.spec import TrainSpec

    docs = field_docs(TrainSpec)
    t.add_argument("--run-dir", default=None, help="run directory (default: <--root>/<name>-<id>)")
    t.add_argument("--root", default="runs", help="where run directories are created")
    for f in dataclasses.fields(TrainSpec):
        if f.name in ("store_id",):
            continue
        flag = "--" + f.name.replace("_", "-")
        required = f.default is dataclasses.MISSING
        kind = {"int": int, "float": float, "bool": parse_bool, "str": str}.get(
            str(f.type).split(" |")[0], str)
        if f.name == "tokens":
            kind = str
        t.add_argument(flag, type=kind, required=required, default=None if required else f.default,
                       help=docs.get(f.name, ""))
    t.set_defaults(func=_train)


def parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def _prepare(args: argparse.Namespace) -> int:
    from pretrain.corpus import CorpusSource
    from pretrain.store import PrepareConfig, parse_tokens, prepare_store

    source = CorpusSource(
        kind=args.source, name=args.dataset, revision=args.revision, split=args.split,
        files=tuple(args.files), text_field=args.text_field,
        shuffle_seed=None if args.shuffle_seed < 0 else args.shuffle_seed, shuffle_buffer=args.shuffle_buffer,
    )
    cfg = PrepareConfig(
        source=source, out=args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
        eos_token=args.eos_token, val_tokens=parse_tokens(args.val_tokens), val_every=args.val_every,
        max_train_tokens=parse_tokens(args.max_train_tokens) if args.max_train_tokens else None,
        dtype=args.dtype,
    )
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
    from pretrain.spec import TrainSpec
    from pretrain.store import TokenStore, parse_tokens
    from pretrain.train import train_run

    store = TokenStore(args.store)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSpec) if f.name != "store_id"}
    values["tokens"] = parse_tokens(values["tokens"])
    spec = TrainSpec(store_id=store.store_id, **values)
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.root) / spec.dirname
    from pretrain.rundir import RunDir
    from pretrain.train import check_spec

    check_spec(spec)  # every input error before the run directory exists
    with RunDir(run_dir).exclusive():
        result = train_run(spec, run_dir)
    print(f"{run_dir}: final validation loss {result['final_val_loss']:.4f} nats/token "
          f"(best {result['best_val_loss']:.4f}), {result['tokens_per_s']:,.0f} tokens/s")
    return 0
