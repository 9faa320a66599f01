"""Hugging Face Llama configs and checkpoint files, without torch (planners read them).

``shape_from_hf_config`` turns a base's ``config.json`` into dcsl's ``ModelShape``, and
refuses in one line whatever dcsl's model does not implement; ``hf_config`` writes one.
``base_id`` is the content id of a base: a changed config or weight file is another base,
so runs continued from it get other ids.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from pretrain.sizes import Llama3RopeScaling, ModelShape
from pretrain.tokenizer import sha256_file
from pretrain.weights import read_json_file

SUPPORTED_ROPE = ("default", "llama3")


def hf_config(shape: ModelShape, max_seq_len: int, eos_id: int | None,
              bos_id: int | None = None) -> dict[str, Any]:
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
        index_json = read_json_file(index, "the weight index", "download or copy the model again")
        if not isinstance(index_json, dict) or not isinstance(index_json.get("weight_map"), dict):
            raise ValueError(f"{index} has no weight_map: it is not a safetensors index")
        shards = sorted(set(index_json["weight_map"].values()))
        return [directory / s for s in shards]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{directory} has no model.safetensors or model.safetensors.index.json")


def read_hf_config(directory: str | Path) -> dict[str, Any]:
    """A model directory's config.json, or a one-line error saying it is not one."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json (not a Hugging Face model directory)")
    config = read_json_file(path, "config.json", "download or copy the model again")
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a JSON object: not a Hugging Face model config")
    return config


def base_id(directory: str | Path) -> str:
    """Content id of a Hugging Face Llama directory: its config.json and weight files.

    Hashing a 3B base reads 6 GB, so the id is remembered for as long as every file keeps
    its size and modification time (within one process: the CLI, then the training run).
    """
    directory = Path(directory)
    read_hf_config(directory)
    files = [directory / "config.json", *weight_files(directory)]
    return _hashed_id(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=16)
def _hashed_id(files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256(sha256_file(files[0][0]).encode())
    for path, _, _ in files[1:]:
        h.update(f"{Path(path).name}:{sha256_file(path)}".encode())
    return h.hexdigest()[:16]
