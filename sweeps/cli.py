"""``dcsl demo`` (and, as the sweeps land, ``dcsl sweep ...``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="the embedded study in miniature on this machine")
    d.add_argument("--out", default="demo-output", help="where the store, runs and report go")
    d.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    """Until the demo study lands: prepare the embedded corpus and train one tiny model."""
    from pretrain.corpus import CorpusSource
    from pretrain.spec import TrainSpec
    from pretrain.store import PrepareConfig, TokenStore, prepare_store
    from pretrain.train import train_run

    out = Path(args.out)
    store_dir = out / "store"
    if not (store_dir / "manifest.json").exists():
        prepare_store(PrepareConfig(source=CorpusSource(kind="bible"), out=str(store_dir),
                                    vocab_size=2048, val_tokens=50_000, max_train_tokens=800_000))
    store = TokenStore(store_dir)
    spec = TrainSpec(size="tiny-200k", store=str(store_dir), store_id=store.store_id, tokens=100_000,
                     epochs=4, lr=1e-2, weight_decay=0.8, batch_size=16, seq_len=128)
    result = train_run(spec, out / "runs" / spec.dirname)
    print(f"{spec.size} on {spec.tokens:,} tokens x {spec.epochs} epochs: "
          f"validation loss {result['final_val_loss']:.4f} nats/token")
    return 0
