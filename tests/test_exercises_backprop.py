"""The checkers of chapters 11 and 12 (backward passes, Transformer architecture) pass the
reference solutions and fail typical wrong answers with their specific hint."""
import numpy as np
import pytest

from attnkit.exercises.backprop import (check_attention_backward, check_encoder_layer_num_parameters,
                                        check_layer_norm_backward, check_softmax_backward,
                                        check_transformer_shapes)
from attnkit.models import EncoderLayer

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


# ---------------------------------------------------------------- softmax backward

def softmax_backward_ref(g, y):
    return y * (g - np.sum(g * y, axis=-1, keepdims=True))


def softmax_backward_jacobian(g, y):
    # the full Jacobian, diag(y) - y y^T, applied row by row
    jac = np.einsum("...i,ij->...ij", y, np.eye(y.shape[-1])) - y[..., :, None] * y[..., None, :]
    return np.einsum("...ij,...i->...j", jac, g)


def test_softmax_backward_references_pass():
    passes(check_softmax_backward(softmax_backward_ref))
    passes(check_softmax_backward(softmax_backward_jacobian))


def test_softmax_backward_not_done():
    def todo(g, y):
        ...
    fails_with(check_softmax_backward(todo), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (lambda g, y: g * y, "only the diagonal of the Jacobian"),
    (lambda g, y: y * (g - g.sum(-1, keepdims=True)), "weighted by y"),
    (lambda g, y: g - np.sum(g * y, -1, keepdims=True), "outer factor y"),
    (lambda g, y: y * (np.sum(g * y, -1, keepdims=True) - g), "sign is flipped"),
    (lambda g, y: y * (g - np.sum(g * y, 0, keepdims=True)), "you summed over axis 0"),
    (lambda g, y: np.sum(g * y, -1), "return the sum alone"),
    (lambda g, y: y * (g - np.sum(g * y, -1)), "keepdims"),
    (lambda g, y: 2 * softmax_backward_ref(g, y), "differs from y * (g - sum(g * y))"),
])
def test_softmax_backward_wrong_answers(wrong, hint):
    fails_with(check_softmax_backward(wrong), hint)


# ---------------------------------------------------------------- attention backward

def T(a):
    return np.swapaxes(a, -1, -2)


def attn_parts(dout, q, k, v):
    d_k = q.shape[-1]
    s = q @ T(k) / np.sqrt(d_k)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dp = dout @ T(v)
    ds = p * (dp - np.sum(dp * p, -1, keepdims=True))
    return p, dp, ds, np.sqrt(d_k)


def attention_backward_ref(dout, q, k, v):
    p, dp, ds, r = attn_parts(dout, q, k, v)
    return ds @ k / r, T(ds) @ q / r, T(p) @ dout


def test_attention_backward_reference_passes():
    passes(check_attention_backward(attention_backward_ref))


def test_attention_backward_attnkit_passes():
    from attnkit.functional import attention_backward, attention_forward

    def via_attnkit(dout, q, k, v):
        _, cache = attention_forward(q, k, v)
        return attention_backward(dout, cache)
    passes(check_attention_backward(via_attnkit))


def test_attention_backward_not_done():
    def todo(dout, q, k, v):
        return None, None, None
    fails_with(check_attention_backward(todo), "not done yet")


def variant(which):
    def fn(dout, q, k, v):
        p, dp, ds, r = attn_parts(dout, q, k, v)
        dq, dk, dv = ds @ k / r, T(ds) @ q / r, T(p) @ dout
        if which == "dv_no_transpose":
            dv = p @ dout
        elif which == "dq_no_scale":
            dq = ds @ k
        elif which == "dq_over_dk":
            dq = ds @ k / r ** 2
        elif which == "dq_no_softmax":
            dq = dp @ k / r
        elif which == "dq_no_row_term":
            dq = (p * dp) @ k / r
        elif which == "dk_no_scale":
            dk = T(ds) @ q
        elif which == "dk_no_transpose":
            dk = ds @ q / r
        elif which == "two_values":
            return dq, dk
        return dq, dk, dv
    return fn


@pytest.mark.parametrize("which, hint", [
    ("dv_no_transpose", "dV = P^T dO"),
    ("dq_no_scale", "dq is missing the scale"),
    ("dq_over_dk", "dq is scaled by 1/d_k"),
    ("dq_no_softmax", "skips the softmax backward"),
    ("dq_no_row_term", "missing the row term"),
    ("dk_no_scale", "dk is missing the scale"),
    ("dk_no_transpose", "transpose dS"),
    ("two_values", "return a tuple of 3 arrays"),
])
def test_attention_backward_wrong_answers(which, hint):
    fails_with(check_attention_backward(variant(which)), hint)


# ---------------------------------------------------------------- layer norm backward

