"""Shared fixtures: a tiny real token store (the embedded Bible, small BPE vocab)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretrain.corpus import CorpusSource
from pretrain.store import PrepareConfig, TokenStore, prepare_store

TINY_VOCAB = 512


@pytest.fixture(scope="session")
def bible_store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    """60k training and 8k validation tokens of the King James Bible, vocab 512."""
    out = tmp_path_factory.mktemp("stores") / "bible"
    prepare_store(
        PrepareConfig(source=CorpusSource(kind="bible"), out=str(out), vocab_size=TINY_VOCAB,
                      val_tokens=8_000, max_train_tokens=60_000, tokenizer_docs=300),
        log=lambda _: None,
    )
    return TokenStore(out)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Torch on one thread for a module: tiny models run fastest so, and two OpenMP
    threads on a shared, busy CPU were seen to run 10-100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_seeds(root: Path, store: TokenStore, seeds: int) -> list:
    """Tiny finished runs of one recipe, seeds 0..seeds-1 (init and data order), opened."""
    from pretrain.load import open_run
    from pretrain.spec import TrainSpec
    from pretrain.train import train_run

    runs = []
    for k in range(seeds):
        spec = TrainSpec(size="tiny-50k", store=str(store.path), store_id=store.store_id,
                         tokens=8_192, epochs=1, lr=1e-2, batch_size=8, seq_len=64, init_seed=k, data_seed=k)
        train_run(spec, root / spec.dirname, log=lambda _: None)
        runs.append(open_run(root / spec.dirname))
    return runs


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# The real single-node Slurm cluster (installed and started by the tests themselves).
from slurm_cluster import slurm_cluster  # noqa: E402, F401
