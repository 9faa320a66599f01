"""Custom model shapes: declared in a training spec (and a study's ``sizes:``), they join the
run id, and reach everything that builds or costs a model."""

import pytest

from pretrain.sizes import SIZES, custom_shape, param_counts
from pretrain.spec import TrainSpec

TINY = {"d_model": 32, "n_layers": 1, "n_heads": 4, "n_kv_heads": 4, "d_mlp": 64}


def spec(size="my-tiny", shapes=None, **kw):
    return TrainSpec(size=size, store="s", store_id="id", tokens=600, custom_sizes=shapes, **kw)


def test_a_custom_shape_is_checked_field_by_field():
    shape = custom_shape("c", TINY, vocab_size=300)
    assert (shape.d_model, shape.n_layers, shape.head_dim, shape.vocab_size) == (32, 1, 8, 300)
    for change, words in [({"n_heads": 3}, "n_heads 3 must divide d_model 32"),
                          ({"n_kv_heads": 3}, "n_kv_heads 3 must divide n_heads 4"),
                          ({"d_model": 36}, "even"), ({"n_layers": 0}, "n_layers must be a positive integer"),
                          ({"d_mlp": 2.5}, "d_mlp must be a positive integer"),
                          ({"layers": 2}, "layers: unknown shape field"),
                          ({"rope_theta": -1.0}, "rope_theta must be a positive number")]:
        with pytest.raises(ValueError, match=words):
            custom_shape("c", {**TINY, **change})
    with pytest.raises(ValueError, match="d_mlp is required"):
        custom_shape("c", {k: v for k, v in TINY.items() if k != "d_mlp"})
    # 1e4 and 10000 are one shape.
    assert custom_shape("c", {**TINY, "rope_theta": 10000}) == custom_shape("c", {**TINY, "rope_theta": 1e4})


def test_the_shape_joins_the_run_id_and_registered_sizes_keep_theirs():
    a = spec(shapes={"my-tiny": TINY})
    b = spec(shapes={"my-tiny": {**TINY, "d_mlp": 128}})
    assert a.run_id != b.run_id and a.shape(300) == custom_shape("my-tiny", TINY, 300)
    # A study hands every spec all of its custom sizes; each keeps its own (and a registered
    # size none), so adding a custom size to a study moves no other run.
    registered = spec("tiny-50k")
    assert spec("tiny-50k", {"my-tiny": TINY}).run_id == registered.run_id
    assert spec("my-tiny", {"my-tiny": TINY, "other": TINY}).custom_sizes == {"my-tiny": TINY}
    # A registered size declared again with its own shape is that size; with another, an error.
    fields = {k: getattr(SIZES["tiny-50k"], k) for k in TINY}
    assert spec("tiny-50k", {"tiny-50k": fields}).run_id == registered.run_id
    with pytest.raises(ValueError, match="registered size with another shape"):
        spec("tiny-50k", {"tiny-50k": TINY})
    with pytest.raises(ValueError, match="unknown model size 'my-tiny'"):
        spec()
    with pytest.raises(ValueError, match="custom size 'my-tiny': n_heads 3 must divide"):
        spec(shapes={"my-tiny": {**TINY, "n_heads": 3}})
    # spec.json carries the shape: the worker builds the same model from it.
    again = TrainSpec.from_json(a.to_json())
    assert again == a and again.run_id == a.run_id
    assert param_counts(again.shape(300)) == param_counts(custom_shape("x", TINY, 300))
