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


def custom_study(tmp_path, store, shape="d_model: 32, n_layers: 1, n_heads: 4, n_kv_heads: 4, d_mlp: 64"):
    import textwrap

    from sweeps.study.study import load_study

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: custom
        data: {{store: {store.path}}}
        budgets: [600]
        sizes: [{{name: my-tiny, {shape}}}]
        training: {{batch_size: 2, seq_len: 32, threads: 1}}
        lattice: {{epochs: [1], lr: [1.0e-2], weight_decay: [0.1]}}
        recipes:
          standard: {{weight_decay: 0.1, search: grid}}
        executor: {{kind: debug}}
        """))
    return load_study(path, root=tmp_path / "root")


def test_a_study_with_a_custom_size_plans_and_trains_it(tmp_path, bible_store, capsys):
    from dcsl_cli import main as dcsl
    from pretrain.load import open_run
    from sweeps.collect import collect
    from sweeps.execution.launcher import launch
    from sweeps.planning import train_spec
    from sweeps.study import shape_of

    study = custom_study(tmp_path, bible_store)
    vocab = bible_store.vocab_size
    expected = custom_shape("my-tiny", TINY, vocab)
    assert study.sizes == ("my-tiny",) and shape_of(study, "my-tiny", vocab) == expected
    # Another study's my-tiny of another shape shares no run with this one.
    point = (("epochs", 1), ("lr", 1e-2), ("weight_decay", 0.1))
    wider = custom_study(tmp_path / "other", bible_store, "d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 4, d_mlp: 64")
    assert (train_spec(study, "id", 600, "my-tiny", point).run_id
            != train_spec(wider, "id", 600, "my-tiny", point).run_id)

    with pytest.raises(SystemExit) as done:
        dcsl(["sweep", "plan", str(study.path), "--root", str(study.root), "--no-probe", "--sims", "0"])
    out = capsys.readouterr().out
    total, non_embedding = param_counts(expected)
    assert done.value.code == 0
    assert f"my-tiny  {total:,}         {non_embedding:,}" in out, out
    assert "custom size my-tiny: d_model 32, n_layers 1, n_heads 4, n_kv_heads 4, d_mlp 64" in out

    report = launch(study, log=lambda _: None)
    assert report.launched == 1 and report.succeeded == 1 and not report.failed
    table, _, _ = collect(study)
    row = table[table.status == "succeeded"].iloc[0]
    assert row["size"] == "my-tiny" and (row["n_params"], row["n_params_non_embedding"]) == (total, non_embedding)
    run = open_run(row["run_dir"])
    assert run.shape == expected and run.load_model().shape == expected  # eval, export, distill read this
