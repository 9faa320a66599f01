"""Model sizes, parameter counts and FLOPs: torch-free, so planners can import them.

The paper's four sizes (counts with vocab 128,256 are tested against docs/paper.md) and a
ladder of tiny sizes for CPU studies, named by their non-embedding parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Llama3RopeScaling:
    """Llama 3.1's long-context RoPE rescaling (``rope_type: llama3`` in a HF config)."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclass(frozen=True)
class ModelShape:
    """The architecture of one model size; the vocabulary comes from the token store.

    The last three fields are what imported bases (Llama 3.x) need; dcsl's own sizes keep
    their defaults.
    """

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_mlp: int
    vocab_size: int = 128_256
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    """The output head is the input embedding (Llama 3.2 1B and 3B)."""
    rope_scaling: Llama3RopeScaling | None = None

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def with_vocab(self, vocab_size: int) -> ModelShape:
        return replace(self, vocab_size=vocab_size)


def _shape(name: str, d: int, layers: int, heads: int, kv: int, mlp: int) -> ModelShape:
    return ModelShape(name, d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=kv, d_mlp=mlp)


# The paper's four sizes (parameter counts with vocab 128,256 are in docs/paper.md and tested),
# then a ladder of tiny sizes for CPU studies, named by their non-embedding parameters.
SIZES: dict[str, ModelShape] = {
    s.name: s
    for s in [
        _shape("150m", 512, 6, 8, 8, 1792),
        _shape("300m", 768, 12, 12, 12, 2688),
        _shape("600m", 1024, 24, 16, 8, 3584),
        _shape("1.4b", 2048, 16, 16, 8, 7168),
        _shape("tiny-16k", 32, 1, 4, 4, 112),
        _shape("tiny-50k", 64, 1, 4, 4, 224),
        _shape("tiny-100k", 64, 2, 4, 4, 224),
        _shape("tiny-200k", 96, 2, 4, 4, 336),
        _shape("tiny-400k", 128, 2, 4, 4, 448),
        _shape("tiny-800k", 128, 4, 4, 4, 448),
        _shape("tiny-1.6m", 192, 4, 6, 6, 672),
        _shape("tiny-3m", 256, 4, 8, 8, 896),
        _shape("tiny-5m", 256, 6, 8, 8, 896),
    ]
}


def get_shape(size: str, vocab_size: int) -> ModelShape:
    """The registered shape ``size`` with the store's vocabulary; a clear error if unknown."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; known sizes: {', '.join(SIZES)}")
    return SIZES[size].with_vocab(vocab_size)


# A custom size (a study's ``sizes:`` mapping, a spec's ``custom_sizes``) declares these fields of
# ModelShape by their own names; the optional ones default as for dcsl's own sizes.
SHAPE_FIELDS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_mlp")
OPTIONAL_SHAPE_FIELDS = ("rope_theta", "norm_eps", "tie_embeddings")


def custom_shape(name: str, values: Mapping[str, object], vocab_size: int = 0) -> ModelShape:
    """The shape a custom size declares, checked; a ValueError naming the first field that is
    missing, unknown or wrong (the message starts with the field's name)."""
    known = (*SHAPE_FIELDS, *OPTIONAL_SHAPE_FIELDS)
    for key in values:
        if key not in known:
            raise ValueError(f"{key}: unknown shape field; known: {', '.join(known)}")
    for key in SHAPE_FIELDS:
        if key not in values:
            raise ValueError(f"{key} is required (a custom size declares {', '.join(SHAPE_FIELDS)})")
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    for key in ("rope_theta", "norm_eps"):
        v = values.get(key, 1.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{key} must be a positive number, got {v!r}")
    if not isinstance(values.get("tie_embeddings", False), bool):
        raise ValueError(f"tie_embeddings must be true or false, got {values['tie_embeddings']!r}")
    d, heads, kv = values["d_model"], values["n_heads"], values["n_kv_heads"]
    if d % heads:
        raise ValueError(f"n_heads {heads} must divide d_model {d}")
    if heads % kv:
        raise ValueError(f"n_kv_heads {kv} must divide n_heads {heads} (grouped-query attention)")
    if (d // heads) % 2:
        raise ValueError(f"n_heads {heads} gives a head dimension of {d // heads}: rotary embeddings "
                         "need an even one (d_model / n_heads)")
    given = {k: values[k] for k in known if k in values}
    for key in ("rope_theta", "norm_eps"):  # 1e4 and 10000 are one shape, and one run id
        if key in given:
            given[key] = float(given[key])
    return ModelShape(name, vocab_size=vocab_size, **given)


def shape_fields(shape: ModelShape) -> dict[str, object]:
    """What a custom size's shape declares: the required fields, and the optional ones that
    differ from their defaults (so equal shapes write equal mappings, and equal run ids)."""
    defaults = {f.name: f.default for f in fields(ModelShape)}
    out: dict[str, object] = {k: getattr(shape, k) for k in SHAPE_FIELDS}
    out.update({k: getattr(shape, k) for k in OPTIONAL_SHAPE_FIELDS if getattr(shape, k) != defaults[k]})
    return out


def param_counts(shape: ModelShape) -> tuple[int, int]:
    """(total, non-embedding) parameter counts; the output head counts as non-embedding.

    A tied head is counted once in the total, and still as non-embedding: it is the output
    projection's compute, which is what scaling laws and FLOPs count.
    """
    d, f, kv_dim = shape.d_model, shape.d_mlp, shape.n_kv_heads * shape.head_dim
    per_layer = d * d + 2 * d * kv_dim + d * d + 3 * d * f + 2 * d  # q, k+v, o, mlp, 2 norms
    body = shape.n_layers * per_layer + d  # final norm
    head = shape.vocab_size * d
    embedding = shape.vocab_size * d
    return embedding + body + (0 if shape.tie_embeddings else head), body + head


def flops_per_token(shape: ModelShape, seq_len: int) -> float:
    """Training FLOPs per token: 6 x (matmul params) plus the attention score/value matmuls.

    The input embedding is a lookup and costs nothing; causal masking is ignored, as in
    Kaplan et al. (2020), so this slightly overstates attention work.
    """
    _, non_embedding = param_counts(shape)
    attention = 2 * shape.n_layers * seq_len * shape.d_model  # QK^T and AV, forward
    return 6.0 * non_embedding + 3.0 * attention


def mfu(tokens_per_s: float, shape: ModelShape, seq_len: int, peak_flops: float) -> float:
    """Model FLOP utilisation: achieved training FLOP/s over the hardware peak."""
    if peak_flops <= 0 or not math.isfinite(peak_flops):
        return float("nan")
    return tokens_per_s * flops_per_token(shape, seq_len) / peak_flops
