import pytest
import torch

from pretrain.model import KVCache, Llama, build_model
from pretrain.sizes import SIZES, ModelShape, flops_per_token, get_shape, param_counts

# docs/paper.md's table (vocab 128,256). It omits the final RMSNorm's gain vector (d_model
# parameters) that a Llama model has; every other weight matches exactly.
PAPER_PARAMS = {"150m": 154_146_816, "300m": 299_649_024, "600m": 602_456_064, "1.4b": 1_431_371_776}


@pytest.mark.parametrize("size", sorted(PAPER_PARAMS))
def test_paper_parameter_counts(size):
    shape = get_shape(size, 128_256)
    total, non_embedding = param_counts(shape)
    assert total == PAPER_PARAMS[size] + shape.d_model
    assert total - non_embedding == 128_256 * shape.d_model  # the input embedding only
    with torch.device("meta"):
        model = Llama(shape, max_seq_len=16)
    assert sum(p.numel() for p in model.parameters()) == total


def test_tiny_ladder_spans_the_cpu_range():
    counts = [param_counts(s.with_vocab(0))[1] for n, s in SIZES.items() if n.startswith("tiny-")]
    assert counts == sorted(counts)
    assert 0.01e6 <= counts[0] <= 0.02e6 and 4e6 <= counts[-1] <= 6e6  # tiny-16k .. tiny-5m


def test_flops_per_token_is_six_n_plus_attention():
    shape = get_shape("150m", 128_256)
    _, n = param_counts(shape)
    assert flops_per_token(shape, 4096) == pytest.approx(6 * n + 6 * 6 * 4096 * 512)


def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        get_shape("huge", 100)


def test_init_is_seeded_and_std_002():
    a, b, c = (build_model("tiny-200k", 512, 64, seed) for seed in (0, 0, 1))
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)
    assert a.blocks[0].mlp.down.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_weight_decay_only_on_matrices_and_head():
    model = build_model("tiny-50k", 512, 64, 0)
    decay, no_decay = model.decay_groups(0.1)
    decayed = {id(p) for p in decay["params"]}
    assert id(model.head.weight) in decayed
    assert id(model.embed.weight) not in decayed
    assert id(model.norm.weight) not in decayed
    assert all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_kv_cache_matches_full_forward(kv_heads):
    torch.manual_seed(0)
    shape = ModelShape("gqa", d_model=64, n_layers=2, n_heads=4, n_kv_heads=kv_heads, d_mlp=128, vocab_size=97)
    model = Llama(shape, max_seq_len=32).eval()
    idx = torch.randint(0, 97, (3, 12))
    with torch.no_grad():
        full = model(idx)
        cache = KVCache(model, batch=3, max_len=32)
        pieces = [model(idx[:, :5], cache)] + [model(idx[:, t : t + 1], cache) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_packed_row_equals_each_sequence_scored_alone():
    """A shared prefix and two continuations in one row (positions restart after the
    prefix, each continuation masked from the other) give each sequence's own logits."""
    torch.manual_seed(0)
    shape = ModelShape("gqa", d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_mlp=128, vocab_size=97)
    model = Llama(shape, max_seq_len=32).eval()
    prefix, a, b = torch.randint(0, 97, (5,)), torch.randint(0, 97, (4,)), torch.randint(0, 97, (6,))
    row = torch.cat([prefix, a, b]).unsqueeze(0)
    positions = torch.cat([torch.arange(5), torch.arange(5, 9), torch.arange(5, 11)]).unsqueeze(0)
    segments = torch.tensor([0] * 5 + [1] * 4 + [2] * 6)
    causal = torch.ones(15, 15, dtype=torch.bool).tril()
    mask = (causal & ((segments == 0) | (segments[None, :] == segments[:, None])))[None, None]
    with torch.no_grad():
        packed = model(row, positions=positions, mask=mask)[0]
        alone_a = model(torch.cat([prefix, a]).unsqueeze(0))[0]
        alone_b = model(torch.cat([prefix, b]).unsqueeze(0))[0]
    torch.testing.assert_close(packed[:9], alone_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed[9:], alone_b[5:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="go together"):
        model(row, positions=positions)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        model(row, positions=positions + 30, mask=mask)


def test_forward_is_causal():
    """Changing the token at position p leaves every output before p as it was and changes the
    output at p and after: each position sees itself and its past, never its future."""
    model = build_model("tiny-50k", 101, 32, 0).eval()
    idx = torch.randint(0, 101, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(idx)
        for p in range(idx.shape[1]):
            changed = idx.clone()
            changed[:, p] = (changed[:, p] + 1) % 101
            out = model(changed)
            torch.testing.assert_close(out[:, :p], base[:, :p], rtol=0, atol=0)
            moved = (out[:, p:] - base[:, p:]).abs().amax(dim=-1)  # (batch, positions from p)
            assert (moved > 1e-6).all(), (p, moved)
