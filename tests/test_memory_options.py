"""Memory and speed options of training: the chunked loss, activation checkpointing and
torch.compile must change memory or speed, never the numbers beyond float noise."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from pretrain import loss as loss_module
from pretrain.loss import SlicedLinearLoss, summed_cross_entropy
from pretrain.model import Block, build_model
from pretrain.spec import TrainSpec
from pretrain.train import train_run

QUIET = {"log": lambda _: None}


def _loss_and_grads(model, ids, **kw):
    model.zero_grad()
    loss = summed_cross_entropy(model, ids[:, :-1], ids[:, 1:], **kw)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.fixture
def model_and_ids(torch_one_thread):
    model = build_model("tiny-100k", 512, 64, seed=0).train()
    ids = torch.randint(0, 512, (4, 65), generator=torch.Generator().manual_seed(0))
    return model, ids


@pytest.fixture
def counted(monkeypatch):
    """Calls of the sliced loss and of every block's forward, counted."""
    counts = {"sliced": 0, "block": 0}
    sliced_apply, block_forward = SlicedLinearLoss.apply, Block.forward

    def apply(*args):
        counts["sliced"] += 1
        return sliced_apply(*args)

    def forward(self, *args, **kw):
        counts["block"] += 1
        return block_forward(self, *args, **kw)

    monkeypatch.setattr(SlicedLinearLoss, "apply", apply)
    monkeypatch.setattr(Block, "forward", forward)
    return counts


def test_the_sliced_loss_equals_the_plain_one_with_its_gradients(model_and_ids, counted):
    model, ids = model_and_ids
    plain, plain_grads = _loss_and_grads(model, ids)
    assert counted["sliced"] == 0
    # 4 x 64 tokens x 512 logits, in slices of 37 tokens (the last one shorter).
    sliced, sliced_grads = _loss_and_grads(model, ids, chunk_logits=37 * 512)
    assert counted["sliced"] == 1
    assert sliced.item() == pytest.approx(plain.item(), rel=1e-6)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(sliced_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_activation_checkpointing_recomputes_and_keeps_the_gradients(model_and_ids, counted):
    model, ids = model_and_ids
    plain, plain_grads = _loss_and_grads(model, ids)
    assert counted["block"] == 2  # tiny-100k has two blocks
    model.checkpoint_activations = True
    again, again_grads = _loss_and_grads(model, ids)
    assert counted["block"] == 2 + 4  # each block once forward, once more in backward
    assert again.item() == plain.item()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(again_grads[name], grad, rtol=0, atol=0, msg=name)
    with torch.no_grad():  # evaluation never recomputes
        model(ids[:, :-1])
    assert counted["block"] == 6 + 2


def _spec(store, **kw) -> TrainSpec:
    return TrainSpec(**{**dict(size="tiny-50k", store=str(store.path), store_id=store.store_id, tokens=8_192,
                               epochs=1, lr=3e-3, batch_size=8, seq_len=64, threads=1), **kw})


def test_memory_options_train_the_same_run(tmp_path, bible_store, monkeypatch, counted):
    plain = train_run(_spec(bible_store), tmp_path / "plain", **QUIET)
    assert counted["sliced"] == 0
    monkeypatch.setattr(loss_module, "CHUNK_LOGITS", 100 * 512)  # slices of 100 tokens
    spec = _spec(bible_store, activation_checkpointing=True)
    assert spec.run_id == _spec(bible_store).run_id  # operational: the same run
    saving = train_run(spec, tmp_path / "saving", **QUIET)
    assert counted["sliced"] == saving["steps"]  # every training micro-batch; validation makes no gradients
    assert saving["final_val_loss"] == pytest.approx(plain["final_val_loss"], abs=1e-5)
    a, b = load_file(tmp_path / "plain" / "model.safetensors"), load_file(tmp_path / "saving" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=2e-5, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("sliced", [False, True], ids=["plain-loss", "sliced-loss"])
def test_compiled_training_matches_eager(tmp_path, bible_store, monkeypatch, sliced):
    if sliced:
        monkeypatch.setattr(loss_module, "CHUNK_LOGITS", 100 * 512)
    eager = train_run(_spec(bible_store, tokens=4_096), tmp_path / "eager", **QUIET)
    compiled = train_run(_spec(bible_store, tokens=4_096, compile=True), tmp_path / "compiled", **QUIET)
    # Inductor fuses and reorders fp32 reductions: measured differences are ~1e-6.
    assert compiled["final_val_loss"] == pytest.approx(eager["final_val_loss"], abs=1e-4)
    for e, c in zip(eager["val_history"], compiled["val_history"], strict=True):
        assert c["val_loss"] == pytest.approx(e["val_loss"], abs=1e-4)
