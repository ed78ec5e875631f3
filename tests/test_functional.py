"""Tests of attnkit.functional: gradients against finite differences, invariants, robustness, bad input."""
import numpy as np
import pytest

from attnkit import functional
from attnkit.functional import (attention_backward, attention_forward, causal_mask, log_softmax,
                                log_softmax_backward, padding_mask, scaled_dot_product_attention,
                                softmax, softmax_backward)
from attnkit.gradcheck import numerical_gradient, rel_error
from attnkit.seeding import make_rng

TOL = 1e-6     # relative error (norm based) accepted for a float64 gradient


def randn(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------
# softmax and log_softmax

@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_gradient(axis):
    rng = np.random.default_rng(0)
    x, dout = randn(rng, 3, 4, 5), randn(rng, 3, 4, 5)
    y = softmax(x, axis=axis)
    dx = softmax_backward(dout, y, axis=axis)
    num = numerical_gradient(lambda: np.sum(softmax(x, axis=axis) * dout), x)
    assert rel_error(dx, num) < TOL


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_gradient(axis):
    rng = np.random.default_rng(1)
    x, dout = randn(rng, 4, 6), randn(rng, 4, 6)
    dx = log_softmax_backward(dout, log_softmax(x, axis=axis), axis=axis)
    num = numerical_gradient(lambda: np.sum(log_softmax(x, axis=axis) * dout), x)
    assert rel_error(dx, num) < TOL


def test_softmax_rows_sum_to_one_and_shift_invariant():
    rng = np.random.default_rng(2)
    x = randn(rng, 5, 7)
    y = softmax(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(y > 0)
    shift = randn(rng, 5, 1) * 100
    np.testing.assert_allclose(softmax(x + shift), y, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(np.exp(log_softmax(x)), y, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(x + shift), log_softmax(x), rtol=1e-10, atol=1e-12)


def test_softmax_large_float32_scores_stay_finite():
    x = np.array([[1e4, -1e4, 0.0, 9999.0]], dtype=np.float32)
    y, logp = softmax(x), log_softmax(x)
    assert y.dtype == np.float32 and logp.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.isfinite(logp[0, [0, 2, 3]]).all()
    np.testing.assert_allclose(y.sum(), 1.0, rtol=1e-6)
    assert y[0, 0] > y[0, 3] > 0 and y[0, 1] == 0


def test_softmax_of_all_minus_inf_is_zero_not_nan():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    y = softmax(x)
    np.testing.assert_array_equal(y, [[0.0, 0.0], [1.0, 0.0]])
    logp = log_softmax(x)
    assert not np.any(np.isnan(logp))
    assert logp[1, 0] == 0.0 and np.all(np.isneginf(logp[0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_keeps_dtype(dtype):
    x = np.random.default_rng(3).standard_normal((2, 3)).astype(dtype)
    y = softmax(x)
    assert y.dtype == dtype
    assert log_softmax(x).dtype == dtype
    assert softmax_backward(x, y).dtype == dtype
    assert log_softmax_backward(x, log_softmax(x)).dtype == dtype


def test_softmax_rejects_integers():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        softmax(np.arange(4))
    with pytest.raises(TypeError, match="floating-point"):
        log_softmax(np.arange(4))


# ----------------------------------------------------------------------------
# attention gradients

def attention_gradcheck(q, k, v, mask=None, dropout_p=0.0, seed=0):
    """Max relative error of dq, dk, dv against central differences (dropout replays one rng)."""
    dout = np.random.default_rng(99).standard_normal(q.shape[:-1] + v.shape[-1:])

    def forward():
        return attention_forward(q, k, v, mask=mask, dropout_p=dropout_p,
                                 rng=np.random.default_rng(seed))

    out, cache = forward()
    grads = attention_backward(dout, cache)
    errors = []
    for x, g in zip((q, k, v), grads):
        assert g.shape == x.shape
        num = numerical_gradient(lambda: np.sum(forward()[0] * dout), x)
        errors.append(rel_error(g, num))
    return max(errors)


CASES = {
    # name: (q shape, k shape, v shape, mask)
    "single": ((4, 3), (4, 3), (4, 3), None),
    "batch_heads": ((2, 3, 4, 3), (2, 3, 4, 3), (2, 3, 4, 5), None),
    "causal": ((2, 2, 4, 3), (2, 2, 4, 3), (2, 2, 4, 3), causal_mask(4)),
    "padding": ((3, 2, 4, 3), (3, 2, 4, 3), (3, 2, 4, 2), padding_mask([4, 2, 1], 4)),
    "cross": ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3), None),
    "cross_padding": ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3), padding_mask([5, 3], 5)),
    "full_mask": ((2, 2, 4, 3), (2, 2, 4, 3), (2, 2, 4, 3),
                  np.broadcast_to(np.array([True, True, False, True])[:, None], (4, 4)) & causal_mask(4)),
    # one sequence (B = 1): threads split its heads; a padding mask, and a mask per head
    "one_sequence": ((1, 3, 5, 4), (1, 3, 6, 4), (1, 3, 6, 2), padding_mask([4], 6)),
    "one_sequence_per_head": ((1, 3, 4, 3), (1, 3, 4, 3), (1, 3, 4, 3),
                              np.stack([causal_mask(4), causal_mask(4).T, np.eye(4, dtype=bool)])),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_gradient(name):
    qs, ks, vs, mask = CASES[name]
    rng = np.random.default_rng(4)
    q, k, v = randn(rng, *qs), randn(rng, *ks), randn(rng, *vs)
    assert attention_gradcheck(q, k, v, mask) < TOL


@pytest.mark.parametrize("mask", [None, causal_mask(5)])
def test_attention_gradient_with_dropout(mask):
    rng = np.random.default_rng(5)
    q, k, v = randn(rng, 2, 2, 5, 3), randn(rng, 2, 2, 5, 3), randn(rng, 2, 2, 5, 4)
    out, cache = attention_forward(q, k, v, mask=mask, dropout_p=0.4, rng=np.random.default_rng(0))
    assert np.any(cache["weights"] == 0) and np.any(cache["weights"] > cache["probs"])  # dropout acted
    assert attention_gradcheck(q, k, v, mask, dropout_p=0.4) < TOL


def test_fully_masked_query_gets_zero_weights_output_and_gradient():
    rng = np.random.default_rng(6)
    q, k, v = randn(rng, 2, 3, 4), randn(rng, 2, 5, 4), randn(rng, 2, 5, 4)
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False                                    # query 1 may attend to nothing
    out, cache = attention_forward(q, k, v, mask=mask)
    assert not np.any(np.isnan(out))
    np.testing.assert_array_equal(cache["weights"][:, 1], 0.0)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    dout = np.ones_like(out)
    dq, dk, dv = attention_backward(dout, cache)
    np.testing.assert_array_equal(dq[:, 1], 0.0)
    # with only query 1 receiving a gradient, nothing flows back at all
    dout_only1 = np.zeros_like(out)
    dout_only1[:, 1] = 1.0
    for g in attention_backward(dout_only1, cache):
        np.testing.assert_array_equal(g, 0.0)


def test_attention_gradients_accumulate_nothing_between_calls():
    """attention_backward is a pure function of (dout, cache): calling it twice gives the same answer."""
    rng = np.random.default_rng(7)
    q, k, v = randn(rng, 2, 4, 3), randn(rng, 2, 4, 3), randn(rng, 2, 4, 3)
    out, cache = attention_forward(q, k, v, mask=causal_mask(4))
    dout = randn(rng, 2, 4, 3)
    g1 = attention_backward(dout, cache)
    g2 = attention_backward(dout, cache)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(cache["out"], out)


# ----------------------------------------------------------------------------
# attention invariants

def reference_attention(q, k, v, mask=None):
    """The textbook formula, written independently of attnkit."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


def test_attention_matches_reference_formula():
    rng = np.random.default_rng(8)
    q, k, v = randn(rng, 2, 3, 4, 5), randn(rng, 2, 3, 6, 5), randn(rng, 2, 3, 6, 2)
    out, w = scaled_dot_product_attention(q, k, v)
    ref_out, ref_w = reference_attention(q, k, v)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12)
    mask = causal_mask(6)[:4]
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(out, reference_attention(q, k, v, mask)[0], rtol=1e-12, atol=1e-12)


def test_self_attention_is_permutation_equivariant():
    rng = np.random.default_rng(9)
    x = randn(rng, 2, 6, 4)
    perm = rng.permutation(6)
    out, w = scaled_dot_product_attention(x, x, x)
    out_p, w_p = scaled_dot_product_attention(x[:, perm], x[:, perm], x[:, perm])
    np.testing.assert_allclose(out_p, out[:, perm], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w_p, w[:, perm][:, :, perm], rtol=1e-12, atol=1e-12)
    assert not np.allclose(out_p, out)            # the permutation did move things


def test_causal_output_does_not_depend_on_the_future():
    rng = np.random.default_rng(10)
    T = 6
    q, k, v = randn(rng, 2, T, 4), randn(rng, 2, T, 4), randn(rng, 2, T, 4)
    out, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))
    for t in range(T - 1):
        q2, k2, v2 = q.copy(), k.copy(), v.copy()
        for a in (q2, k2, v2):
            a[:, t + 1:] = randn(rng, 2, T - t - 1, 4) * 10
        out2, _ = scaled_dot_product_attention(q2, k2, v2, mask=causal_mask(T))
        np.testing.assert_array_equal(out2[:, :t + 1], out[:, :t + 1])
        assert not np.allclose(out2[:, t + 1:], out[:, t + 1:])


def test_masked_positions_get_exactly_zero_weight():
    rng = np.random.default_rng(11)
    q, k, v = randn(rng, 3, 2, 5, 4), randn(rng, 3, 2, 5, 4), randn(rng, 3, 2, 5, 4)
    mask = padding_mask([5, 3, 1], 5) & causal_mask(5)            # (3, 1, 5, 5)
    _, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.all(w[~np.broadcast_to(mask, w.shape)] == 0.0)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12)   # every query keeps key 0


def test_masking_uses_minus_inf_not_minus_1e9():
    """Scores far below -1e9: a -1e9 fill would hand the masked keys all the weight."""
    q = np.array([[1.0, 0.0]])                                    # (T_q=1, d_k=2)
    k = np.array([[-1e12, 0.0], [-2e12, 0.0], [1e30, 0.0]])       # (T_k=3, d_k): huge finite last score
    v = np.array([[1.0], [2.0], [3.0]])
    mask = np.array([[True, True, False]])
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert w[0, 2] == 0.0                                         # exactly, despite a score of ~7e29
    np.testing.assert_array_equal(w[0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(out, [[1.0]])


def test_large_float32_scores_give_finite_output():
    rng = np.random.default_rng(12)
    q = (rng.standard_normal((2, 4, 8)) * 40).astype(np.float32)  # scores of magnitude ~1e4
    k = (rng.standard_normal((2, 4, 8)) * 40).astype(np.float32)
    v = rng.standard_normal((2, 4, 8)).astype(np.float32)
    out, cache = attention_forward(q, k, v, mask=causal_mask(4))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(8)
    assert np.abs(scores).max() > 1e3
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert np.all(np.isfinite(cache["weights"]))
    for g in attention_backward(np.ones_like(out), cache):
        assert g.dtype == np.float32 and np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_keeps_dtype(dtype, dropout_p):
    rng = np.random.default_rng(13)
    q, k, v = (randn(rng, 2, 3, 4, dtype=dtype) for _ in range(3))
    out, cache = attention_forward(q, k, v, mask=causal_mask(3), dropout_p=dropout_p, rng=rng)
    assert out.dtype == dtype and cache["weights"].dtype == dtype
    for g in attention_backward(out, cache):
        assert g.dtype == dtype


def test_float32_attention_agrees_with_float64():
    rng = np.random.default_rng(14)
    q, k, v = randn(rng, 2, 2, 6, 8), randn(rng, 2, 2, 6, 8), randn(rng, 2, 2, 6, 8)
    out64, c64 = attention_forward(q, k, v, mask=causal_mask(6))
    out32, c32 = attention_forward(*(a.astype(np.float32) for a in (q, k, v)), mask=causal_mask(6))
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = randn(rng, 2, 2, 6, 8)
    for g32, g64 in zip(attention_backward(dout.astype(np.float32), c32), attention_backward(dout, c64)):
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_attention_dropout_keeps_expectation_and_rate():
    rng = np.random.default_rng(15)
    q, k, v = randn(rng, 8, 16, 4), randn(rng, 8, 16, 4), randn(rng, 8, 16, 4)
    p = 0.25
    _, probs = scaled_dot_product_attention(q, k, v)
    draws = np.stack([scaled_dot_product_attention(q, k, v, dropout_p=p, rng=rng)[1] for _ in range(200)])
    dropped = np.mean(draws == 0)
    assert abs(dropped - p) < 0.01                                 # 409,600 Bernoulli draws
    # mean over 200 draws of w * keep / (1 - p): std of the mean is sqrt(p / (1 - p) / 200) * w
    err = np.abs(draws.mean(axis=0) - probs) / probs
    assert np.mean(err) < 0.05 and err.max() < 0.3


def test_attention_dropout_is_reproducible_with_a_seeded_rng():
    rng = np.random.default_rng(16)
    q = randn(rng, 2, 5, 4)
    a = scaled_dot_product_attention(q, q, q, dropout_p=0.5, rng=np.random.default_rng(3))[1]
    b = scaled_dot_product_attention(q, q, q, dropout_p=0.5, rng=np.random.default_rng(3))[1]
    c = scaled_dot_product_attention(q, q, q, dropout_p=0.5, rng=np.random.default_rng(4))[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------------------
# masks

def test_causal_mask():
    m = causal_mask(4)
    assert m.shape == (4, 4) and m.dtype == np.bool_
    np.testing.assert_array_equal(m, np.tril(np.ones((4, 4))) == 1)
    assert m[2, 2] and m[2, 0] and not m[2, 3]


def test_padding_mask():
    m = padding_mask([3, 0, 1], 3)
    assert m.shape == (3, 1, 1, 3) and m.dtype == np.bool_
    np.testing.assert_array_equal(m[:, 0, 0], [[1, 1, 1], [0, 0, 0], [1, 0, 0]])


# ----------------------------------------------------------------------------
# bad input: the error type and a message naming the offending shapes or values

def qkv(*shapes, dtype=np.float64):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def test_bad_attention_inputs():
    q, k, v = qkv((2, 4, 3), (2, 5, 3), (2, 6, 3))
    with pytest.raises(ValueError, match=r"same length T_k: k \(2, 5, 3\), v \(2, 6, 3\)"):
        attention_forward(q, k, v)
    q, k, v = qkv((2, 4, 3), (2, 5, 2), (2, 5, 3))
    with pytest.raises(ValueError, match=r"same size d_k: q \(2, 4, 3\), k \(2, 5, 2\)"):
        attention_forward(q, k, v)
    q, k, v = qkv((2, 4, 3), (3, 4, 3), (3, 4, 3))
    with pytest.raises(ValueError, match=r"leading.*q \(2, 4, 3\)"):
        attention_forward(q, k, v)
    q, k, v = qkv((2, 4, 3), (2, 0, 3), (2, 0, 3))
    with pytest.raises(ValueError, match=r"at least one key, got k of shape \(2, 0, 3\)"):
        attention_forward(q, k, v)
    q, k, v = qkv((4,), (4,), (4,))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        attention_forward(q, k, v)
    q, k, v = qkv((4, 3), (4, 3), (4, 3))
    with pytest.raises(TypeError, match="q must be a floating-point array.*int64"):
        attention_forward(np.ones((4, 3), dtype=np.int64), k, v)
    with pytest.raises(TypeError, match="one dtype.*float32"):
        attention_forward(q.astype(np.float32), k, v)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got 1.0"):
        attention_forward(q, k, v, dropout_p=1.0)
    with pytest.raises(ValueError, match="needs an rng"):
        attention_forward(q, k, v, dropout_p=0.1)


def test_bad_masks():
    q, k, v = qkv((2, 2, 4, 3), (2, 2, 5, 3), (2, 2, 5, 3))
    with pytest.raises(TypeError, match="mask must be boolean.*int64"):
        attention_forward(q, k, v, mask=np.ones((4, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="mask must be boolean.*float64"):
        attention_forward(q, k, v, mask=np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast.*\(2, 2, 4, 5\)"):
        attention_forward(q, k, v, mask=causal_mask(4))
    with pytest.raises(ValueError, match=r"mask of shape \(5,\)"):
        attention_forward(q, k, v, mask=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match=r"mask of shape \(1, 1, 1, 1, 5\)"):
        attention_forward(q, k, v, mask=np.ones((1, 1, 1, 1, 5), dtype=bool))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 1, 1, 5\)"):
        attention_forward(q, k, v, mask=padding_mask([5, 5, 5], 5))


def test_bad_mask_arguments():
    with pytest.raises(ValueError, match=r"every length must lie in \[0, T=4\], got \[2, 5\]"):
        padding_mask([2, 5], 4)
    with pytest.raises(ValueError, match=r"got \[-1, 2\]"):
        padding_mask([-1, 2], 4)
    with pytest.raises(ValueError, match="1-D array of integers.*float64"):
        padding_mask([1.5, 2.0], 4)
    with pytest.raises(ValueError, match="positive integer length, got 0"):
        causal_mask(0)
    with pytest.raises(ValueError, match="positive integer length, got 2.5"):
        causal_mask(2.5)


# ----------------------------------------------------------------------------
# blocked computation: long sequences are processed a block of query rows at a time

@pytest.mark.parametrize("name", ["batch_heads", "causal", "padding", "cross", "full_mask"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_in_blocks_of_query_rows_matches_one_block(name, dropout_p):
    qs, ks, vs, mask = CASES[name]
    rng = np.random.default_rng(17)
    q, k, v = randn(rng, *qs), randn(rng, *ks), randn(rng, *vs)
    dout = randn(rng, *q.shape[:-1], v.shape[-1])
    def run(block_bytes=None):
        return attention_forward(q, k, v, mask, dropout_p, np.random.default_rng(1), block_bytes=block_bytes)
    out1, cache1 = run()
    grads1 = attention_backward(dout, cache1)
    assert len(functional.query_blocks(4, q.shape[-2], k.shape[-2], 8, block_bytes=1)) == q.shape[-2]
    out2, cache2 = run(block_bytes=1)                             # one query row per block
    np.testing.assert_allclose(out2, out1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache2["weights"], cache1["weights"], rtol=1e-12, atol=1e-15)
    for g2, g1 in zip(attention_backward(dout, cache2), grads1):
        np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-14)
    assert attention_gradcheck(q, k, v, mask, dropout_p) < TOL


def test_query_blocks_cover_the_rows_once():
    blocks = functional.query_blocks(lead_size=64, T_q=2048, T_k=2048, itemsize=4, block_bytes=64 * 2 ** 20)
    assert [b.stop - b.start for b in blocks] == [128] * 16
    blocks = functional.query_blocks(64, 100, 7, 4, block_bytes=64 * 7 * 4 * 30)   # 30 rows a block
    assert np.array_equal(np.concatenate([np.arange(100)[b] for b in blocks]), np.arange(100))
    assert [b.stop - b.start for b in blocks] == [30, 30, 30, 10]


def test_attention_backward_checks_dout():
    q, k, v = qkv((2, 4, 3), (2, 4, 3), (2, 4, 3))
    out, cache = attention_forward(q, k, v)
    with pytest.raises(ValueError, match=r"shape of the attention output \(2, 4, 3\), got \(2, 3, 4\)"):
        attention_backward(np.ones((2, 3, 4)), cache)
    with pytest.raises(TypeError, match="dout must be a floating-point array"):
        attention_backward(np.ones((2, 4, 3), dtype=np.int64), cache)


# ----------------------------------------------------------------------------
# threads: run_chunks splits the batch over threads; the numbers must not depend on it

def plain_attention_reference(q, k, v, dout):
    """attention_forward / attention_backward written out in one block, in the same order of
    operations on every element: the trained models in the stored notebooks depend on these bits."""
    scale = 1.0 / np.sqrt(q.shape[-1])
    w = np.matmul(q * q.dtype.type(scale), np.swapaxes(k, -1, -2))    # (..., T_q, T_k)
    w -= np.max(w, axis=-1, keepdims=True)
    np.exp(w, out=w)
    w *= np.reciprocal(np.sum(w, axis=-1, keepdims=True))
    out = np.matmul(w, v)                                               # (..., T_q, d_v)
    dv = np.matmul(np.swapaxes(w, -1, -2), dout)                        # (..., T_k, d_v)
    ds = np.matmul(dout, np.swapaxes(v, -1, -2))                        # (..., T_q, T_k)
    ds -= np.sum(dout * out, axis=-1, keepdims=True)
    ds *= w
    dq = np.matmul(ds, k) * q.dtype.type(scale)                         # (..., T_q, d_k)
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * q.dtype.type(scale)    # (..., T_k, d_k)
    return out, dq, dk, dv


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_attention_arithmetic_is_pinned_bit_for_bit(dtype, threads):
    from threadpoolctl import threadpool_limits
    rng = make_rng(60)
    q, k, v, dout = (randn(rng, 6, 4, 40, 24, dtype=dtype) for _ in range(4))   # 1/sqrt(24): not exact
    with threadpool_limits(threads):
        out, cache = attention_forward(q, k, v)
        got = (out, *attention_backward(dout, cache))
    for g, want in zip(got, plain_attention_reference(q, k, v, dout)):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("name", ["batch_heads", "padding", "cross_padding", "full_mask", "one_sequence",
                                  "one_sequence_per_head"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_threaded_chunks_equal_one_thread(name, dropout_p, monkeypatch):
    from threadpoolctl import threadpool_limits
    pools = []
    real_pool = functional.chunk_pool
    monkeypatch.setattr(functional, "chunk_pool", lambda n: pools.append(n) or real_pool(n))
    monkeypatch.setattr(functional, "CHUNK_FLOPS", 0)           # thread even these small cases
    qs, ks, vs, mask = CASES[name]
    rng = make_rng(61)
    for dtype in (np.float64, np.float32):
        q, k, v = randn(rng, *qs, dtype=dtype), randn(rng, *ks, dtype=dtype), randn(rng, *vs, dtype=dtype)
        dout = randn(rng, *q.shape[:-1], v.shape[-1], dtype=dtype)
        bias = randn(rng, q.shape[-2], k.shape[-2])                     # (T_q, T_k)
        results = []
        for n in (1, 2):
            with threadpool_limits(n):
                out, cache = attention_forward(q, k, v, mask, dropout_p, make_rng(1), bias=bias)
                results.append((out, cache["weights"], *attention_backward(dout, cache)))
        for one, two in zip(*results):
            assert two.dtype == dtype
            np.testing.assert_array_equal(two, one)
    assert len(pools) == 2 * 2                  # both 2-thread forwards and backwards used the pool


def test_small_calls_stay_in_the_calling_thread(monkeypatch):
    """With less than two chunks' worth of work (2 CHUNK_FLOPS) attention runs without the pool
    (waking it costs more than the work); with more, and 2 BLAS threads, it uses the pool, in
    chunks of at least CHUNK_FLOPS, and at least two of up to BIG_CHUNK_FLOPS; the numbers are
    the same."""
    from threadpoolctl import threadpool_limits
    pools, sizes = [], []
    real_pool = functional.chunk_pool
    monkeypatch.setattr(functional, "chunk_pool", lambda n: pools.append(n) or real_pool(n))
    rng = make_rng(64)
    q, k, v, dout = (randn(rng, 4, 2, 16, 8, dtype=np.float32) for _ in range(4))
    flops = functional.attention_flops([4, 2], 16, 16, 8, 8)
    assert flops == 2 * 8 * 16 * 16 * 16 < 2 * functional.CHUNK_FLOPS
    results = []
    with threadpool_limits(2):
        for chunk_flops in (functional.CHUNK_FLOPS, 0):
            monkeypatch.setattr(functional, "CHUNK_FLOPS", chunk_flops)
            out, cache = attention_forward(q, k, v)
            results.append((out, functional.attention(q, k, v), *attention_backward(dout, cache)))
            assert len(pools) == (0 if chunk_flops else 3)              # forward, attention(), backward
        four, two = [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4)], [slice(0, 2), slice(2, 4)]
        for chunk_flops, big, want in ((flops / 4, 0, four), (flops / 2, 0, two), (flops / 1.5, 0, None),
                                       (flops / 4, flops / 4, four), (flops / 4, flops / 2, two),
                                       (flops / 4, flops, two), (flops / 1.5, flops, None)):
            monkeypatch.setattr(functional, "CHUNK_FLOPS", chunk_flops)
            monkeypatch.setattr(functional, "BIG_CHUNK_FLOPS", big)
            seen = []
            functional.run_chunks(seen.append, [4, 2], flops=flops)
            assert seen == (want or [slice(None)])                      # None: one call, one thread
        monkeypatch.setattr(functional, "CHUNK_FLOPS", flops / 4)
        monkeypatch.setattr(functional, "BIG_CHUNK_FLOPS", flops)      # alone: two chunks of two
        seen = []
        functional.run_chunks(seen.append, [4, 2], flops=flops, most=1)   # buffers of one index at most
        assert seen == four
    for small, threaded in zip(*results):
        np.testing.assert_array_equal(small, threaded)


def test_run_chunks_covers_every_index_once_and_reraises():
    from threadpoolctl import threadpool_limits
    for n in (1, 2):
        for size, serial in [(1, None), (3, None), (8, None), (13, None), (13, 4), (8, 1)]:
            seen = np.zeros(size, dtype=int)
            with threadpool_limits(n):
                functional.run_chunks(lambda bi: np.add.at(seen, np.arange(size)[bi], 1), [size, 2], serial)
            np.testing.assert_array_equal(seen, 1)

        def fail(bi):
            raise RuntimeError("chunk failed")
        with threadpool_limits(n), pytest.raises(RuntimeError, match="chunk failed"):
            functional.run_chunks(fail, [4, 2])
    with threadpool_limits(2):
        functional.run_chunks(lambda bi: None, [4])
        assert max(lib["num_threads"] for lib in functional.blas_controller().info()) == 2  # restored


def attention_in_forked_child():
    from threadpoolctl import threadpool_limits
    with threadpool_limits(2):
        x = np.ones((4, 2, 3, 2))
        return float(attention_forward(x, x, x)[0].sum())


def test_thread_pool_works_after_fork():
    """A forked child has none of its parent's pool threads: run_chunks must still finish there."""
    import multiprocessing
    from threadpoolctl import threadpool_limits
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    with threadpool_limits(2):
        attention_in_forked_child()                         # the parent makes its pool first
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.apply_async(attention_in_forked_child).get(timeout=120) == 4 * 2 * 3 * 2


# ----------------------------------------------------------------------------
# attention(): the forward alone, for inference, without the (..., T_q, T_k) weights

@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_inference_attention_equals_attention_forward_bit_for_bit(name, threads, monkeypatch):
    from threadpoolctl import threadpool_limits
    monkeypatch.setattr(functional, "CHUNK_FLOPS", 0)           # the threaded path too
    qs, ks, vs, mask = CASES[name]
    rng = make_rng(62)
    for dtype in (np.float64, np.float32):
        q, k, v = randn(rng, *qs, dtype=dtype), randn(rng, *ks, dtype=dtype), randn(rng, *vs, dtype=dtype)
        bias = randn(rng, q.shape[-2], k.shape[-2])                     # (T_q, T_k), cast like the scores
        with threadpool_limits(threads):
            for b in (None, bias):
                for block_bytes in (None, 1):                           # one block, or one query row a block
                    want, _ = attention_forward(q, k, v, mask, bias=b, block_bytes=block_bytes)
                    got = functional.attention(q, k, v, mask, bias=b, block_bytes=block_bytes)
                    assert got.dtype == dtype and got.shape == want.shape
                    np.testing.assert_array_equal(got, want)
    if name == "full_mask":                                             # the zero-output convention
        assert np.all(got[..., 2, :] == 0) and np.all(np.isfinite(got))


def test_inference_attention_keeps_no_weight_tensor():
    """Peak memory of attention() is the output plus one block buffer per thread, far below the
    (B, h, T, T) weights that attention_forward keeps."""
    import tracemalloc
    from threadpoolctl import threadpool_limits
    rng = make_rng(63)
    q, k, v = (randn(rng, 8, 4, 256, 16, dtype=np.float32) for _ in range(3))
    weights = q.shape[0] * q.shape[1] * 256 * 256 * 4                   # 8 MiB
    for threads in (1, 2):
        with threadpool_limits(threads):
            peaks = []
            for run in (lambda: attention_forward(q, k, v), lambda: functional.attention(q, k, v)):
                run()
                tracemalloc.start()
                run()
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
        assert peaks[0] > weights
        assert peaks[1] < q.nbytes + threads * weights // 8 + 2 ** 20     # out + a batch element per thread


def test_inference_attention_checks_its_inputs():
    q, k, v = qkv((2, 4, 3), (2, 5, 3), (2, 6, 3))
    with pytest.raises(ValueError, match=r"same length T_k"):
        functional.attention(q, k, v)
    q, k, v = qkv((2, 4, 3), (2, 5, 3), (2, 5, 3))
    with pytest.raises(ValueError, match="mask"):
        functional.attention(q, k, v, mask=np.ones((3, 5), dtype=bool))
    with pytest.raises(ValueError, match="bias"):
        functional.attention(q, k, v, bias=np.full((4, 5), np.nan))


def test_scratch_buffers_are_per_thread_reused_and_bounded(monkeypatch):
    import threading
    a = functional.scratch("test", (4, 8), np.float32)
    b = functional.scratch("test", (2, 8), np.float32)                  # smaller: the same memory
    assert a.shape == (4, 8) and b.shape == (2, 8) and np.shares_memory(a, b)
    assert not np.shares_memory(a, functional.scratch("test", (4, 8), np.float64))   # per dtype
    other = []
    t = threading.Thread(target=lambda: other.append(functional.scratch("test", (4, 8), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(a, other[0])                            # per thread
    monkeypatch.setattr(functional, "SCRATCH_BYTES", 64)
    c = functional.scratch("test_big", (100,), np.float32)              # 400 bytes: not kept
    assert not np.shares_memory(c, functional.scratch("test_big", (100,), np.float32))
