"""Checkers for chapter 1, "Attention as a soft lookup": softmax, attention weights, soft lookup.

    from attnkit.exercises.soft_lookup import check_softmax
    check_softmax(my_softmax)     # -> PASSED [...] or NOT YET [...] <one specific hint>

Each checker runs the learner's function on hidden cases (fixed seeds, so the same hint comes
back on every run) and stops at the first problem with a hint that says what to fix.
"""
import numpy as np

from .core import Hint, call, cases_rng, check, expect_array, expect_close

__all__ = ["check_softmax", "check_attention_weights", "check_soft_lookup"]


def _reference_softmax(x):
    """Stable softmax over the last axis, in float64 (the answer the checkers compare against)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def _keepdims_hint(h):
    """Rephrase the broadcasting error of a sum or max taken without keepdims=True."""
    msg = str(h)
    if "broadcast" in msg:
        return Hint(f"{msg}. A sum or max over the last axis of an (n, m) array has shape (n,), which "
                    "does not line up with (n, m): keep the reduced axis with keepdims=True, e.g. "
                    "np.max(x, axis=-1, keepdims=True) of shape (n, 1)")
    return h


def _call(fn, *args):
    try:
        return call(fn, *args)
    except Hint as h:
        raise _keepdims_hint(h) from None


def _call_qk(fn, *args):
    """Call fn(q, K, ...), explaining a matmul shape error in terms of keys stored as rows."""
    try:
        return _call(fn, *args)
    except Hint as h:
        if "matmul" in str(h) or "not aligned" in str(h):
            raise Hint(f"{h}. K holds one key per row, shape (n, d), so all the scores at once are "
                       "K @ q, of shape (n,)") from None
        raise


def _finite(out, what, situation):
    """Hint (naming the situation) when the output holds nan or inf."""
    if isinstance(out, np.ndarray) and np.issubdtype(out.dtype, np.floating) and not np.all(np.isfinite(out)):
        raise Hint(f"{what} contains nan or inf {situation}: np.exp overflowed. Subtract the maximum of "
                   "each row before np.exp (softmax(x) = softmax(x - max(x)), and then no exponent "
                   "exceeds 0)")


# ----------------------------------------------------------------------------
# exercise 1: a stable softmax over the last axis

def _softmax_cases(fn):
    rng = cases_rng(1)

    # 1. small values, a non-square 2-D array: the values, and the axis that sums to 1
    x = rng.normal(size=(3, 5))
    out = expect_array(_call(fn, x), x.shape, "softmax(x) for x of shape (3, 5)")
    _finite(out, "softmax(x)", "on small inputs")
    rows = out.sum(axis=-1)
    if not np.allclose(rows, 1.0):
        if np.allclose(out.sum(axis=0), 1.0):
            raise Hint("the columns of your result sum to 1, not the rows: softmax normalizes over the "
                       "last axis, so take the max and the sum with axis=-1 (and keepdims=True)")
        if np.isclose(out.sum(), 1.0):
            raise Hint("your whole array sums to 1: you normalized over every entry at once. Normalize "
                       "each row separately: np.sum(e, axis=-1, keepdims=True)")
        raise Hint(f"the rows of your result do not sum to 1 (they sum to {np.round(rows, 4).tolist()}): "
                   "divide np.exp(x - max) by its sum over the last axis, taken with keepdims=True")
    expect_close(out, _reference_softmax(x), "softmax(x) on small inputs",
                 hint="Each row should be exp(x_j) / sum_i exp(x_i).")

    # 2. a 3-D array: the softmax runs over the last axis only, the shape is kept
    x = rng.normal(size=(2, 3, 4))
    out = expect_array(_call(fn, x), x.shape, "softmax(x) for x of shape (2, 3, 4)")
    _finite(out, "softmax(x)", "on small inputs")
    if not np.allclose(out.sum(axis=-1), 1.0):
        wrong = [a for a in range(x.ndim - 1) if np.allclose(out.sum(axis=a), 1.0)]
        where = f" (your result sums to 1 over axis {wrong[0]})" if wrong else ""
        raise Hint(f"for a 3-D input the slices along the last axis must sum to 1{where}: use axis=-1, "
                   "not a fixed axis=1, so the function works for any number of dimensions")
    expect_close(out, _reference_softmax(x), "softmax(x) for a 3-D input")

    # 3. large scores in float64: exp(1000) overflows (float64 max is about 1.8e308 = exp(709.8))
    x = 1000.0 + rng.normal(size=(2, 4))
    out = _call(fn, x)
    _finite(out, "softmax(x)", "for scores around 1000 (float64)")
    expect_close(out, _reference_softmax(x), "softmax(x) for scores around 1000 (float64)")
    x = -1000.0 + rng.normal(size=(2, 4))
    out = _call(fn, x)
    _finite(out, "softmax(x)", "for scores around -1000 (float64): every exp underflowed to 0, "
            "and 0 / 0 is nan; the fix is the same:")
    expect_close(out, _reference_softmax(x), "softmax(x) for scores around -1000 (float64)")

    # 4. float32 stays float32, and exp(100) overflows in float32 (max about 3.4e38 = exp(88.7))
    x = (100.0 + rng.normal(size=(3, 4))).astype(np.float32)
    out = _call(fn, x)
    _finite(out, "softmax(x)", "for float32 scores around 100")
    out = expect_array(out, x.shape, "softmax(x) for float32 x of shape (3, 4)")
    if out.dtype != np.float32:
        raise Hint(f"a float32 input gave a {out.dtype} result: keep the input's dtype (float32 halves the "
                   "memory of the big score matrices). Avoid converting with np.array(x, dtype=float) or "
                   "mixing in float64 arrays")
    expect_close(out, _reference_softmax(x), "softmax(x) for float32 inputs", rtol=1e-4, atol=1e-6)

    # 5. -inf (a masked key) gets weight exactly 0, and does not spoil the rest of its row
    x = np.array([[0.0, -np.inf, 1.0, 2.0], [-np.inf, 3.0, 3.0, -np.inf]])
    out = _call(fn, x)
    if isinstance(out, np.ndarray) and np.isnan(out).any():
        raise Hint("with -inf entries (masked keys) your result contains nan: (-inf) - (-inf) and "
                   "inf / inf are nan. Subtract the row maximum (finite whenever one entry is), not the "
                   "mean or the minimum")
    out = expect_close(out, _reference_softmax(x), "softmax(x) with -inf entries")
    if not np.all(out[np.isneginf(x)] == 0):
        raise Hint("-inf entries must get a weight of exactly 0")


def check_softmax(fn):
    """Check fn(x) -> softmax of x over its last axis (any number of dimensions, x's dtype kept)."""
    return check("softmax", fn, _softmax_cases,
                 "all hidden cases pass: values, rows summing to 1, the last axis of 2-D and 3-D inputs, "
                 "scores of 1000 (float64) and 100 (float32), float32 kept, -inf entries.")


# ----------------------------------------------------------------------------
# exercise 2: the attention weights of one query over a set of keys

def _weights_cases(fn):
    rng = cases_rng(2)
    d, n = 3, 5
    q, K = rng.normal(size=d), rng.normal(size=(n, d))
    out = _call_qk(fn, q, K)
    if isinstance(out, np.ndarray) and out.shape == K.shape:
        raise Hint(f"your weights have K's shape {K.shape}, one row per key: reduce each key to a single "
                   "score, the dot product of the query with it (K @ q has shape (n,))")
    out = expect_array(out, (n,), f"the weight vector for q of shape ({d},) and K of shape ({n}, {d})")
    _finite(out, "the weight vector", "on small inputs")
    scores = K @ q
    if np.allclose(out, scores):
        raise Hint("you returned the scores K @ q themselves: turn them into weights with a softmax")
    if not np.isclose(out.sum(), 1.0):
        raise Hint(f"the weights don't sum to 1 (they sum to {out.sum():.4g}): apply a softmax to the "
                   "scores, exp(s_j) / sum_i exp(s_i)")
    if np.any(out < 0):
        raise Hint("some weights are negative: weights come from a softmax, so they lie in [0, 1]")
    if np.allclose(out, _reference_softmax(scores / np.sqrt(d))):
        raise Hint("your scores are divided by sqrt(d): in this chapter the score is the plain dot "
                   "product q . k_j (the scaling by sqrt(d_k) is chapter 2's topic)")
    q2 = rng.normal(size=d)
    out2 = expect_array(_call_qk(fn, q2, K), (n,), "the weight vector for a second query")
    if np.allclose(out, out2):
        raise Hint("your weights don't change when the query changes: each key's score must be its "
                   "dot product with the query, s_j = q . k_j (K @ q)")
    expect_close(out, _reference_softmax(scores), "the weight vector",
                 hint="They should be softmax(K @ q): the score of key j is the dot product q . k_j.")

    # large scores: q . k_j around 1000
    q = np.array([10.0, 0.0, 0.0])
    K = np.column_stack([100.0 + rng.normal(size=n), rng.normal(size=(n, 2))])
    out = _call_qk(fn, q, K)
    _finite(out, "the weight vector", "when the scores q . k_j are around 1000")
    expect_close(out, _reference_softmax(K @ q), "the weight vector for scores around 1000")


def check_attention_weights(fn):
    """Check fn(q, K) -> softmax(K @ q): the (n,) weights of query q (d,) over keys K (n, d)."""
    return check("attention weights", fn, _weights_cases,
                 "all hidden cases pass: one weight per key, softmax of the dot products, large scores.")


# ----------------------------------------------------------------------------
# exercise 3: the full soft lookup, a weighted sum of values

def _lookup_cases(fn):
    rng = cases_rng(3)
    d, n, d_v = 3, 5, 2
    q, K, V = rng.normal(size=d), rng.normal(size=(n, d)), rng.normal(size=(n, d_v))
    w = _reference_softmax(K @ q)
    out = _call_qk(fn, q, K, V)
    if isinstance(out, np.ndarray) and out.shape == (n,):
        raise Hint(f"your result has shape ({n},), one number per key: those look like the weights. The "
                   "output is the weighted sum of the values, weights @ V, of shape (d_v,)")
    if isinstance(out, np.ndarray) and out.shape == V.shape:
        raise Hint(f"your result has V's shape {V.shape}: you weighted each value but did not add them "
                   "up. Sum over the keys: weights @ V")
    out = expect_array(out, (d_v,), f"the output for V of shape ({n}, {d_v})")
    _finite(out, "the output", "on small inputs")
    hard = V[np.argmax(K @ q)]
    if np.allclose(out, hard) and not np.allclose(w @ V, hard):
        raise Hint("your output is the value of the best-matching key alone: that is a hard lookup. "
                   "Weight every value by its softmax weight and add them up")
    if np.allclose(out, V.mean(axis=0)):
        raise Hint("your output is the plain average of the values: weight them by softmax(K @ q)")
    expect_close(out, w @ V, "the output", hint="It should be softmax(K @ q) @ V.")

    q = np.array([10.0, 0.0, 0.0])
    K = np.column_stack([100.0 + rng.normal(size=n), rng.normal(size=(n, 2))])
    out = _call_qk(fn, q, K, V)
    _finite(out, "the output", "when the scores q . k_j are around 1000")
    expect_close(out, _reference_softmax(K @ q) @ V, "the output for scores around 1000")


def check_soft_lookup(fn):
    """Check fn(q, K, V) -> softmax(K @ q) @ V: query q (d,), keys K (n, d), values V (n, d_v) -> (d_v,)."""
    return check("soft lookup", fn, _lookup_cases,
                 "all hidden cases pass: a weighted sum of the values, with stable weights.")
