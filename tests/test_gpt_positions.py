"""GPTConfig.pos: learned, sinusoidal, rope, alibi and none in the GPT, with the cache and past the
training length (chapter 22)."""
import dataclasses

import numpy as np
import pytest

from attnkit.functional import causal_mask, softmax
from attnkit.gradcheck import assert_model_gradients
from attnkit.losses import CrossEntropyLoss
from attnkit.models import GPT, GPTConfig
from attnkit.nn import MultiHeadAttention
from attnkit.positions import POSITION_METHODS, RotaryEmbedding, alibi_bias, alibi_slopes
from attnkit.seeding import make_rng

METHODS = POSITION_METHODS


def tiny(pos, **kw):
    cfg = dict(vocab_size=7, context_length=6, num_layers=2, num_heads=2, d_model=8, d_ff=12, dropout=0.0,
               seed=1, pos=pos) | kw
    return GPT(GPTConfig(**cfg))


def _ids(B=3, T=6, V=7, seed=0):
    return make_rng(seed).integers(0, V, size=(B, T))


@pytest.mark.parametrize("pos", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_method_runs_in_both_dtypes_and_is_causal(pos, dtype):
    m = tiny(pos, dtype=dtype)
    ids = _ids(B=1)
    base = m.forward(ids)
    assert base.shape == (1, 6, 7) and base.dtype == dtype
    changed = ids.copy()
    changed[0, 3:] = (changed[0, 3:] + 3) % 7
    out = m.forward(changed)
    np.testing.assert_allclose(out[0, :3], base[0, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0, 3:], base[0, 3:])


@pytest.mark.parametrize("pos", METHODS)
def test_whole_model_gradient_check_float64(pos):
    m = tiny(pos, dtype=np.float64, position_table=8 if pos in ("learned", "sinusoidal") else None)
    ids, targets = _ids(B=2, T=5), _ids(B=2, T=5, seed=1)
    assert_model_gradients(m, ids, targets, CrossEntropyLoss(), label=pos)


def test_position_parameters_per_method():
    names = {pos: {n for n, _, _ in tiny(pos).named_parameters()} for pos in METHODS}
    assert "pos_embed.W" in names["learned"]
    for pos in ("sinusoidal", "rope", "alibi", "none"):
        assert names[pos] == names["learned"] - {"pos_embed.W"}, pos
    assert tiny("learned", position_table=20).pos_embed.params["W"].shape == (20, 8)
    rope = tiny("rope", rope_base=100.0, rope_scale=0.5)
    rotaries = [layer.self_attn.rotary for layer in rope.blocks.layers]
    assert all(isinstance(r, RotaryEmbedding) and r.scale == 0.5 and r.base == 100.0 for r in rotaries)
    assert all(layer.self_attn.rotary is None for layer in tiny("alibi").blocks.layers)


@pytest.mark.parametrize("pos", METHODS)
def test_prefill_then_steps_equal_the_full_forward(pos):
    # the position offset: a prompt prefilled at once, then one token at a time, then three together
    m = tiny(pos, dtype=np.float64, context_length=12, position_table=16 if pos in ("learned",
                                                                                      "sinusoidal") else None)
    ids = _ids(B=2, T=16, seed=3)
    full = m.forward(ids)                                                 # (2, 16, 7)
    cache = m.make_cache(2, capacity=16)
    parts = [m.forward(ids[:, :5], cache=cache)]
    parts += [m.forward(ids[:, t:t + 1], cache=cache) for t in range(5, 13)]
    parts.append(m.forward(ids[:, 13:], cache=cache))
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-10, atol=1e-12)
    assert cache.position == cache.length == 16
    # a prompt decoded one token at a time from the start gives the same logits as well
    cache = m.make_cache(2, capacity=16)
    steps = np.concatenate([m.forward(ids[:, t:t + 1], cache=cache) for t in range(16)], axis=1)
    np.testing.assert_allclose(steps, full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pos", ["rope", "alibi", "none"])
def test_relative_methods_take_inputs_longer_than_the_context(pos):
    m = tiny(pos)
    assert m.forward(_ids(T=40)).shape == (3, 40, 7)
    cache = m.make_cache(3, capacity=40)
    m.forward(_ids(T=39), cache=cache)
    assert m.forward(_ids(T=1), cache=cache).shape == (3, 1, 7)


def test_tables_limit_the_length_and_name_both_numbers():
    with pytest.raises(ValueError, match="position 6 is past the learned table of 6 positions"):
        tiny("learned").forward(_ids(T=7))
    assert tiny("sinusoidal", position_table=30).forward(_ids(T=30)).shape == (3, 30, 7)
    with pytest.raises(ValueError, match="position 30 is past the sinusoidal table of 30 positions"):
        tiny("sinusoidal", position_table=30).forward(_ids(T=31))
    # with a cache larger than the table, the table's own check names the position and the rows
    m = tiny("learned")
    cache = m.make_cache(3, capacity=10)
    m.forward(_ids(T=6), cache=cache)
    with pytest.raises(ValueError, match="position 6 is past the learned table of 6 positions"):
        m.forward(_ids(T=1), cache=cache)
    m = tiny("sinusoidal", position_table=7)
    cache = m.make_cache(3, capacity=10)
    m.forward(_ids(T=7), cache=cache)
    with pytest.raises(ValueError, match="position 8 is past the sinusoidal table of 7 positions"):
        m.forward(_ids(T=2), cache=cache)
    with pytest.raises(ValueError, match="capacity=10"):
        tiny("rope").forward(_ids(T=11), cache=tiny("rope").make_cache(3, capacity=10))


def test_alibi_scores_are_the_bias_when_queries_are_zero():
    # with W_q = 0 and b_q = 0 every score q.k is 0: the weights are softmax(bias) under the mask
    m = tiny("alibi", dtype=np.float64, num_heads=4, context_length=10)
    for layer in m.blocks.layers:
        layer.self_attn.params["W_q"][...] = 0
    m.forward(_ids(B=1, T=10))
    expect = softmax(np.where(causal_mask(10), alibi_bias(4, np.arange(10), np.arange(10)), -np.inf))
    for w in m.attention_weights():
        np.testing.assert_allclose(w[0], expect, rtol=1e-12, atol=1e-14)
    # each head's weight on the previous key over the current one is exp(-slope)
    np.testing.assert_allclose(expect[:, 5, 4] / expect[:, 5, 5], np.exp(-alibi_slopes(4)))


def test_rope_attention_depends_on_relative_positions_only():
    mha = MultiHeadAttention(16, 2, dtype=np.float64, seed=0)
    mha.rotary = RotaryEmbedding(8, base=100.0)
    x = make_rng(0).standard_normal((2, 7, 16))
    mask = causal_mask(7)
    out0 = mha.forward(x, mask=mask, positions=np.arange(7))
    out1 = mha.forward(x, mask=mask, positions=np.arange(300, 307))
    np.testing.assert_allclose(out0, out1, rtol=1e-10, atol=1e-12)
    # without the rotary hook the layer would not see positions at all; with it, order matters
    out2 = mha.forward(x, mask=mask, positions=np.arange(0, 14, 2))
    assert not np.allclose(out0, out2)


def test_rope_scale_compresses_positions():
    # position interpolation: scale 1/2 at positions 0, 2, 4, ... equals scale 1 at 0, 1, 2, ...
    # (within the training length the relative pattern of scale s at distance d is that of 1 at s d)
    m = tiny("rope", dtype=np.float64, context_length=12)
    half = GPT(dataclasses.replace(m.config, rope_scale=0.5))
    half.load_state_dict(m.state_dict())
    ids = _ids(B=1, T=12)
    assert not np.allclose(half.forward(ids), m.forward(ids))
    mha = m.blocks.layers[0].self_attn
    x = make_rng(2).standard_normal((1, 6, 8))
    a = mha.forward(x, mask=causal_mask(6), positions=np.arange(6))
    mha.rotary = RotaryEmbedding(4, scale=0.5)
    b = mha.forward(x, mask=causal_mask(6), positions=np.arange(0, 12, 2))
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw, match", [
    (dict(pos="relative"), "pos must be one of"),
    (dict(pos="rope", d_model=6, num_heads=2), "d_head must be even"),
    (dict(pos="rope", rope_base=1.0), "base must be a number > 1"),
    (dict(pos="rope", rope_scale=-1.0), "scale must be a positive number"),
    (dict(pos="rope", position_table=20), "leave position_table=None"),
    (dict(pos="learned", position_table=4), "at least context_length=6"),
])
def test_bad_position_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)
