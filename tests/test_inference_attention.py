"""Attention at inference time: grouped-query and multi-query heads, the key/value cache size,
sliding windows with attention sinks (a rolling cache), and linear attention on the GPT."""
import numpy as np
import pytest

from attnkit.functional import attention_forward, causal_mask, linear_attention_forward, padding_mask
from attnkit.gradcheck import assert_parameter_gradient, module_gradient_errors, numerical_gradient, rel_error
from attnkit.kvcache import (LinearStateCache, RollingKVCache, cache_nbytes, kv_cache_bytes,
                             sliding_window_mask, window_visible)
from attnkit.models import GPT, GPTConfig
from attnkit.nn import KVCache, MultiHeadAttention
from attnkit.sampling import generate
from attnkit.seeding import make_rng

F64 = np.float64


def gqa(h=4, h_kv=2, d=16, seed=0, dtype=F64, **kw):
    m = MultiHeadAttention(d, h, rng=make_rng(seed), dtype=dtype, num_kv_heads=h_kv, **kw)
    rng = make_rng(seed + 100)
    for name in ("b_q", "b_k", "b_v", "b_o"):
        m.params[name][...] = 0.5 * rng.standard_normal(m.params[name].shape)
    return m


def reference(m, x_q, x_kv=None, mask=None, bias=None):
    """Grouped-query attention the plain way: every key/value head copied to its g query heads."""
    x_kv = x_q if x_kv is None else x_kv
    q = m.split_heads(m.project(x_q, "q"))                               # (B, h, T_q, d_k)
    k, v = (np.repeat(a, m.group, axis=1) for a in m.keys_values(x_kv))  # (B, h, T_k, d_k)
    if m.rotary is not None:
        q = m.rotary.forward(q, np.arange(q.shape[2]))
        k = m.rotary.forward(k, np.arange(k.shape[2]))
    heads, _ = attention_forward(q, k, v, mask=mask, bias=bias)
    heads = heads * m.head_gate[:, None, None]
    return m.project(m.merge_heads(heads), "o")


# ----------------------------------------------------------------------------
# grouped-query attention

def test_num_kv_heads_equal_to_heads_is_todays_layer():
    rng = make_rng(0)
    x = rng.standard_normal((2, 5, 16)).astype(np.float32)
    old, new = MultiHeadAttention(16, 4, seed=3), MultiHeadAttention(16, 4, seed=3, num_kv_heads=4)
    assert [(n, p.shape) for n, p, _ in old.named_parameters()] == \
        [(n, p.shape) for n, p, _ in new.named_parameters()]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(old.parameters(), new.parameters()))
    np.testing.assert_array_equal(old.forward(x, mask=causal_mask(5)), new.forward(x, mask=causal_mask(5)))


@pytest.mark.parametrize("h_kv", [1, 2])
def test_grouped_shapes_and_parameters(h_kv):
    m = gqa(h=4, h_kv=h_kv, d=16)
    d_kv = h_kv * 4
    shapes = {n: p.shape for n, p, _ in m.named_parameters()}
    assert shapes == {"W_q": (16, 16), "b_q": (16,), "W_k": (16, d_kv), "b_k": (d_kv,),
                      "W_v": (16, d_kv), "b_v": (d_kv,), "W_o": (16, 16), "b_o": (16,)}
    assert m.num_parameters() == 2 * (16 * 16 + 16) + 2 * (16 * d_kv + d_kv)
    q, k, v = m.project_qkv(np.zeros((2, 3, 16)))
    assert q.shape == (2, 4, 3, 4) and k.shape == v.shape == (2, h_kv, 3, 4)


@pytest.mark.parametrize("h_kv", [1, 2])
def test_grouped_forward_equals_repeated_keys_with_every_mask_and_bias(h_kv):
    rng = make_rng(1)
    m = gqa(h=4, h_kv=h_kv)
    B, T, S = 2, 5, 6
    x, mem = rng.standard_normal((B, T, 16)), rng.standard_normal((B, S, 16))
    per_head = rng.random((B, 4, T, T)) > 0.3
    per_head[..., 0] = True
    for mask in (None, causal_mask(T), causal_mask(T)[None, None], padding_mask([5, 3], T), per_head):
        np.testing.assert_allclose(m.forward(x, mask=mask), reference(m, x, mask=mask), atol=1e-12)
    bias = rng.standard_normal((4, T, T))                               # per head (ALiBi's shape)
    np.testing.assert_allclose(m.forward(x, mask=causal_mask(T), bias=bias),
                               reference(m, x, mask=causal_mask(T), bias=bias), atol=1e-12)
    row_bias = rng.standard_normal((1, 1, 1, S))
    np.testing.assert_allclose(m.forward(x, mem, bias=row_bias), reference(m, x, mem, bias=row_bias),
                               atol=1e-12)
    assert m.attn_weights.shape == (B, 4, T, S)
    np.testing.assert_allclose(m.attn_weights.sum(-1), 1.0)