def ln_parts(dout, x, gamma, eps):
    mu = x.mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(x.var(-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    axes = tuple(range(x.ndim - 1))
    return xhat, rstd, dout * gamma, axes


def ln_backward_ref(dout, x, gamma, eps):
    xhat, rstd, dxhat, axes = ln_parts(dout, x, gamma, eps)
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


def test_layer_norm_backward_reference_passes():
    passes(check_layer_norm_backward(ln_backward_ref))


def ln_variant(which):
    def fn(dout, x, gamma, eps):
        xhat, rstd, dxhat, axes = ln_parts(dout, x, gamma, eps)
        dx, dgamma, dbeta = ln_backward_ref(dout, x, gamma, eps)
        if which == "constant_stats":
            dx = dxhat * rstd
        elif which == "no_gamma":
            dx = rstd * (dout - dout.mean(-1, keepdims=True) - xhat * (dout * xhat).mean(-1, keepdims=True))
        elif which == "no_var_term":
            dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True))
        elif which == "no_mean_term":
            dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdims=True))
        elif which == "dgamma_unsummed":
            dgamma = dout * xhat
        elif which == "dgamma_x":
            dgamma = (dout * x).sum(axis=axes)
        elif which == "swapped":
            dgamma, dbeta = dbeta, dgamma
        return dx, dgamma, dbeta
    return fn


@pytest.mark.parametrize("which, hint", [
    ("constant_stats", "treats the mean and the variance as constants"),
    ("no_gamma", "dx forgot gamma"),
    ("no_var_term", "term of the variance"),
    ("no_mean_term", "term of the mean"),
    ("dgamma_unsummed", "sum their gradients over all axes but the last"),
    ("dgamma_x", "not by x"),
    ("swapped", "dbeta is wrong"),
])
def test_layer_norm_backward_wrong_answers(which, hint):
    fails_with(check_layer_norm_backward(ln_variant(which)), hint)


# ---------------------------------------------------------------- encoder layer parameter count

def count_ref(d, d_ff):
    return 4 * (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d) + 4 * d


def test_count_reference_passes_and_matches_attnkit():
    passes(check_encoder_layer_num_parameters(count_ref))
    for d, d_ff in ((8, 24), (16, 64)):
        assert EncoderLayer(d, 2, d_ff).num_parameters() == count_ref(d, d_ff)


@pytest.mark.parametrize("wrong, hint", [
    (lambda d, f: 4 * (d * d + d) + 2 * d * f + f + d, "left out the two LayerNorms"),
    (lambda d, f: 4 * d * d + 2 * d * f + 4 * d, "left out the biases"),
    (lambda d, f: 4 * d * d + 2 * d * f, "weight matrices only"),
    (lambda d, f: 3 * (d * d + d) + 2 * d * f + f + d + 4 * d, "four projections"),
    (lambda d, f: 4 * (d * d + d) + d * f + f + 4 * d, "two Linear layers"),
    (lambda d, f: 4 * (d * d + d) + 2 * d * f + f + d + 2 * d, "there are two LayerNorms"),
    (lambda d, f: float(count_ref(d, f)), "as an integer"),
    (lambda d, f: count_ref(d, f) + 1, "expected"),
])
def test_count_wrong_answers(wrong, hint):
    fails_with(check_encoder_layer_num_parameters(wrong), hint)


# ---------------------------------------------------------------- shapes through the model

def shapes_ref(B, S, T, d, h, d_ff, V):
    return {"src_embedded": (B, S, d), "enc_self_weights": (B, h, S, S), "memory": (B, S, d),
            "tgt_embedded": (B, T, d), "dec_self_weights": (B, h, T, T),
            "cross_weights": (B, h, T, S), "ffn_hidden": (B, T, d_ff), "logits": (B, T, V)}


def test_shapes_reference_passes():
    passes(check_transformer_shapes(shapes_ref))


def shapes_with(**changes):
    def fn(B, S, T, d, h, d_ff, V):
        out = shapes_ref(B, S, T, d, h, d_ff, V)
        for key, f in changes.items():
            if f is None:
                del out[key]
            else:
                out[key] = f(B, S, T, d, h, d_ff, V)
        return out
    return fn


@pytest.mark.parametrize("wrong, hint", [
    (shapes_with(cross_weights=lambda B, S, T, d, h, f, V: (B, h, S, T)), "queries come from the decoder"),
    (shapes_with(dec_self_weights=lambda B, S, T, d, h, f, V: (B, T, T)), "head axis"),
    (shapes_with(ffn_hidden=lambda B, S, T, d, h, f, V: (B, T, d)), "widens each vector to d_ff"),
    (shapes_with(logits=lambda B, S, T, d, h, f, V: (B, T, d)), "per vocabulary entry"),
    (shapes_with(memory=lambda B, S, T, d, h, f, V: (B, T, d)), "source* position"),
    (shapes_with(logits=None), "missing the stages ['logits']"),
    (shapes_with(src_embedded=lambda B, S, T, d, h, f, V: (S, B, d)), "src_embedded: expected"),
    (lambda *args: [1, 2], "return a dict"),
])
def test_shapes_wrong_answers(wrong, hint):
    fails_with(check_transformer_shapes(wrong), hint)


def test_shapes_not_done():
    def todo(B, S, T, d, h, d_ff, V):
        ...
    fails_with(check_transformer_shapes(todo), "not done yet")
