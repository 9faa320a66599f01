"""Hugging Face Llama export and import, checked against transformers itself.

Export: a trained dcsl run loads with ``LlamaForCausalLM.from_pretrained`` and
``AutoTokenizer``, with the same logits. Import: random tiny transformers Llamas with
each feature a real base needs (tied embeddings, grouped-query attention, Llama-3 RoPE
scaling, their own rms eps and rope theta, sharded weights) give the same logits in dcsl.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import transformers  # a test dependency (the .[hf] extra), installed by the test command
from conftest import train_seeds

from eval.ensemble import run_ensemble
from eval.export import export_run
from eval.kinds import EnsembleEvalSpec
from pretrain.hf import load_hf_llama
from pretrain.hfconfig import base_id, shape_from_hf_config
from pretrain.load import open_run
from pretrain.rundir import RunDir
from pretrain.spec import TrainSpec
from pretrain.train import check_spec, train_run

TOLERANCE = 1e-4  # fp32 logits; measured differences are ~1e-6


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bible_store, torch_one_thread):
    return train_seeds(tmp_path_factory.mktemp("hf-runs"), bible_store, 2)


def hf_logits(path, ids: torch.Tensor) -> torch.Tensor:
    model = transformers.LlamaForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    with torch.no_grad():
        return model.eval()(ids).logits


def test_an_exported_run_loads_in_transformers_with_the_same_logits(runs, tmp_path):
    run = runs[0]
    out = export_run(run.path, tmp_path / "hf")[0]
    ids = torch.from_numpy(run.store.val_tokens()[:2 * 64].astype("int64")).view(2, 64)
    with torch.no_grad():
        ours = run.load_model()(ids)
    assert (hf_logits(out, ids) - ours).abs().max().item() < TOLERANCE

    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    text = "In the beginning God created the heaven and the earth."
    from pretrain.tokenizer import load_tokenizer
    assert tokenizer(text)["input_ids"] == load_tokenizer(run.store.path / "tokenizer.json").encode(text).ids
    assert tokenizer.eos_token_id == run.store.eos_id
    # And back: dcsl reads its own export, weight for weight.
    back = load_hf_llama(out, max_seq_len=64)
    for (name, a), b in zip(run.load_model().weights().items(), back.weights().values(), strict=True):
        assert torch.equal(a, b), name


def random_hf_llama(path, **config) -> None:
    base = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**base, **config}))
    with torch.no_grad():  # norms start at 1; make them matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(path, max_shard_size="40KB")


@pytest.mark.parametrize("config", [
    {},
    {"tie_word_embeddings": True},
    {"num_key_value_heads": 2},
    {"rms_norm_eps": 1e-6, "rope_theta": 500_000.0},
    {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500_000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
     "tie_word_embeddings": True, "num_key_value_heads": 1},
], ids=["plain", "tied", "gqa", "eps-theta", "llama3-rope"])
def test_a_transformers_llama_imports_with_the_same_logits(config, tmp_path):
    random_hf_llama(tmp_path, **config)
    assert len(list(tmp_path.glob("*.safetensors"))) > 1, "the checkpoint should be sharded"
    ids = torch.randint(0, 97, (2, 100), generator=torch.Generator().manual_seed(1))
    ours = load_hf_llama(tmp_path)
    with torch.no_grad():
        diff = (ours(ids) - hf_logits(tmp_path, ids)).abs().max().item()
    assert diff < TOLERANCE
    n_hf = sum(p.numel() for p in transformers.LlamaForCausalLM.from_pretrained(tmp_path).parameters())
    assert sum(p.numel() for p in ours.parameters()) == n_hf


def test_a_legacy_rope_scaling_config_reads_like_the_new_one():
    legacy = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1, "intermediate_size": 8,
              "vocab_size": 10, "rope_theta": 500000.0, "max_position_embeddings": 64,
              "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    shape = shape_from_hf_config(legacy)
    assert shape.rope_theta == 500000.0 and shape.rope_scaling.factor == 32.0
    assert shape.rope_scaling.original_max_position_embeddings == 8192


@pytest.mark.parametrize("field, value, message", [
    ("model_type", "mistral", "is not a Llama"),
    ("attention_bias", True, "attention_bias=True is not supported"),
    ("hidden_act", "gelu", "hidden_act='gelu' is not supported"),
    ("rope_scaling", {"rope_type": "yarn", "factor": 2.0}, "rope_type 'yarn' is not supported"),
    ("head_dim", 32, "head_dim 32"),
])
def test_unsupported_configs_are_one_line_errors(field, value, message):
    config = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1, "intermediate_size": 8,
              "vocab_size": 10, field: value}
    with pytest.raises(ValueError, match=message):
        shape_from_hf_config(config)


def test_an_ensemble_exports_as_members_or_as_one_soup(runs, bible_store, tmp_path):
    spec = EnsembleEvalSpec(size=runs[0].spec.size, member_ids=tuple(r.run_id for r in runs),
                            member_dirs=tuple(str(r.path) for r in runs), store=str(bible_store.path),
                            store_id=bible_store.store_id, seq_len=64)
    ensemble_dir = tmp_path / "ensemble"
    run_ensemble(spec, ensemble_dir, log=lambda _: None)

    members = export_run(ensemble_dir, tmp_path / "members")
    assert [m.name for m in members] == ["member-0", "member-1"]
    soup_dir = tmp_path / "soup"
    subprocess.run([sys.executable, "-m", "dcsl_cli", "export", str(ensemble_dir), str(soup_dir), "--soup"],
                   check=True, capture_output=True)
    soup = load_hf_llama(soup_dir)
    for name, w in soup.weights().items():
        mean = (runs[0].load_model().weights()[name] + runs[1].load_model().weights()[name]) / 2
        assert torch.allclose(w, mean, atol=1e-7), name
    assert [m["run_id"] for m in json.loads((soup_dir / "soup.json").read_text())["members"]] == \
        [r.run_id for r in runs]


def test_export_refuses_a_non_empty_folder_and_a_soup_of_one_run(runs, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        export_run(runs[0].path, tmp_path / "taken")
    with pytest.raises(ValueError, match="--soup needs an ensemble run"):
        export_run(runs[0].path, tmp_path / "new", soup=True)
    assert open_run(runs[0].path).run_id == runs[0].run_id


def continued_spec(base, store, **kw) -> TrainSpec:
    values = dict(size=base.name, store=str(store.path), store_id=store.store_id, tokens=4_096, epochs=1,
                  lr=1e-3, batch_size=8, seq_len=64, init_from=str(base), init_id=base_id(base))
    return TrainSpec(**{**values, **kw})


def test_a_run_continues_from_an_exported_base(runs, bible_store, tmp_path):
    base = export_run(runs[0].path, tmp_path / "base")[0]
    # An lr too small to move the weights: the run's validation loss is the base's own.
    spec = continued_spec(base, bible_store, lr=1e-7)
    result = train_run(spec, tmp_path / "cpt", log=lambda _: None)
    base_loss = RunDir(runs[0].path).result()["final_val_loss"]
    assert result["final_val_loss"] == pytest.approx(base_loss, abs=1e-3)
    assert open_run(tmp_path / "cpt").load_model().shape == replace(runs[0].load_model().shape, name=base.name)
    # Seeds of the init mean nothing when a base is the init: one run.
    assert continued_spec(base, bible_store, lr=1e-7, init_seed=3).run_id == spec.run_id
    # A changed base is another run, and a run made from the old one refuses to train on it;
    # the finished run keeps the shape it trained with.
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-6}))
    assert open_run(tmp_path / "cpt").shape.norm_eps == config["rms_norm_eps"]
    assert continued_spec(base, bible_store, lr=1e-7).run_id != spec.run_id
    with pytest.raises(ValueError, match="the base changed"):
        train_run(continued_spec(base, bible_store, lr=2e-7, init_id=spec.init_id), tmp_path / "stale",
                  log=lambda _: None)


def test_a_tied_base_trains_saves_and_exports(bible_store, tmp_path):
    random_hf_llama(tmp_path / "tied", vocab_size=bible_store.vocab_size, tie_word_embeddings=True,
                    num_key_value_heads=2)
    spec = continued_spec(tmp_path / "tied", bible_store, lr=1e-3)
    train_run(spec, tmp_path / "run", log=lambda _: None)
    model = open_run(tmp_path / "run").load_model()
    assert model.head.weight is model.embed.weight
    decayed = model.decay_groups(0.1)[0]["params"]
    assert any(p is model.head.weight for p in decayed)  # the tied matrix is decayed as the head
    out = export_run(tmp_path / "run", tmp_path / "again")[0]
    ids = torch.from_numpy(bible_store.val_tokens()[:64].astype("int64"))[None]
    with torch.no_grad():
        assert (hf_logits(out, ids) - model(ids)).abs().max().item() < TOLERANCE


def test_a_base_is_checked_before_a_run_directory_exists(runs, bible_store, tmp_path):
    random_hf_llama(tmp_path / "small-vocab", vocab_size=97)
    with pytest.raises(ValueError, match="more than the 97 of base"):
        check_spec(continued_spec(tmp_path / "small-vocab", bible_store))
    base = export_run(runs[0].path, tmp_path / "base")[0]
    (base / "tokenizer.json").write_text((base / "tokenizer.json").read_text().replace('"<|endoftext|>"', '"<|x|>"'))
    with pytest.raises(ValueError, match="not tokenized with the tokenizer of base"):
        check_spec(continued_spec(base, bible_store))
    for args, message in ((["--size", "tiny-50k", "--init-from", str(base)], "exclude each other"),
                          ([], "--size is required")):
        done = subprocess.run([sys.executable, "-m", "dcsl_cli", "train", "--store", str(bible_store.path),
                               "--tokens", "4096", "--root", str(tmp_path / "runs"), *args],
                              capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "runs").exists()
