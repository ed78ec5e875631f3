"""The hooks the modern-attention chapters build on: an additive score bias, explicit positions
with a rotary hook, and per-head gates with their gradient (MultiHeadAttention, GPT)."""
import numpy as np
import pytest

from attnkit.functional import attention_backward, attention_forward, causal_mask
from attnkit.gradcheck import module_gradient_errors, numerical_gradient, rel_error
from attnkit.models import GPT, GPTConfig
from attnkit.nn import KVCache, MultiHeadAttention
from attnkit.seeding import make_rng

F64 = np.float64


def test_bias_adds_to_the_scores_before_the_softmax():
    rng = make_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    bias = rng.standard_normal((3, 5, 5))
    out, cache = attention_forward(q, k, v, mask=causal_mask(5), bias=bias)
    s = q @ np.swapaxes(k, -1, -2) / 2.0 + bias                          # d_k = 4
    s = np.where(causal_mask(5), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, p @ v, rtol=1e-12, atol=1e-12)
    # the bias is constant: the backward is the same formula with these weights
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = attention_backward(dout, cache)
    np.testing.assert_allclose(dv, np.swapaxes(p, -1, -2) @ dout, rtol=1e-12, atol=1e-12)

    def loss():
        return np.sum(attention_forward(q, k, v, mask=causal_mask(5), bias=bias)[0] * dout)
    assert rel_error(dq, numerical_gradient(loss, q)) < 1e-7
    assert rel_error(dk, numerical_gradient(loss, k)) < 1e-7


def test_bias_keeps_float32_and_rejects_bad_shapes_and_infinities():
    rng = make_rng(1)
    q, k, v = (rng.standard_normal((2, 5, 4)).astype(np.float32) for _ in range(3))
    out, _ = attention_forward(q, k, v, bias=np.zeros((5, 5)))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="does not broadcast"):
        attention_forward(q, k, v, bias=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="boolean mask"):
        attention_forward(q, k, v, bias=np.where(causal_mask(5), 0.0, -np.inf))


def mha(rng, h=2, d=8):
    m = MultiHeadAttention(d, h, rng=rng, dtype=F64)
    for name in ("b_q", "b_k", "b_v", "b_o"):
        m.params[name][...] = 0.5 * rng.standard_normal(d)
    return m


def test_head_gate_gradient_and_zeroed_head():
    rng = make_rng(2)
    m = mha(rng)
    m.head_gate[:] = [0.7, 1.3]
    x = rng.standard_normal((2, 5, 8))
    errors, _ = module_gradient_errors(m, [x], forward=lambda a: m.forward(a, mask=causal_mask(5)))
    errors.pop("b_k")              # zero in theory (softmax shift invariance): noise
    assert max(errors.values()) < 1e-6, errors
    # dL/dgate against central differences, L = sum(out * dout)
    out = m.forward(x, mask=causal_mask(5))
    dout = make_rng(3).standard_normal(out.shape)
    m.backward(dout)

    def loss():
        return np.sum(m.forward(x, mask=causal_mask(5)) * dout)
    assert rel_error(m.head_gate_grad, numerical_gradient(loss, m.head_gate)) < 1e-7
    # a zero gate removes the head: the output equals that of the other head alone
    m.head_gate[:] = [0.0, 1.0]
    heads = m.forward(x, mask=causal_mask(5))
    q, k, v = m.project_qkv(x)
    ref, _ = attention_forward(q, k, v, mask=causal_mask(5))
    ref[:, 0] = 0.0
    expected = m.project(m.merge_heads(ref), "o")
    np.testing.assert_allclose(heads, expected, rtol=1e-12, atol=1e-12)


def test_default_gate_is_not_a_parameter_and_changes_nothing():
    m = mha(make_rng(4))
    assert "head_gate" not in dict((n, p) for n, p, _ in m.named_parameters())
    assert np.all(m.head_gate == 1) and m.head_gate.shape == (2,)


def test_rotary_hook_gradients_and_cache_positions(scale_by_position):
    rng = make_rng(5)
    m = mha(rng)
    m.rotary = scale_by_position
    x = rng.standard_normal((2, 6, 8))
    errors, _ = module_gradient_errors(m, [x], forward=lambda a: m.forward(a, mask=causal_mask(6)))
    errors.pop("b_k")              # zero in theory (softmax shift invariance): noise
    assert max(errors.values()) < 1e-6, errors
    # prefill of 4 positions then 2 single steps equals the full forward (positions 0..5)
    full = m.forward(x, mask=causal_mask(6))
    cache = KVCache(6)
    parts = [m.forward(x[:, :4], mask=causal_mask(4), cache=cache)]
    for t in (4, 5):
        parts.append(m.forward(x[:, t:t + 1], cache=cache))
    assert cache.position == 6 and cache.length == 6
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(m.rotary.seen[-1], [5])                # the last query's position


def test_positions_must_be_one_integer_per_query():
    m = mha(make_rng(6))
    x = np.zeros((1, 3, 8))
    with pytest.raises(ValueError, match="3 integers"):
        m.forward(x, positions=np.arange(4))
    with pytest.raises(ValueError, match="3 integers"):
        m.forward(x, positions=np.arange(3.0))


def test_gpt_without_positions_gradients_and_cache(stepwise):
    c = GPTConfig(vocab_size=7, context_length=6, num_layers=1, num_heads=2, d_model=8, d_ff=16,
                  pos="none", dtype=F64)
    model = GPT(c)
    assert not any(n.startswith("pos_embed") for n, _, _ in model.named_parameters())
    ids = make_rng(7).integers(0, 7, size=(2, 6))
    logits = model.forward(ids)
    cache = model.make_cache(2)
    np.testing.assert_allclose(stepwise(model, ids, 3, cache), logits, rtol=1e-10, atol=1e-10)
    dout = make_rng(8).standard_normal(logits.shape)
    model.zero_grad()
    model.forward(ids)
    model.backward(dout)
    name, p, g = next((n, p, g) for n, p, g in model.named_parameters() if n.endswith("W_q"))

    def loss():
        return np.sum(model.forward(ids) * dout)
    assert rel_error(g, numerical_gradient(loss, p)) < 1e-6, name
    with pytest.raises(ValueError, match="pos must be one of"):
        GPTConfig(vocab_size=7, pos="rotary-ish")
