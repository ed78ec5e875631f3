"""Tests of attnkit.nn: every module's gradients against finite differences, invariants, state, bad input."""
import math

import numpy as np
import pytest

from attnkit.functional import causal_mask, padding_mask, scaled_dot_product_attention
from attnkit.gradcheck import module_gradient_errors, numerical_gradient, rel_error
from attnkit.nn import (Dropout, Embedding, FeedForward, LayerNorm, Linear, Module, ModuleList,
                        MultiHeadAttention, SinusoidalPositionalEncoding)

TOL = 1e-6
F64 = np.float64


def randn(rng, *shape, dtype=F64):
    return rng.standard_normal(shape).astype(dtype)


module_gradcheck = module_gradient_errors


def assert_gradients_ok(errors, skip=()):
    bad = {k: v for k, v in errors.items() if k not in skip and not v < TOL}
    assert not bad, f"gradient check failed (relative errors): {bad}"


# ----------------------------------------------------------------------------
# gradients of every module and parameter

@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(bias):
    rng = np.random.default_rng(0)
    lin = Linear(4, 3, bias=bias, rng=rng, dtype=F64)
    lin.params.get("b", np.zeros(0))[...] = randn(rng, 3)[: 3 if bias else 0]
    errors, _ = module_gradcheck(lin, [randn(rng, 2, 5, 4)])
    assert set(errors) == {"input0", "W"} | ({"b"} if bias else set())
    assert_gradients_ok(errors)


def test_embedding_gradient_accumulates_repeated_ids():
    rng = np.random.default_rng(1)
    emb = Embedding(6, 4, rng=rng, dtype=F64)
    ids = np.array([[1, 3, 1], [5, 1, 0]])                       # id 1 three times, 2 and 4 unused
    errors, grads = module_gradcheck(emb, [], forward=lambda: emb.forward(ids))
    assert_gradients_ok(errors)
    dout = np.random.default_rng(123).standard_normal((2, 3, 4))
    np.testing.assert_allclose(grads["W"][1], dout[0, 0] + dout[0, 2] + dout[1, 1])
    np.testing.assert_array_equal(grads["W"][[2, 4]], 0.0)


def test_positional_encoding_gradient_and_values():
    rng = np.random.default_rng(2)
    pe = SinusoidalPositionalEncoding(10, 6, dtype=F64)
    errors, _ = module_gradcheck(pe, [randn(rng, 2, 4, 6)], forward=lambda x: pe.forward(x, offset=3))
    assert_gradients_ok(errors)
    x = np.zeros((1, 5, 6))
    out = pe.forward(x)
    pos, i = 3, 1                                                 # PE[3, 2] = sin(3 / 10000^(2/6))
    np.testing.assert_allclose(out[0, pos, 2 * i], np.sin(pos / 10000 ** (2 * i / 6)))
    np.testing.assert_allclose(out[0, pos, 2 * i + 1], np.cos(pos / 10000 ** (2 * i / 6)))
    np.testing.assert_array_equal(pe.forward(x[:, :2], offset=3)[0], out[0, 3:5])
    assert pe.parameters() == []                                 # fixed, not learned


def test_layernorm_gradients():
    rng = np.random.default_rng(3)
    ln = LayerNorm(5, dtype=F64)
    ln.params["gamma"][...] = 1 + randn(rng, 5) * 0.5
    ln.params["beta"][...] = randn(rng, 5)
    errors, _ = module_gradcheck(ln, [randn(rng, 2, 3, 5) * 3 + 1])
    assert set(errors) == {"input0", "gamma", "beta"}
    assert_gradients_ok(errors)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feedforward_gradients(activation):
    rng = np.random.default_rng(4)
    ff = FeedForward(4, 7, activation=activation, rng=rng, dtype=F64)
    for _, p, _ in ff.named_parameters():
        p[...] = randn(rng, *p.shape)                              # nonzero biases too
    errors, _ = module_gradcheck(ff, [randn(rng, 2, 3, 4)])
    assert set(errors) == {"input0", "fc1.W", "fc1.b", "fc2.W", "fc2.b"}
    assert_gradients_ok(errors)


