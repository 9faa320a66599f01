"""Hugging Face Llama checkpoints: dcsl's model to and from transformers' layout.

dcsl's ``Llama`` is transformers' ``LlamaForCausalLM`` with two matrices fused:

- ``attn.kv`` is ``k_proj`` stacked over ``v_proj`` (rows);
- ``mlp.gate_up`` is ``gate_proj`` stacked over ``up_proj``.

Both use the rotate-half RoPE convention, so q and k rows need no permutation. Every
other weight is a rename. This module reads and writes ``config.json`` and safetensors
files itself; transformers is needed only to check the result (the tests do).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from pretrain.hfconfig import hf_config, read_hf_config, shape_from_hf_config, weight_files
from pretrain.model import Llama
from pretrain.rundir import atomic_write_json
from pretrain.sizes import ModelShape
from pretrain.tokenizer import load_tokenizer
from pretrain.weights import load_into, read_weights

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
    known = _hf_names(shape)
    for hf_name, name in wanted.items():
        out[name] = _take(weights, hf_name)
    for i in range(shape.n_layers):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        for name, hf_name in RENAMED_LAYER.items():
            out[ours + name] = _take(weights, theirs + hf_name)
        for name, (first, second) in FUSED_LAYER.items():
            out[ours + name] = torch.cat([_take(weights, theirs + first), _take(weights, theirs + second)])
    # Rotary caches some exporters keep are derived, not learned.
    left = [k for k in weights if k not in known and not k.endswith("rotary_emb.inv_freq")]
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


def load_hf_llama(directory: str | Path, max_seq_len: int | None = None) -> Llama:
    """A Hugging Face Llama directory as dcsl's model (fp32, eval mode)."""
    directory = Path(directory)
    config = read_hf_config(directory)
    shape = shape_from_hf_config(config, name=directory.name)
    weights: dict[str, torch.Tensor] = {}
    files = weight_files(directory)
    for path in files:
        weights.update(read_weights(path, "download or copy the model again"))
    model = Llama(shape, max_seq_len=max_seq_len or int(config.get("max_position_embeddings", 4096)))
    where = files[0] if len(files) == 1 else directory
    try:
        renamed = from_hf_weights(weights, shape)
    except ValueError as e:  # a weight missing, or one no Llama has
        raise ValueError(f"{where}: {e}, for the Llama that {directory / 'config.json'} describes") from None
    load_into(model, {k: v.float() for k, v in renamed.items()}, where,
              f"the Llama that {directory / 'config.json'} describes")
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
