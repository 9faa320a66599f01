"""Run ids are how finished work is found again: a new spec field must not move them.

The ids below were computed before the fields added since (init_from, init_id,
activation_checkpointing, the uniform-soup rule); a change that moves them would make
every existing study retrain from nothing.
"""

from __future__ import annotations

from eval.kinds import EnsembleEvalSpec
from pretrain.spec import TrainSpec


def test_train_and_ensemble_ids_are_pinned() -> None:
    train = TrainSpec(size="tiny-50k", store="x", store_id="abc", tokens=1000)
    assert train.run_id == "5e7a4e259b"
    ensemble = EnsembleEvalSpec(size="tiny-50k", member_ids=("a", "b"), member_dirs=("x", "y"), store="s",
                                store_id="abc", seq_len=64)
    assert ensemble.run_id == "f8a9a194e5"


def test_new_fields_at_their_defaults_stay_out_of_the_id() -> None:
    train = TrainSpec(size="tiny-50k", store="x", store_id="abc", tokens=1000)
    assert "init_id" not in train.semantic() and "init_from" not in train.semantic()
    same = TrainSpec(size="tiny-50k", store="elsewhere", store_id="abc", tokens=1000, activation_checkpointing=True)
    assert same.run_id == train.run_id
    base = TrainSpec(size="llama", store="x", store_id="abc", tokens=1000, init_from="/b", init_id="00ff")
    assert base.semantic()["init_id"] == "00ff" and base.run_id != train.run_id