def test_gelu_values():
    ff = FeedForward(1, 1, activation="gelu", dtype=F64)
    ff.fc1.params["W"][...] = 1.0
    ff.fc2.params["W"][...] = 1.0
    x = np.array([[[-3.0], [0.0], [1.0], [3.0]]])
    xs = x.ravel().tolist()
    tanh_approx = [0.5 * a * (1 + math.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))) for a in xs]
    exact = [a * 0.5 * (1 + math.erf(a / math.sqrt(2))) for a in xs]   # x * Phi(x)
    y = ff.forward(x).ravel()
    np.testing.assert_allclose(y, tanh_approx, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y, exact, atol=5e-4)                    # the approximation is close


def test_dropout_gradient_with_fixed_rng():
    rng = np.random.default_rng(5)
    drop = Dropout(0.4)
    x = randn(rng, 3, 8)

    def reset():
        drop.seed_dropout(7)
    errors, _ = module_gradcheck(drop, [x], reset=reset)
    assert_gradients_ok(errors)
    reset()
    out = drop.forward(x)
    assert np.any(out == 0) and np.any(np.abs(out) > np.abs(x))


def mha_module(rng, d_model=8, h=2, dropout=0.0, bias=True):
    mha = MultiHeadAttention(d_model, h, dropout=dropout, bias=bias, rng=rng, dtype=F64)
    if bias:
        for name in ("b_q", "b_k", "b_v", "b_o"):
            mha.params[name][...] = randn(rng, d_model) * 0.5
    return mha


@pytest.mark.parametrize("case", ["self", "self_causal", "self_padding", "cross", "cross_padding",
                                  "dropout", "no_bias"])
def test_multihead_attention_gradients(case):
    rng = np.random.default_rng(6)
    B, T_q, T_k, d = 2, 3, 5, 8
    mha = mha_module(rng, d, 2, dropout=0.3 if case == "dropout" else 0.0, bias=case != "no_bias")
    reset = None
    if case == "dropout":
        def reset():
            mha.seed_dropout(11)
    x_q, x_kv = randn(rng, B, T_q, d), randn(rng, B, T_k, d)
    if case.startswith("cross"):
        mask = padding_mask([5, 2], T_k) if case == "cross_padding" else None
        inputs, fwd = [x_q, x_kv], lambda a, b: mha.forward(a, b, mask=mask)
    else:
        mask = {"self_causal": causal_mask(T_k), "self_padding": padding_mask([5, 3], T_k)}.get(case)
        inputs, fwd = [x_kv], lambda a: mha.forward(a, mask=mask)
    errors, grads = module_gradcheck(mha, inputs, forward=fwd, reset=reset)
    expected = {"W_q", "W_k", "W_v", "W_o"} | ({"b_q", "b_k", "b_v", "b_o"} if case != "no_bias" else set())
    assert set(errors) - {"input0", "input1"} == expected
    assert_gradients_ok(errors, skip={"b_k"})
    if case != "no_bias":
        # softmax is shift invariant: b_k adds q_i . b_k to every score of row i, so dL/db_k = 0;
        # a relative error of two ~1e-17 numbers means nothing, hence absolute tolerances
        assert np.abs(grads["b_k"]).max() < 1e-12
        dout = np.random.default_rng(123).standard_normal((B, T_q if case.startswith("cross") else T_k, d))

        def loss():
            if reset:
                reset()
            return np.sum(fwd(*inputs) * dout)
        assert np.abs(numerical_gradient(loss, mha.params["b_k"])).max() < 1e-8


def test_key_bias_has_zero_gradient_and_no_effect():
    """Invariant: changing b_k changes no output (softmax shift invariance)."""
    rng = np.random.default_rng(7)
    mha = mha_module(rng)
    x = randn(rng, 2, 4, 8)
    out = mha.forward(x, mask=causal_mask(4))
    mha.params["b_k"] += 10.0
    np.testing.assert_allclose(mha.forward(x, mask=causal_mask(4)), out, rtol=1e-12, atol=1e-12)
    mha.backward(np.ones_like(out))
    assert np.abs(mha.grads["b_k"]).max() < 1e-12
    assert np.abs(mha.grads["b_q"]).max() > 1e-6                 # the other biases do get gradients