@pytest.mark.parametrize("h_kv", [1, 2, 4])
def test_grouped_gradients(h_kv, scale_by_position):
    rng = make_rng(2)
    m = gqa(h=4, h_kv=h_kv)
    m.head_gate[:] = [0.5, 1.0, 1.5, 2.0]
    m.rotary = scale_by_position
    x = rng.standard_normal((2, 5, 16))
    errors, _ = module_gradient_errors(m, [x], forward=lambda a: m.forward(a, mask=causal_mask(5)))
    errors.pop("b_k")              # zero in theory (softmax shift invariance): noise
    assert max(errors.values()) < 1e-6, errors
    # the gates' gradient
    out = m.forward(x, mask=causal_mask(5))
    dout = make_rng(3).standard_normal(out.shape)
    m.backward(dout)
    gate_grad = m.head_gate_grad.copy()

    def loss():
        return np.sum(m.forward(x, mask=causal_mask(5)) * dout)
    assert rel_error(gate_grad, numerical_gradient(loss, m.head_gate)) < 1e-7


def test_grouped_cross_attention_gradients_and_float32():
    rng = make_rng(4)
    m = gqa(h=4, h_kv=2)
    x, mem = rng.standard_normal((2, 3, 16)), rng.standard_normal((2, 5, 16))
    errors, _ = module_gradient_errors(m, [x, mem], forward=lambda a, b: m.forward(a, b))
    errors.pop("b_k")
    assert max(errors.values()) < 1e-6, errors
    m32 = MultiHeadAttention(16, 4, num_kv_heads=1)
    out = m32.forward(x.astype(np.float32), mask=causal_mask(3))
    assert out.dtype == np.float32 and m32.backward(np.ones_like(out)).dtype == np.float32


def test_grouped_kv_cache_holds_h_kv_heads_and_equals_full_forward():
    rng = make_rng(5)
    for h_kv in (1, 2, 4):
        m = gqa(h=4, h_kv=h_kv)
        x = rng.standard_normal((2, 7, 16))
        full = m.forward(x, mask=causal_mask(7))
        cache = KVCache(7)
        parts = [m.forward(x[:, :4], mask=causal_mask(4), cache=cache)]
        parts += [m.forward(x[:, t:t + 1], cache=cache) for t in range(4, 7)]
        np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=1e-12)
        assert cache.k.shape == (2, h_kv, 7, 4)
        assert cache_nbytes(cache) == 2 * 2 * h_kv * 7 * 4 * 8


def test_bad_num_kv_heads():
    for bad in (3, 0, 8, 2.5, True):
        with pytest.raises(ValueError, match="num_kv_heads"):
            MultiHeadAttention(16, 4, num_kv_heads=bad)
    with pytest.raises(ValueError, match="num_kv_heads"):
        GPTConfig(vocab_size=5, d_model=16, num_heads=4, num_kv_heads=3)


# ----------------------------------------------------------------------------
# the cache calculator

def test_kv_cache_bytes_reproduces_the_published_figures():
    mha = kv_cache_bytes(32, 4096, 32, 32768, dtype="bf16")
    gqa8 = kv_cache_bytes(32, 4096, 32, 32768, num_kv_heads=8, dtype="bf16")
    assert mha == 2 * 32 * 32768 * 4096 * 2 == 17_179_869_184
    assert round(mha / 1e9, 2) == 17.18 and round(gqa8 / 1e9, 2) == 4.29
    assert kv_cache_bytes(32, 4096, 32, 32768, num_kv_heads=1, dtype=2) * 32 == mha
    assert kv_cache_bytes(2, 64, 4, 10, dtype="float32", batch=3) == 2 * 2 * 3 * 10 * 64 * 4
    with pytest.raises(ValueError, match="num_kv_heads"):
        kv_cache_bytes(32, 4096, 32, 100, num_kv_heads=5)
    with pytest.raises(ValueError, match="dtype"):
        kv_cache_bytes(32, 4096, 32, 100, dtype="bf17")


def test_gpt_cache_bytes_match_the_calculator():
    for h_kv in (4, 2, 1):
        c = GPTConfig(vocab_size=11, context_length=12, num_layers=2, num_heads=4, d_model=16, d_ff=32,
                      num_kv_heads=h_kv)
        model = GPT(c)
        cache = model.make_cache(3)
        model.forward(np.zeros((3, 2), dtype=int), cache=cache)
        assert cache.nbytes == kv_cache_bytes(2, 16, 4, 12, num_kv_heads=h_kv, dtype="float32", batch=3)


