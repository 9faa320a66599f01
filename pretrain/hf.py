"""Hugging Face Llama checkpoints: dcsl's model to and from transformers' layout.

dcsl's ``Llama`` is transformers' ``LlamaForCausalLM`` with two matrices fused:

- ``attn.kv`` is ``k_proj`` stacked over ``v_proj`` (rows);
- ``mlp.gate_up`` is ``gate_proj`` stacked over ``up_proj``.

Both use the rotate-half RoPE convention, so q and k rows need no permutation. Every
other weight is a rename. This module reads and writes ``config.json`` and safetensors
files itself; transformers is needed only to check the result (the tests do).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pretrain.model import Llama
from pretrain.rundir import atomic_write_json
from pretrain.sizes import Llama3RopeScaling, ModelShape
from pretrain.tokenizer import load_tokenizer

RENAMED_TOP = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "head.weight": "lm_head.weight",
}
RENAMED_LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.q.weight": "self_attn.q_proj.weight",
    "attn.o.weight": "self_attn.o_proj.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}
FUSED_LAYER = {
    "attn.kv.weight": ("self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "mlp.gate_up.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
}
SUPPORTED_ROPE = ("default", "llama3")


def to_hf_weights(weights: dict[str, torch.Tensor], shape: ModelShape) -> dict[str, torch.Tensor]:
    """dcsl's weights (``Llama.weights()``) under transformers' names; a tied head is left
    out, as transformers saves it."""
    out = {RENAMED_TOP[k]: v for k, v in weights.items() if k in RENAMED_TOP}
    for i in range(shape.n_layers):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        for name, hf_name in RENAMED_LAYER.items():
            out[theirs + hf_name] = weights[ours + name]
        for name, (first, second) in FUSED_LAYER.items():
            a, b = weights[ours + name].chunk(2, dim=0)
            out[theirs + first], out[theirs + second] = a.contiguous(), b.contiguous()
    if shape.tie_embeddings:
        out.pop("lm_head.weight", None)
    return out


def from_hf_weights(weights: dict[str, torch.Tensor], shape: ModelShape) -> dict[str, torch.Tensor]:
    """transformers' weights under dcsl's names, ready for ``Llama.load_weights``."""
    wanted = {v: k for k, v in RENAMED_TOP.items()}
    if shape.tie_embeddings:
        wanted.pop("lm_head.weight")
    out = {}
    for hf_name, name in wanted.items():
        out[name] = _take(weights, hf_name)
    for i in range(shape.n_layers):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        for name, hf_name in RENAMED_LAYER.items():
            out[ours + name] = _take(weights, theirs + hf_name)
        for name, (first, second) in FUSED_LAYER.items():
            out[ours + name] = torch.cat([_take(weights, theirs + first), _take(weights, theirs + second)])
    # Rotary caches some exporters keep are derived, not learned.
    left = [k for k in weights if k not in _hf_names(shape) and not k.endswith("rotary_emb.inv_freq")]
    if left:
        raise ValueError(f"unexpected weights for a Llama: {', '.join(sorted(left)[:3])}")
    return out


def _take(weights: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in weights:
        raise ValueError(f"the checkpoint has no weight {name!r}")
    return weights[name]


def _hf_names(shape: ModelShape) -> set[str]:
    names = set(RENAMED_TOP.values())
    for i in range(shape.n_layers):
        names |= {f"model.layers.{i}.{n}" for n in RENAMED_LAYER.values()}
        names |= {f"model.layers.{i}.{n}" for pair in FUSED_LAYER.values() for n in pair}
    return names


def hf_config(shape: ModelShape, max_seq_len: int, eos_id: int, bos_id: int | None = None) -> dict[str, Any]:
    """A ``LlamaForCausalLM`` config.json for ``shape``.

    The rope fields are written both ways: ``rope_theta``/``rope_scaling`` (transformers 4)
    and ``rope_parameters`` (transformers 5), so either release reads them.
    """
    scaling = None
    if shape.rope_scaling is not None:
        scaling = {"rope_type": "llama3", **vars(shape.rope_scaling)}
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.d_model,
        "intermediate_size": shape.d_mlp,
        "num_hidden_layers": shape.n_layers,
        "num_attention_heads": shape.n_heads,
        "num_key_value_heads": shape.n_kv_heads,
        "head_dim": shape.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": max_seq_len,
        "rms_norm_eps": shape.norm_eps,
        "rope_theta": shape.rope_theta,
        "rope_scaling": scaling,
        "rope_parameters": {"rope_type": "default", "rope_theta": shape.rope_theta} if scaling is None
        else {**scaling, "rope_theta": shape.rope_theta},
        "tie_word_embeddings": shape.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def shape_from_hf_config(config: dict[str, Any], name: str = "hf") -> ModelShape:
    """The ``ModelShape`` of a Hugging Face Llama config; one-line errors naming the field
    for anything dcsl's model does not implement."""
    def need(key: str) -> Any:
        if key not in config:
            raise ValueError(f"{name}: config.json has no {key!r}")
        return config[key]

    if config.get("model_type", "llama") != "llama":
        raise ValueError(f"{name}: model_type {config['model_type']!r} is not a Llama")
    for key, ok in (("attention_bias", False), ("mlp_bias", False), ("hidden_act", "silu")):
        if config.get(key, ok) != ok:
            raise ValueError(f"{name}: {key}={config[key]!r} is not supported (dcsl's Llama has {key}={ok!r})")
    d, heads = int(need("hidden_size")), int(need("num_attention_heads"))
    if config.get("head_dim") not in (None, d // heads):
        raise ValueError(f"{name}: head_dim {config['head_dim']} != hidden_size / num_attention_heads")
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    theta = float(rope.get("rope_theta", config.get("rope_theta", 10_000.0)))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE:
        raise ValueError(f"{name}: rope_type {rope_type!r} is not supported ({' or '.join(SUPPORTED_ROPE)})")
    scaling = None
    if rope_type == "llama3":
        scaling = Llama3RopeScaling(
            factor=float(rope["factor"]), low_freq_factor=float(rope["low_freq_factor"]),
            high_freq_factor=float(rope["high_freq_factor"]),
            original_max_position_embeddings=int(rope.get("original_max_position_embeddings",
                                                          need("max_position_embeddings"))))
    return ModelShape(
        name=name, d_model=d, n_layers=int(need("num_hidden_layers")), n_heads=heads,
        n_kv_heads=int(config.get("num_key_value_heads") or heads), d_mlp=int(need("intermediate_size")),
        vocab_size=int(need("vocab_size")), rope_theta=theta, norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)), rope_scaling=scaling)