# ----------------------------------------------------------------------------
# invariants

def test_multihead_equals_concatenated_single_heads():
    rng = np.random.default_rng(8)
    d, h, d_k = 12, 3, 4
    mha = mha_module(rng, d, h)
    x_q, x_kv = randn(rng, 2, 3, d), randn(rng, 2, 5, d)
    mask = padding_mask([5, 4], 5)[:, 0]                           # (B, 1, T_k) per-head mask below
    out = mha.forward(x_q, x_kv, mask=mask[:, None])
    P = mha.params
    heads = []
    for i in range(h):
        cols = slice(i * d_k, (i + 1) * d_k)
        q = x_q @ P["W_q"][:, cols] + P["b_q"][cols]               # (B, T_q, d_k)
        k = x_kv @ P["W_k"][:, cols] + P["b_k"][cols]              # (B, T_k, d_k)
        v = x_kv @ P["W_v"][:, cols] + P["b_v"][cols]              # (B, T_k, d_k)
        head, w = scaled_dot_product_attention(q, k, v, mask=mask)
        np.testing.assert_allclose(mha.attn_weights[:, i], w, rtol=1e-12, atol=1e-14)
        heads.append(head)
    expected = np.concatenate(heads, axis=-1) @ P["W_o"] + P["b_o"]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert mha.attn_weights.shape == (2, h, 3, 5)


def test_mha_public_pieces_match_forward():
    """project / split_heads / merge_heads / project_qkv / keys_values / attend_cached rebuild forward."""
    rng = np.random.default_rng(11)
    d, h = 12, 3
    mha = mha_module(rng, d, h)
    x_q, x_kv = randn(rng, 2, 3, d), randn(rng, 2, 5, d)
    P = mha.params
    np.testing.assert_allclose(mha.project(x_q, "k"), x_q @ P["W_k"] + P["b_k"], rtol=1e-12, atol=1e-14)
    heads = mha.split_heads(x_kv)                                  # (B, h, T_k, d_k)
    assert heads.shape == (2, h, 5, d // h)
    np.testing.assert_array_equal(heads[:, 1], x_kv[:, :, d // h:2 * d // h])   # head i: columns i d_k ..
    np.testing.assert_array_equal(mha.merge_heads(heads), x_kv)
    for got, name in zip(mha.project_qkv(x_q), "qkv"):
        np.testing.assert_allclose(got, mha.split_heads(mha.project(x_q, name)), rtol=1e-12, atol=1e-14)
    mask = padding_mask([5, 4], 5)
    out = mha.forward(x_q, x_kv, mask=mask)                        # (B, T_q, d)
    weights = mha.attn_weights
    k, v = mha.keys_values(x_kv)                                   # (B, h, T_k, d_k) each
    cached = mha.attend_cached(x_q, k, v, mask=mask)
    np.testing.assert_allclose(cached, out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mha.attn_weights, weights, rtol=1e-12, atol=1e-14)
    with pytest.raises(TypeError):                                 # no backward through a cached call
        mha.backward(np.ones_like(out))


def test_mha_self_attention_is_permutation_equivariant():
    rng = np.random.default_rng(9)
    mha = mha_module(rng)
    x = randn(rng, 2, 6, 8)
    perm = rng.permutation(6)
    out = mha.forward(x)
    np.testing.assert_allclose(mha.forward(x[:, perm]), out[:, perm], rtol=1e-10, atol=1e-12)


def test_positional_encoding_breaks_permutation_equivariance():
    rng = np.random.default_rng(9)
    mha, pe = mha_module(rng), SinusoidalPositionalEncoding(16, 8, dtype=F64)
    x = randn(rng, 1, 6, 8)
    perm = np.array([1, 0, 2, 3, 4, 5])
    out = mha.forward(pe.forward(x))
    assert not np.allclose(mha.forward(pe.forward(x[:, perm])), out[:, perm])


def test_mha_causal_output_does_not_depend_on_the_future():
    rng = np.random.default_rng(10)
    mha = mha_module(rng)
    x = randn(rng, 2, 6, 8)
    out = mha.forward(x, mask=causal_mask(6))
    x2 = x.copy()
    x2[:, 4:] = randn(rng, 2, 2, 8) * 5
    out2 = mha.forward(x2, mask=causal_mask(6))
    np.testing.assert_allclose(out2[:, :4], out[:, :4], rtol=1e-12, atol=1e-12)
    assert not np.allclose(out2[:, 4:], out[:, 4:])
    assert np.all(mha.attn_weights[..., np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] == 0)


def test_layernorm_normalizes_rows():
    rng = np.random.default_rng(11)
    ln = LayerNorm(16, eps=1e-12, dtype=F64)
    ln.params["gamma"][...] = randn(rng, 16)
    ln.params["beta"][...] = randn(rng, 16)
    x = randn(rng, 3, 5, 16) * 7 + 3
    ln.forward(x)
    xhat, _ = ln.cache                                            # before the affine part
    np.testing.assert_allclose(xhat.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(xhat.var(axis=-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(ln.forward(x), xhat * ln.params["gamma"] + ln.params["beta"], rtol=1e-12)
    ln32 = LayerNorm(16)                                          # default eps, float32
    y = ln32.forward(x.astype(np.float32))
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=-1), 1.0, rtol=1e-4)


def test_dropout_eval_is_identity_and_train_keeps_expectation():
    rng = np.random.default_rng(12)
    drop = Dropout(0.3, rng=rng)
    x = np.abs(randn(rng, 400, 500, dtype=np.float32)) + 0.5
    drop.eval()
    assert drop.forward(x) is x or np.array_equal(drop.forward(x), x)
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), 1.0)
    drop.train()
    y = drop.forward(x)
    assert y.dtype == np.float32
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.005                    # 200,000 draws: std 0.001
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    assert abs(y.mean() / x.mean() - 1) < 0.01                    # inverted scaling keeps E[y] = x
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), np.where(kept, np.float32(1 / 0.7), 0))


