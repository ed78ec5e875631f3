"""Checkers for "Attention as kernel regression" and "Attention in recurrent networks".

    from attnkit.exercises.history import check_gaussian_weights
    check_gaussian_weights(my_weights)   # -> PASSED [...] or NOT YET [...] <one specific hint>

Each checker runs the learner's function on hidden cases (fixed seeds) and stops at the first
problem with a hint that says what to fix.
"""
import numpy as np

from ..nn import GRU, _sigmoid
from .core import Hint, call, check, expect_array

__all__ = ["check_gaussian_weights", "check_gru_step", "check_additive_score"]


def _close(a, b):
    return a.shape == np.shape(b) and np.allclose(a, b, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------
# the Gaussian kernel is a softmax

def _gaussian(queries, keys, sigma, two=2.0):
    s = -(queries[:, None] - keys[None, :]) ** 2 / (two * sigma ** 2)     # (m, n)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _gaussian_cases(fn):
    rng = np.random.default_rng(20)
    q, k = rng.uniform(0, 5, 4), rng.uniform(0, 5, 7)
    out = expect_array(call(fn, q, k, 0.7), (4, 7), "the weights for 4 queries and 7 keys")
    ref = _gaussian(q, k, 0.7)
    if not _close(out, ref):
        if np.allclose(out.sum(axis=1), 1) and _close(out, _gaussian(q, k, 0.7, two=1.0)):
            raise Hint("the kernel is exp(-(q - k)^2 / (2 sigma^2)): you divided by sigma^2, not 2 sigma^2")
        if _close(out / out.sum(axis=1, keepdims=True), ref):
            raise Hint("each row must sum to 1: divide the kernel values by their sum over the keys "
                       "(that division is what makes it a softmax)")
        if np.allclose(out.sum(axis=0), 1):
            raise Hint("your columns sum to 1: normalize each query's row over the keys (axis=1)")
        raise Hint("the weights differ from softmax(-(q - k)^2 / (2 sigma^2)) over the keys; check the "
                   "sign and the square of the difference")
    # a narrow kernel far from every key: exp underflows to 0 / 0 unless the maximum is subtracted
    far = np.array([50.0, 2.0])
    out = call(fn, far, k, 0.05)
    if not (isinstance(out, np.ndarray) and np.all(np.isfinite(out))):
        raise Hint("with sigma = 0.05 and a query 45 away from every key, every exp(...) underflows to 0 "
                   "and 0 / 0 is nan: compute the scores, subtract each row's maximum, then exponentiate "
                   "(a stable softmax)")
    if not _close(out, _gaussian(far, k, 0.05)):
        raise Hint("right for sigma = 0.7 but wrong for a narrow kernel (sigma = 0.05): is sigma squared?")


def check_gaussian_weights(fn):
    """fn(queries (m,), keys (n,), sigma) -> (m, n) Nadaraya-Watson weights of a Gaussian kernel."""
    return check("Gaussian kernel weights", fn, _gaussian_cases,
                 "your kernel weights are softmax attention with scores -(q - k)^2 / (2 sigma^2).")


# ----------------------------------------------------------------------------
# one GRU step

def _gru_variants(x, h, W_ih, W_hh, b_ih, b_hh):
    """The reference step and the usual wrong ones, as (name, h_new)."""
    H = h.shape[1]
    gi, gh = x @ W_ih + b_ih, h @ W_hh + b_hh
    r, z = _sigmoid(gi[:, :H] + gh[:, :H]), _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    yield "swapped z", z * n + (1 - z) * h
    n_before = np.tanh(gi[:, 2 * H:] + (r * h) @ W_hh[:, 2 * H:] + b_hh[2 * H:])
    yield "reset before", (1 - z) * n_before + z * h
    n_no_bias = np.tanh(gi[:, 2 * H:] + r * (h @ W_hh[:, 2 * H:]) + b_hh[2 * H:])
    yield "bias outside", (1 - z) * n_no_bias + z * h
    z2, r2 = _sigmoid(gi[:, :H] + gh[:, :H]), _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n2 = np.tanh(gi[:, 2 * H:] + r2 * gh[:, 2 * H:])
    yield "gate order", (1 - z2) * n2 + z2 * h


_GRU_HINTS = {
    "swapped z": "the update gate is the other way round: h_new = (1 - z) * n + z * h, so z near 1 keeps "
                 "the old state (PyTorch's convention)",
    "reset before": "you applied the reset gate to h before the projection, (r * h) @ W_hn; PyTorch's GRU "
                    "multiplies the projection and its bias: r * (h @ W_hn + b_hn)",
    "bias outside": "the reset gate multiplies the hidden projection *with* its bias: r * (h @ W_hn + b_hn), "
                    "not r * (h @ W_hn) + b_hn",
    "gate order": "the gates are stored in the order r | z | n: columns 0..H-1 are the reset gate, H..2H-1 "
                  "the update gate, 2H..3H-1 the candidate",
}


def _gru_cases(fn):
    rng = np.random.default_rng(21)
    gru = GRU(3, 4, rng=rng, dtype=np.float64)
    p = gru.params
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    args = (x, h, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"])
    out = expect_array(call(fn, *args), (2, 4), "the new state for B=2, H=4")
    ref, _ = gru.cell_forward(gru.project_input(x), h)
    if _close(out, ref):
        return
    for name, wrong in _gru_variants(*args):
        if _close(out, wrong):
            raise Hint(_GRU_HINTS[name])
    raise Hint("the new state differs from PyTorch's GRU step; write the three gates one line each: "
               "r = sigmoid(...), z = sigmoid(...), n = tanh(...), then h_new = (1 - z) * n + z * h")


def check_gru_step(fn):
    """fn(x (B, d_in), h (B, H), W_ih (d_in, 3H), W_hh (H, 3H), b_ih (3H,), b_hh (3H,)) -> h_new (B, H)."""
    return check("one GRU step", fn, _gru_cases, "your step is PyTorch's GRU step (torch.nn.GRU's equations).")


# ----------------------------------------------------------------------------
# an additive score

def _additive_cases(fn):
    rng = np.random.default_rng(22)
    q, K = rng.standard_normal(4), rng.standard_normal((6, 3))
    W_q, W_k, v = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    out = expect_array(call(fn, q, K, W_q, W_k, v), (6,), "the scores of one query against 6 keys")
    ref = np.tanh(q @ W_q + K @ W_k) @ v                                  # (6,)
    if _close(out, ref):
        return
    if _close(out, (q @ W_q + K @ W_k) @ v):
        raise Hint("the tanh is missing: score = v . tanh(q W_q + k W_k); without it the score is linear "
                   "and the query's part is the same for every key, so softmax would ignore the query")
    e = np.exp(ref - ref.max())
    if _close(out, e / e.sum()):
        raise Hint("you returned the softmax weights: return the scores v . tanh(q W_q + k W_k) themselves")
    if _close(out, np.tanh(q @ W_q + K @ W_k).sum(axis=1)):
        raise Hint("you summed the tanh features: weight them with v, np.tanh(...) @ v")
    raise Hint("the scores differ from v . tanh(q W_q + k W_k) for each key (row of K)")


def check_additive_score(fn):
    """fn(q (d_q,), K (n, d_k), W_q (d_q, d_a), W_k (d_k, d_a), v (d_a,)) -> scores (n,)."""
    return check("additive score", fn, _additive_cases,
                 "your scores are Bahdanau's additive attention scores.")