def weight_files(directory: str | Path) -> list[Path]:
    """The safetensors files of a HF checkpoint: one file, or the shards its index names."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / s for s in shards]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{directory} has no model.safetensors or model.safetensors.index.json")


def load_hf_llama(directory: str | Path, max_seq_len: int | None = None) -> Llama:
    """A Hugging Face Llama directory as dcsl's model (fp32, eval mode)."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json")
    config = json.loads(config_path.read_text())
    shape = shape_from_hf_config(config, name=directory.name)
    weights: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        weights.update(load_file(path, device="cpu"))
    model = Llama(shape, max_seq_len=max_seq_len or int(config.get("max_position_embeddings", 4096)))
    model.load_weights({k: v.float() for k, v in from_hf_weights(weights, shape).items()})
    return model.eval()


def save_hf_llama(model: Llama, out: str | Path, tokenizer_file: str | Path, eos_id: int,
                  max_seq_len: int) -> Path:
    """Write ``model`` and its tokenizer as a Hugging Face Llama directory that
    ``LlamaForCausalLM.from_pretrained`` and ``AutoTokenizer`` load."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shape = model.shape
    save_file(to_hf_weights(model.weights(), shape), str(out / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_json(out / "config.json", hf_config(shape, max_seq_len, eos_id))
    atomic_write_json(out / "generation_config.json", {"eos_token_id": eos_id, "do_sample": False})
    shutil.copyfile(tokenizer_file, out / "tokenizer.json")
    eos_token = load_tokenizer(tokenizer_file).id_to_token(eos_id)
    atomic_write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": eos_token,
        "model_max_length": max_seq_len,
        "clean_up_tokenization_spaces": False,
    })
    atomic_write_json(out / "special_tokens_map.json", {"eos_token": eos_token})
    return out