# ----------------------------------------------------------------------------
# sliding window and sinks

def test_sliding_window_mask():
    T, W, s = 9, 3, 2
    m = sliding_window_mask(T, W, s)
    for i in range(T):
        for j in range(T):
            assert m[i, j] == (j <= i and (i - j < W or j < s))
    assert np.array_equal(sliding_window_mask(5, 5), causal_mask(5))
    assert np.array_equal(sliding_window_mask(5, 1), np.eye(5, dtype=bool))
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(5, 0)


def test_rolling_cache_keeps_sinks_and_the_last_window():
    cache = RollingKVCache(window=3, sinks=2)
    for p in range(9):
        k = np.full((1, 1, 1, 2), float(p))
        keys, _ = cache.append(k, k)
        assert sorted(keys[0, 0, :, 0].tolist()) == sorted({0, 1} & set(range(p + 1)) | set(range(max(0, p - 2), p + 1)))
    assert cache.length == 5 and cache.position == 9 and cache.k.shape[2] == 5
    with pytest.raises(ValueError, match="window"):
        RollingKVCache(window=0)


@pytest.mark.parametrize("window,sinks", [(4, 0), (4, 2), (3, 1)])
def test_windowed_gpt_decodes_through_the_rolling_cache_as_its_banded_forward(window, sinks):
    c = GPTConfig(vocab_size=11, context_length=20, num_layers=2, num_heads=4, d_model=16, d_ff=32,
                  pos="none", num_kv_heads=2, window=window, sinks=sinks, dtype=F64)
    model = GPT(c)
    ids = make_rng(6).integers(0, 11, size=(2, 20))
    full = model.forward(ids)                                            # banded mask, one pass
    for chunks in ([20], [1] * 20, [7, 1, 1, 5, 6]):                     # prefill sizes, then steps
        cache = model.make_cache(2)
        assert cache.kind == "window" and cache.capacity == window + sinks
        out, t = [], 0
        for n in chunks:
            out.append(model.forward(ids[:, t:t + n], cache=cache))
            t += n
        np.testing.assert_allclose(np.concatenate(out, axis=1), full, atol=1e-10)
        assert cache.nbytes == 2 * 2 * 2 * 2 * (window + sinks) * 4 * 8   # layers, k/v, rows, h_kv, slots


def test_gpt_decodes_past_its_context_with_a_window_and_its_gradient():
    c = GPTConfig(vocab_size=11, context_length=8, num_layers=1, num_heads=2, d_model=8, d_ff=16,
                  pos="none", window=3, sinks=1, dtype=F64)
    model = GPT(c)
    ids = make_rng(7).integers(0, 11, size=(1, 30))
    cache = model.make_cache(1)
    steps = [model.forward(ids[:, t:t + 1], cache=cache) for t in range(30)]   # 30 > context 8
    last = steps[-1][:, -1]
    # the last position sees position 0 (the sink) and 27..29: a 4-token forward with this mask
    m = GPT(GPTConfig(**{**c.__dict__, "window": None, "sinks": 0}))
    short = m.forward(ids[:, [0, 27, 28, 29]])[:, -1]
    np.testing.assert_allclose(last, short, atol=1e-10)
    with pytest.raises(ValueError, match="past the learned table"):
        learned = GPT(GPTConfig(**{**c.__dict__, "pos": "learned"}))
        cache = learned.make_cache(1)
        for t in range(9):
            learned.forward(ids[:, t:t + 1], cache=cache)
    # the banded mask trains: gradient of one weight
    assert_parameter_gradient(model, ids[:, :8], "W_k", seed=8)


def test_window_cache_on_a_model_trained_without_one_and_generate_past_the_context():
    c = GPTConfig(vocab_size=11, context_length=10, num_layers=1, num_heads=2, d_model=8, d_ff=16,
                  pos="none")
    model = GPT(c)
    windowed = GPT(GPTConfig(**{**c.__dict__, "window": 4, "sinks": 2}))
    ids = make_rng(9).integers(0, 11, size=(2, 10))
    cache = model.make_cache(2, window=4, sinks=2)
    got = np.concatenate([model.forward(ids[:, t:t + 1], cache=cache) for t in range(10)], axis=1)
    np.testing.assert_allclose(got, windowed.forward(ids), atol=1e-5)
    # generate: a rolling cache decodes on past context_length; while nothing was evicted
    # (6 positions) it writes what the full cache writes
    out = generate(windowed, ids[:1, :3], 30, seed=1)
    assert out.shape == (1, 33)
    full = generate(model, ids[:1, :3], 3, seed=1)
    np.testing.assert_array_equal(out[:, :6], full)