def test_mha_dropout_only_in_training():
    rng = np.random.default_rng(13)
    mha = MultiHeadAttention(8, 2, dropout=0.5, rng=rng, dtype=F64)
    x = randn(rng, 2, 5, 8)
    mha.eval()
    a = mha.forward(x)
    np.testing.assert_allclose(mha.attn_weights.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(mha.forward(x), a)
    mha.train()
    b = mha.forward(x)
    assert not np.allclose(a, b) and np.any(mha.attn_weights == 0)


def test_gradients_accumulate_and_zero_grad_clears():
    rng = np.random.default_rng(14)
    model = ModuleList([mha_module(rng), LayerNorm(8, dtype=F64), FeedForward(8, 16, rng=rng, dtype=F64),
                        Linear(8, 8, rng=rng, dtype=F64)])
    x = randn(rng, 2, 4, 8)
    dout = randn(rng, 2, 4, 8)

    def step():
        h = x
        for m in model:
            h = m.forward(h)
        g = dout
        for m in reversed(model.items):
            g = m.backward(g)

    step()
    once = {name: g.copy() for name, _, g in model.named_parameters()}
    assert all(np.any(g != 0) for name, g in once.items() if name != "0.b_k")
    step()
    for name, _, g in model.named_parameters():
        np.testing.assert_allclose(g, 2 * once[name], rtol=1e-12, atol=1e-15)
    model.zero_grad()
    for _, g in model.parameters():
        assert not np.any(g)


def test_tied_weight_gets_both_contributions():
    """A weight used by two modules appears once in parameters() and its gradient sums both uses."""
    rng = np.random.default_rng(15)
    a, b = Linear(3, 3, bias=False, rng=rng, dtype=F64), Linear(3, 3, bias=False, rng=rng, dtype=F64)
    b.params["W"] = a.params["W"]
    b.grads["W"] = a.grads["W"]
    pair = ModuleList([a, b])
    assert len(pair.parameters()) == 1
    x = randn(rng, 4, 3)
    pair.zero_grad()
    y = b.forward(a.forward(x))
    a.backward(b.backward(np.ones_like(y)))
    num = numerical_gradient(lambda: np.sum(b.forward(a.forward(x))), a.params["W"])
    assert rel_error(a.grads["W"], num) < TOL


# ----------------------------------------------------------------------------
# Module machinery: names, train/eval, state dicts, initialization

def test_named_parameters_train_eval_and_state_dict_round_trip():
    rng = np.random.default_rng(16)

    class Block(Module):
        """Two children and a list of modules, as models in attnkit.models are built."""

        def __init__(self):
            super().__init__()
            self.attn = MultiHeadAttention(8, 2, dropout=0.1, rng=rng)
            self.ffs = ModuleList([FeedForward(8, 16, rng=rng), Dropout(0.1, rng=rng)])

    block = Block()
    names = [n for n, _, _ in block.named_parameters()]
    assert names[:2] == ["attn.W_q", "attn.b_q"] and "ffs.0.fc2.b" in names and len(names) == 12
    assert block.num_parameters() == 4 * (64 + 8) + (8 * 16 + 16) + (16 * 8 + 8)
    block.eval()
    assert not block.attn.training and not block.ffs[1].training and not block.ffs[0].fc1.training
    block.train()
    assert block.ffs[1].training
    state = block.state_dict()
    for p, _ in block.parameters():
        p += 1.0
    assert not np.array_equal(block.attn.params["W_q"], state["attn.W_q"])   # the state is a copy
    block.load_state_dict(state)
    for name, p, _ in block.named_parameters():
        np.testing.assert_array_equal(p, state[name])


def test_load_state_dict_errors_name_the_parameter_and_shapes():
    mha = MultiHeadAttention(8, 2)
    state = mha.state_dict()
    state["W_v"] = np.zeros((8, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"'W_v' has shape \(8, 8\) in the model but \(8, 4\) in the state"):
        mha.load_state_dict(state)
    state = mha.state_dict()
    del state["b_o"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing \['b_o'\], unexpected \['extra'\]"):
        mha.load_state_dict(state)


def test_initialization():
    rng = np.random.default_rng(17)
    lin = Linear(300, 200, rng=rng)
    a = np.sqrt(6 / 500)                                            # Xavier uniform bound
    W = lin.params["W"]
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.99 * a
    np.testing.assert_allclose(W.std(), a / np.sqrt(3), rtol=0.02)
    np.testing.assert_array_equal(lin.params["b"], 0)
    emb = Embedding(1000, 64, rng=rng)
    np.testing.assert_allclose(emb.params["W"].std(), 1 / np.sqrt(64), rtol=0.02)
    mha = MultiHeadAttention(64, 4, rng=rng)
    assert np.abs(mha.params["W_q"]).max() <= np.sqrt(6 / 128)
    ln = LayerNorm(5)
    np.testing.assert_array_equal(ln.params["gamma"], 1)
    np.testing.assert_array_equal(ln.params["beta"], 0)


# ----------------------------------------------------------------------------
# dtypes

def all_modules(dtype):
    rng = np.random.default_rng(18)
    return [Linear(8, 8, rng=rng, dtype=dtype), LayerNorm(8, dtype=dtype),
            FeedForward(8, 16, "relu", rng=rng, dtype=dtype), FeedForward(8, 16, "gelu", rng=rng, dtype=dtype),
            Dropout(0.2, rng=rng), SinusoidalPositionalEncoding(10, 8, dtype=dtype),
            MultiHeadAttention(8, 2, dropout=0.2, rng=rng, dtype=dtype)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_modules_keep_dtype(dtype):
    x = np.random.default_rng(19).standard_normal((2, 5, 8)).astype(dtype)
    for m in all_modules(dtype):
        y = m.forward(x)
        assert y.dtype == dtype, type(m).__name__
        assert m.backward(np.ones_like(y)).dtype == dtype, type(m).__name__
        for name, p, g in m.named_parameters():
            assert p.dtype == dtype and g.dtype == dtype, f"{type(m).__name__}.{name}"
    emb = Embedding(10, 8, dtype=dtype)
    assert emb.forward(np.array([[1, 2]])).dtype == dtype
    mha = MultiHeadAttention(8, 2, dtype=dtype)
    dx_q, dx_kv = mha.backward(np.ones_like(mha.forward(x[:, :3], x)))
    assert dx_q.dtype == dtype and dx_kv.dtype == dtype and dx_kv.shape == (2, 5, 8)


# ----------------------------------------------------------------------------
# bad input

def test_bad_module_construction():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by num_heads=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match=r"attention dropout must be in \[0, 1\), got 1.5"):
        MultiHeadAttention(8, 2, dropout=1.5)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got -0.1"):
        Dropout(-0.1)
    with pytest.raises(ValueError, match="activation must be 'relu' or 'gelu', got 'tanh'"):
        FeedForward(8, 16, activation="tanh")


def test_bad_module_inputs():
    rng = np.random.default_rng(20)
    x = randn(rng, 2, 5, 8, dtype=np.float32)
    with pytest.raises(ValueError, match=r"d_in=6, got shape \(2, 5, 8\)"):
        Linear(6, 4).forward(x)
    with pytest.raises(TypeError, match="x must be a floating-point array.*int64"):
        Linear(8, 4).forward(np.ones((2, 8), dtype=np.int64))
    with pytest.raises(ValueError, match=r"d_model=6, got shape \(2, 5, 8\)"):
        LayerNorm(6).forward(x)
    with pytest.raises(ValueError, match=r"d_model=6\), got shape \(2, 5, 8\)"):
        SinusoidalPositionalEncoding(10, 6).forward(x)
    with pytest.raises(ValueError, match="length 5 at offset 8 exceeds max_len=10"):
        SinusoidalPositionalEncoding(10, 8).forward(x, offset=8)
    with pytest.raises(ValueError, match="offset must be a non-negative integer, got -1"):
        SinusoidalPositionalEncoding(10, 8).forward(x, offset=-1)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, d_model=8\), got shape \(8,\)"):
        SinusoidalPositionalEncoding(10, 8).forward(x[0, 0])
    with pytest.raises(TypeError, match="floating-point"):
        Dropout(0.5).forward(np.ones(3, dtype=np.int32))
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"x_q must have shape \(B, T, d_model=8\), got \(2, 5, 6\)"):
        mha.forward(x[..., :6])
    with pytest.raises(ValueError, match=r"x_kv must have shape \(B, T, d_model=8\), got \(5, 8\)"):
        mha.forward(x, x[0])
    with pytest.raises(ValueError, match=r"same batch size, got \(2, 5, 8\) and \(1, 5, 8\)"):
        mha.forward(x, x[:1])
    with pytest.raises(TypeError, match="x_q must be a floating-point array"):
        mha.forward(np.ones((2, 5, 8), dtype=np.int64))
    with pytest.raises(TypeError, match="mask must be boolean.*int64"):
        mha.forward(x, mask=np.tril(np.ones((5, 5), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\).*\(2, 2, 5, 5\)"):
        mha.forward(x, mask=causal_mask(4))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 1, 1, 3\).*\(2, 2, 5, 3\)"):
        mha.forward(x, x[:, :3], mask=padding_mask([1, 2, 3], 3))     # a mask for another batch


def test_bad_token_ids():
    emb = Embedding(10, 4)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 10\).*\[10, 12\]"):
        emb.forward(np.array([[1, 10, 12]]))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        emb.forward(np.array([[-1, 3]]))
    with pytest.raises(TypeError, match="integer token ids, got dtype float64"):
        emb.forward(np.array([[1.0, 2.0]]))
    with pytest.raises(TypeError, match="integer token ids, got dtype bool"):
        emb.forward(np.array([[True, False]]))
