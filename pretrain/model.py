"""A Llama-style decoder, small enough to read in one sitting.

RMSNorm, rotary position embeddings, grouped-query attention through
``scaled_dot_product_attention``, a SwiGLU MLP, no biases, untied input and output
embeddings (tied for imported bases that tie them), init std 0.02. The shapes of every
model dcsl trains live in ``SIZES``; ``pretrain.hf`` maps them to and from Hugging Face.

``forward`` optionally takes a ``KVCache`` so that sampling (distillation teachers)
reuses past keys and values instead of recomputing the whole prefix every token, or
explicit ``positions`` and an attention ``mask`` so that several sequences sharing a
prefix are packed into one row (downstream scoring computes each context once).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pretrain.sizes import Llama3RopeScaling, ModelShape, get_shape


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 so bf16 autocast does not lose the small-variance tail.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def llama3_inv_freq(inv_freq: torch.Tensor, scaling: Llama3RopeScaling) -> torch.Tensor:
    """Llama 3.1's rescaling: long wavelengths slowed by ``factor``, short ones kept, and a
    smooth blend between the two bands (Meta's reference ``apply_scaling``)."""
    wavelen = 2 * math.pi / inv_freq
    low_wavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor
    high_wavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor
    smooth = (scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor)
    blended = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
    out = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    return torch.where((wavelen >= high_wavelen) & (wavelen <= low_wavelen), blended, out)


def rope_tables(head_dim: int, max_len: int, theta: float,
                scaling: Llama3RopeScaling | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    if scaling is not None:
        inv_freq = llama3_inv_freq(inv_freq, scaling)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of each head; x is (B, H, T, D)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class KVCache:
    """Past keys and values of every layer, preallocated for ``max_len`` positions."""

    def __init__(self, model: Llama, batch: int, max_len: int) -> None:
        s = model.shape
        p = next(model.parameters())
        size = (batch, s.n_kv_heads, max_len, s.head_dim)
        self.keys = [torch.zeros(size, dtype=p.dtype, device=p.device) for _ in range(s.n_layers)]
        self.values = [torch.zeros(size, dtype=p.dtype, device=p.device) for _ in range(s.n_layers)]
        self.length = 0
        self.max_len = max_len


class Attention(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = shape.n_heads, shape.n_kv_heads, shape.head_dim
        self.q = nn.Linear(shape.d_model, shape.n_heads * shape.head_dim, bias=False)
        self.kv = nn.Linear(shape.d_model, 2 * shape.n_kv_heads * shape.head_dim, bias=False)
        self.o = nn.Linear(shape.n_heads * shape.head_dim, shape.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, self.n_kv, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        causal = True
        if cache is not None:
            start = cache.length
            cache.keys[layer][:b, :, start : start + t] = k
            cache.values[layer][:b, :, start : start + t] = v
            k = cache.keys[layer][:b, :, : start + t]
            v = cache.values[layer][:b, :, : start + t]
            # A single new token may attend to every cached position; a prefix of several
            # tokens on an empty cache is the ordinary causal case.
            causal = t > 1
            if causal and start > 0:
                raise ValueError("a multi-token forward is only supported on an empty cache")
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None, enable_gqa=self.n_kv != self.n_heads
        )
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


class SwiGLU(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.gate_up = nn.Linear(shape.d_model, 2 * shape.d_mlp, bias=False)
        self.down = nn.Linear(shape.d_mlp, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, shape: ModelShape) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(shape.d_model, shape.norm_eps)
        self.attn = Attention(shape)
        self.mlp_norm = RMSNorm(shape.d_model, shape.norm_eps)
        self.mlp = SwiGLU(shape)

    def forward(self, x, cos, sin, cache=None, layer=0, mask=None):  # noqa: ANN001, ANN201
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer, mask)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, shape: ModelShape, max_seq_len: int = 4096) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab_size, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.norm = RMSNorm(shape.d_model, shape.norm_eps)
        self.head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        if shape.tie_embeddings:
            self.head.weight = self.embed.weight
        cos, sin = rope_tables(shape.head_dim, max_seq_len, shape.rope_theta, shape.rope_scaling)
        # Non-persistent: derived from the shape, so checkpoints hold only learned weights.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.checkpoint_activations = False
        """Recompute each block's activations in backward instead of keeping them (training)."""
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        *,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T); with ``cache``, T new tokens are appended.

        Packed rows: ``positions`` (B, T) gives each token's position in its own sequence
        and ``mask`` (B, 1, T, T, True where token i may see token j) which tokens belong
        to it; together they replace the plain causal order.
        """
        return self.head(self.features(idx, cache, positions=positions, mask=mask))

    def features(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        *,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The normed final hidden states (B, T, d_model) that the output head reads; training
        applies the head a slice at a time when the logits would be large (pretrain.loss)."""
        if (positions is None) != (mask is None):
            raise ValueError("positions and mask go together")
        if positions is not None:
            if cache is not None:
                raise ValueError("packed rows (positions and mask) cannot use a KV cache")
            if positions.numel() and int(positions.max()) >= self.rope_cos.shape[0]:
                raise ValueError(f"position {int(positions.max())} exceeds max_seq_len")
            # (B, 1, T, D/2): one table row per token, broadcast over the heads.
            cos, sin = self.rope_cos[positions].unsqueeze(1), self.rope_sin[positions].unsqueeze(1)
        else:
            start = cache.length if cache is not None else 0
            t = idx.shape[1]
            if start + t > self.rope_cos.shape[0]:
                raise ValueError(f"sequence of {start + t} tokens exceeds max_seq_len")
            cos, sin = self.rope_cos[start : start + t], self.rope_sin[start : start + t]
        x = self.embed(idx)
        recompute = self.checkpoint_activations and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute and cache is None:
                # Keep only each block's input; its activations are recomputed in backward.
                x = checkpoint(block, x, cos, sin, None, i, mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, cache, i, mask)
        if cache is not None:
            cache.length += idx.shape[1]
        return self.norm(x)

    def head_loss(self, idx: torch.Tensor, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """``loss(final features (B*T, d_model), the head's weight)`` for token ids (B, T), in
        one call of the model: losses that apply the head themselves (sliced, pretrain.loss) run
        here, because FSDP gathers a sharded model's weights only inside its forward methods
        (pretrain.fsdp registers this one). ``features``: a compiled ``self.features``."""
        h = (features or self.features)(idx)
        return loss(h.reshape(-1, h.shape[-1]), self.head.weight)

    def weights(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The learned weights for a safetensors file: a tied head is stored once, as the
        embedding (safetensors refuses two names for one tensor). ``state``: this model's
        full state dict when it is sharded (pretrain.fsdp.full_state)."""
        state = dict(self.state_dict() if state is None else state)
        if self.shape.tie_embeddings:
            del state["head.weight"]
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load what ``weights`` wrote: every weight must be there, and nothing else."""
        if self.shape.tie_embeddings:
            weights = {**weights, "head.weight": weights["embed.weight"]}
        self.load_state_dict(weights)

    def decay_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay the matrices of blocks and the output head only.

        Norm gains and the input embedding are not decayed (the paper's rule; litgpt's
        decay-everything default is a known pitfall). A tied embedding is the output head
        too, and is decayed as the head.
        """
        decay, no_decay = [], []
        for name, p in self.named_parameters():  # a tied matrix is listed once, as embed.weight
            is_matrix = p.ndim == 2 and (self.shape.tie_embeddings or not name.startswith("embed."))
            (decay if is_matrix else no_decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]


def build_model(size: str, vocab_size: int, max_seq_len: int, seed: int) -> Llama:
    """A freshly initialised model of a registered size; the init depends on ``seed`` only."""
    return init_model(get_shape(size, vocab_size), max_seq_len, seed)


def init_model(shape: ModelShape, max_seq_len: int, seed: int) -> Llama:
    """A freshly initialised model of any shape (a custom size's too); the init depends on
    ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Llama(shape, max_seq_len=max_seq_len)


def count_from_module(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