def test_bad_window_options():
    with pytest.raises(ValueError, match="sinks"):
        GPTConfig(vocab_size=5, sinks=2)
    with pytest.raises(ValueError, match="window"):
        GPTConfig(vocab_size=5, window=0)
    with pytest.raises(ValueError, match="window"):
        GPTConfig(vocab_size=5, attention="linear", window=4)
    with pytest.raises(ValueError, match="attention"):
        GPTConfig(vocab_size=5, attention="cosine")


# ----------------------------------------------------------------------------
# linear attention in the layer and the GPT

@pytest.mark.parametrize("h_kv", [1, 2, 4])
def test_linear_kernel_forward_gradients_and_state_cache(h_kv, stepwise):
    rng = make_rng(10)
    m = gqa(h=4, h_kv=h_kv, kernel="linear")
    x = rng.standard_normal((2, 6, 16))
    q, k, v = m.project_qkv(x)
    heads, _ = linear_attention_forward(q, np.repeat(k, m.group, 1), np.repeat(v, m.group, 1), causal=True)
    np.testing.assert_allclose(m.forward(x), m.project(m.merge_heads(heads), "o"), atol=1e-12)
    errors, _ = module_gradient_errors(m, [x])
    assert max(errors.values()) < 1e-6, errors
    full = m.forward(x)
    cache = LinearStateCache()
    np.testing.assert_allclose(stepwise(m, x, 3, cache), full, atol=1e-12)
    assert cache.state.shape == (2, h_kv, 4, 5) and cache.position == 6
    with pytest.raises(ValueError, match="no mask"):
        m.forward(x, mask=causal_mask(6))
    with pytest.raises(TypeError, match="LinearStateCache"):
        m.forward(x, cache=KVCache(6))


def test_linear_gpt_state_is_constant_and_equals_its_forward():
    c = GPTConfig(vocab_size=11, context_length=16, num_layers=2, num_heads=4, d_model=16, d_ff=32,
                  pos="none", attention="linear", num_kv_heads=2, dtype=F64)
    model = GPT(c)
    ids = make_rng(11).integers(0, 11, size=(2, 16))
    full = model.forward(ids)
    # causal: the future does not change the past
    changed = ids.copy()
    changed[:, 9:] = 0
    np.testing.assert_allclose(model.forward(changed)[:, :9], full[:, :9], atol=1e-12)
    cache = model.make_cache(2)
    assert cache.kind == "linear"
    sizes = []
    out = [model.forward(ids[:, :5], cache=cache)]
    for t in range(5, 16):
        out.append(model.forward(ids[:, t:t + 1], cache=cache))
        sizes.append(cache.nbytes)
    np.testing.assert_allclose(np.concatenate(out, axis=1), full, atol=1e-10)
    assert len(set(sizes)) == 1 and sizes[0] == 2 * 2 * 2 * 4 * 5 * 8    # layers, rows, h_kv, d_k, d_k + 1
    for t in range(16, 40):                                               # past the context
        model.forward(ids[:, t % 16:t % 16 + 1], cache=cache)
    assert cache.nbytes == sizes[0]
    assert_parameter_gradient(model, ids, "W_v", seed=12)


def test_window_visible_is_the_rolling_rule():
    v = window_visible([5], np.arange(6), window=2, sinks=1)
    assert v.tolist() == [[True, False, False, False, True, True]]


def test_rope_gqa_and_window_decode_through_the_rolling_cache(stepwise):
    """Keys are rotated at their absolute positions before they are cached, so a rolling cache
    equals the banded forward for a rotary model too (StreamingLLM's renumbering is not this)."""
    c = GPTConfig(vocab_size=11, context_length=8, num_layers=2, num_heads=4, d_model=16, d_ff=32,
                  pos="rope", num_kv_heads=2, window=5, sinks=1, dtype=F64)
    model = GPT(c)
    ids = make_rng(13).integers(0, 11, size=(2, 24))                      # 3 x the context
    full = model.forward(ids)
    cache = model.make_cache(2)
    np.testing.assert_allclose(stepwise(model, ids, 6, cache), full, atol=1e-10)
    linear = GPT(GPTConfig(**{**c.__dict__, "window": None, "sinks": 0, "attention": "linear"}))
    cache = linear.make_cache(2)
    steps = [linear.forward(ids[:, t:t + 4], cache=cache) for t in range(0, 24, 4)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), linear.forward(ids), atol=1e-10)
    # ALiBi through the rolling cache: tests/test_positions_gqa.py; with linear attention: refused
    with pytest.raises(ValueError, match="ALiBi"):
        GPTConfig(**{**c.__dict__, "pos": "alibi", "window": None, "sinks": 0, "attention": "linear"})
