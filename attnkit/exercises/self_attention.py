"""Checkers for chapter 2 (self-attention): batched scaled dot-product attention and a self-attention layer.

    from attnkit.exercises.self_attention import check_batched_attention, check_self_attention
    check_batched_attention(my_attention)     # my_attention(q, k, v) -> out
    check_self_attention(my_self_attention)   # my_self_attention(x, W_q, W_k, W_v) -> out
"""
import numpy as np

from ..functional import softmax
from .core import Hint, call, cases_rng, check, expect_array

__all__ = ["check_batched_attention", "check_self_attention"]

_TRANSPOSE_HINT = ("To transpose the last two axes of a batched array use np.swapaxes(k, -1, -2): "
                   "k.transpose(-2, -1) is PyTorch's signature; NumPy's transpose wants the full "
                   "order of all axes, and k.T reverses every axis, batch included.")


def _reference(q, k, v, scale=True, use_softmax=True, axis=-1):
    s = q @ np.swapaxes(k, -1, -2)                                      # (..., T_q, T_k)
    if scale:
        s = s / np.sqrt(q.shape[-1])
    w = softmax(s, axis=axis) if use_softmax else s
    return w @ v                                                        # (..., T_q, d_v)


def _diagnose(out, q, k, v, what):
    """Raise the most specific Hint for an output that has the right shape but wrong values."""
    if np.allclose(out, _reference(q, k, v, scale=False), rtol=1e-4, atol=1e-6):
        raise Hint(f"{what} is what you get without scaling: divide the scores q k^T by "
                   "sqrt(d_k) (the size of one query vector, q.shape[-1]) before the softmax.")
    if np.allclose(out, _reference(q, k, v, use_softmax=False), rtol=1e-4, atol=1e-6):
        raise Hint(f"{what} is the scaled scores times v: you forgot the softmax that turns each "
                   "row of scores into weights that are positive and sum to 1.")
    if np.allclose(out, _reference(q, k, v, axis=-2), rtol=1e-4, atol=1e-6):
        raise Hint(f"{what} uses a softmax over the queries (axis=-2): each query's weights must "
                   "sum to 1 over the keys, so take the softmax over the last axis (axis=-1).")
    err = np.max(np.abs(out - _reference(q, k, v)))
    raise Hint(f"{what} differs from softmax(q k^T / sqrt(d_k)) v (largest difference {err:.3g}).")


def _call_attention(fn, q, k, v):
    try:
        return call(fn, q, k, v)
    except Hint as h:
        msg = str(h)
        if "axes don't match" in msg or "matmul" in msg or "mismatch" in msg:
            raise Hint(f"{msg}. {_TRANSPOSE_HINT}") from None
        raise


def _attention_cases(fn):
    rng = cases_rng(1234)
    # T_q, T_k, d_k and d_v all differ, so a transposed operand cannot give the right shape by luck
    for shape_lead, T_q, T_k, d_k, d_v in (((2,), 3, 5, 4, 6), ((2, 3), 4, 7, 8, 5)):
        q = rng.standard_normal((*shape_lead, T_q, d_k))
        k = rng.standard_normal((*shape_lead, T_k, d_k))
        v = rng.standard_normal((*shape_lead, T_k, d_v))
        out = _call_attention(fn, q, k, v)
        if isinstance(out, tuple):
            raise Hint("return only the output array (..., T_q, d_v), not a tuple")
        expected_shape = (*shape_lead, T_q, d_v)
        out = expect_array(out, what=f"the output for q {q.shape}, k {k.shape}, v {v.shape}")
        if out.shape != expected_shape:
            raise Hint(f"for q {q.shape}, k {k.shape}, v {v.shape} the output has shape {out.shape}, "
                       f"expected {expected_shape} (one d_v-vector per query). Check the transpose of k: "
                       f"{_TRANSPOSE_HINT}")
        if not np.allclose(out, _reference(q, k, v), rtol=1e-5, atol=1e-8):
            _diagnose(out, q, k, v, f"the output for q of shape {q.shape}")


def check_batched_attention(fn):
    """Check fn(q, k, v) -> softmax(q k^T / sqrt(d_k)) v for inputs of shape (..., T, d)."""
    return check("batched scaled dot-product attention", fn, _attention_cases,
                 "your attention handles any number of leading (batch, head) axes.")


def _self_attention_cases(fn):
    rng = cases_rng(4321)
    B, T, d_model, d_k, d_v = 2, 5, 6, 3, 4                             # d_k != d_model on purpose
    x = rng.standard_normal((B, T, d_model))
    W_q = rng.standard_normal((d_model, d_k))
    W_k = rng.standard_normal((d_model, d_k))
    W_v = rng.standard_normal((d_model, d_v))
    out = call(fn, x, W_q, W_k, W_v)
    out = expect_array(out, what="the output")
    if out.shape != (B, T, d_v):
        raise Hint(f"the output has shape {out.shape}, expected {(B, T, d_v)}: queries are x @ W_q "
                   f"(B, T, d_k), keys x @ W_k (B, T, d_k), values x @ W_v (B, T, d_v), and the "
                   "output has one d_v-vector per position")
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    if np.allclose(out, _reference(q, k, v)):
        return
    s = q @ np.swapaxes(k, -1, -2)
    if np.allclose(out, softmax(s / np.sqrt(d_model)) @ v):
        raise Hint("you scaled by sqrt(d_model); the scale is sqrt(d_k), the size of the projected "
                   "queries and keys (W_q.shape[1]), which is what sets the variance of q.k")
    if np.allclose(out, softmax((q @ np.swapaxes(q, -1, -2)) / np.sqrt(d_k)) @ v):
        raise Hint("you compared queries with queries: the keys are x @ W_k, a different projection")
    if np.allclose(out, softmax((x @ np.swapaxes(x, -1, -2)) / np.sqrt(d_model)) @ v):
        raise Hint("the scores come from x itself: project first, q = x @ W_q and k = x @ W_k")
    _diagnose(out, q, k, v, "the output")


def check_self_attention(fn):
    """Check fn(x, W_q, W_k, W_v) -> softmax((x W_q)(x W_k)^T / sqrt(d_k)) (x W_v) for x of shape (B, T,
    d_model)."""
    return check("self-attention with learned projections", fn, _self_attention_cases,
                 "queries, keys and values are three projections of the same x.")
