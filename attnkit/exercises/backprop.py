"""Checkers for chapters 11 and 12: backward passes (softmax, attention, layer norm) and the
Transformer's architecture (parameter counts, shapes through a forward pass).

    from attnkit.exercises.backprop import check_softmax_backward
    check_softmax_backward(my_softmax_backward)   # -> PASSED ... or NOT YET ... with a hint

Each checker compares with a float64 reference on hidden cases and names the mistake it
recognises (a missing term, a missing scale, a missing transpose, a wrong axis).
"""
import numpy as np

from .._checks import is_int
from ..functional import softmax as _softmax
from .core import Hint, call, cases_rng, check, expect_array, expect_tuple

__all__ = ["check_softmax_backward", "check_attention_backward", "check_layer_norm_backward",
           "check_encoder_layer_num_parameters", "check_transformer_shapes"]


def _close(a, b):
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------
# chapter 11: softmax backward

def _softmax_backward_cases(fn):
    rng = cases_rng(4321)
    # a square case first, where a sum without keepdims broadcasts silently into a wrong
    # answer that can be named; then non-square ones (a wrong axis cannot hide there)
    for shape in ((4, 4), (3, 5), (2, 4, 6)):
        x = rng.normal(size=shape)
        y = _softmax(x)
        g = rng.normal(size=shape)
        out = call(fn, g, y)
        if out is None:
            raise NotImplementedError
        ref = y * (g - np.sum(g * y, axis=-1, keepdims=True))
        out = np.asarray(out)
        if out.shape != ref.shape:
            if out.shape == ref.shape[:-1]:
                raise Hint(f"your result has shape {out.shape}, expected {ref.shape}: the gradient "
                           "with respect to x has the shape of x. Did you return the sum alone?")
            raise Hint(f"for inputs of shape {shape} your result has shape {out.shape}, expected "
                       f"{ref.shape}: sum over the last axis with keepdims=True, so the (..., 1) "
                       "sum broadcasts against the (..., T) arrays.")
        expect_array(out, ref.shape, "dx")
        if _close(out, ref):
            continue
        if _close(out, g * y):
            raise Hint("you kept only the diagonal of the Jacobian (as if y_i depended on x_i "
                       "alone, like exp): every y_i also depends on every x_j through the "
                       "normalizing sum. Subtract the weighted sum <g, y>: y * (g - sum(g * y)).")
        if _close(out, y * (g - np.sum(g, axis=-1, keepdims=True))):
            raise Hint("the sum is weighted by y: <g, y> = sum(g * y, axis=-1, keepdims=True), "
                       "not sum(g).")
        if _close(out, g - np.sum(g * y, axis=-1, keepdims=True)):
            raise Hint("you forgot the outer factor y: dx = y * (g - sum(g * y)).")
        if _close(out, -ref):
            raise Hint("the sign is flipped: dx = y * (g - <g, y>), not y * (<g, y> - g).")
        for ax in range(x.ndim - 1):
            wrong = y * (g - np.sum(g * y, axis=ax, keepdims=True))
            if _close(out, wrong):
                raise Hint(f"you summed over axis {ax}: the softmax normalizes over the last axis, "
                           "so the sum <g, y> is over the last axis too (axis=-1).")
        if x.shape[-1] == x.shape[-2]:
            s = np.sum(g * y, axis=-1)                                  # (..., T) without keepdims
            if _close(out, y * (g - s)) or _close(out, y * (g - s[..., None, :])):
                raise Hint("on a square input your sum broadcast along the wrong axis: keep the "
                           "summed axis with keepdims=True (shape (..., 1)).")
        err = np.max(np.abs(out - ref))
        raise Hint(f"for inputs of shape {shape} dx differs from y * (g - sum(g * y)) "
                   f"(largest difference {err:.3g}).")


def check_softmax_backward(fn):
    """Check fn(g, y) -> dx, the gradient through y = softmax(x, axis=-1) given dL/dy = g."""
    return check("softmax_backward", fn, _softmax_backward_cases)


# ----------------------------------------------------------------------------
# chapter 11: attention backward

def _attention_parts(q, k, v, dout):
    """Forward and the pieces of the reference backward, float64."""
    d_k = q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)                     # (B, T_q, T_k)
    p = _softmax(s)                                                    # (B, T_q, T_k)
    dp = dout @ np.swapaxes(v, -1, -2)                                 # (B, T_q, T_k)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))             # (B, T_q, T_k)
    return p, dp, ds


def _attention_backward_cases(fn):
    rng = cases_rng(4321)
    names = ("dq", "dk", "dv")
    # square first, so missing transposes give wrong values instead of shape errors; then
    # T_q != T_k and d_k != d_v
    for B, T_q, T_k, d_k, d_v in ((2, 5, 5, 4, 4), (2, 3, 6, 4, 5)):
        q = rng.normal(size=(B, T_q, d_k))
        k = rng.normal(size=(B, T_k, d_k))
        v = rng.normal(size=(B, T_k, d_v))
        dout = rng.normal(size=(B, T_q, d_v))
        p, dp, ds = _attention_parts(q, k, v, dout)
        pt = np.swapaxes(p, -1, -2)
        dst = np.swapaxes(ds, -1, -2)
        r = np.sqrt(d_k)
        ref = {"dq": ds @ k / r, "dk": dst @ q / r, "dv": pt @ dout}
        out = expect_tuple(call(fn, dout, q, k, v), 3, names)
        shapes = {"dq": q.shape, "dk": k.shape, "dv": v.shape}
        for name, o in zip(names, out):
            if o is None:
                raise NotImplementedError
            o = np.asarray(o)
            if o.shape != shapes[name]:
                raise Hint(f"{name} has shape {o.shape}, expected {shapes[name]} (the shape of "
                           f"{name[1:]}): a gradient has the shape of what it differentiates. "
                           "Check the transposes.")
        dq, dk, dv = (expect_array(np.asarray(o), shapes[n], n) for n, o in zip(names, out))

        if not _close(dv, ref["dv"]):
            if T_q == T_k and _close(dv, p @ dout):
                raise Hint("dv: O = P V, so dV = P^T dO (transpose the weights: "
                           "np.swapaxes(P, -1, -2) @ dout), not P dO.")
            raise Hint("dv is wrong: O = P V gives dV = P^T dO.")
        if not _close(dq, ref["dq"]):
            if _close(dq, ds @ k):
                raise Hint("dq is missing the scale: S = Q K^T / sqrt(d_k), so "
                           "dQ = dS K / sqrt(d_k).")
            if _close(dq, ds @ k / d_k):
                raise Hint("dq is scaled by 1/d_k: the scores are divided by sqrt(d_k), so "
                           "dQ = dS K / sqrt(d_k).")
            if _close(dq, dp @ k / r):
                raise Hint("dq skips the softmax backward: dS = P * (dP - rowsum(dP * P)), "
                           "not dP itself.")
            if _close(dq, (p * dp) @ k / r):
                raise Hint("dq: the softmax backward is missing the row term: "
                           "dS = P * (dP - sum(dP * P, axis=-1, keepdims=True)).")
            raise Hint("dq is wrong: dP = dO V^T, dS = P * (dP - rowsum(dP * P)), "
                       "dQ = dS K / sqrt(d_k).")
        if not _close(dk, ref["dk"]):
            if _close(dk, dst @ q):
                raise Hint("dk is missing the scale: dK = dS^T Q / sqrt(d_k).")
            if T_q == T_k and _close(dk, ds @ q / r):
                raise Hint("dk: S = Q K^T, so dK = dS^T Q / sqrt(d_k) (transpose dS).")
            if _close(dk, dst @ q / d_k):
                raise Hint("dk is scaled by 1/d_k: the scores are divided by sqrt(d_k), so "
                           "dK = dS^T Q / sqrt(d_k).")
            raise Hint("dk is wrong: dK = dS^T Q / sqrt(d_k).")


def check_attention_backward(fn):
    """Check fn(dout, q, k, v) -> (dq, dk, dv) for out = softmax(q k^T / sqrt(d_k)) v, no mask.

    q: (B, T_q, d_k), k: (B, T_k, d_k), v: (B, T_k, d_v), dout: (B, T_q, d_v)."""
    return check("attention_backward", fn, _attention_backward_cases)


# ----------------------------------------------------------------------------
# chapter 11: layer norm backward

def _layer_norm_backward_cases(fn):
    rng = cases_rng(4321)
    eps = 1e-5
    names = ("dx", "dgamma", "dbeta")
    for shape in ((4, 6), (2, 3, 8)):
        d = shape[-1]
        x = rng.normal(1.0, 2.0, size=shape)
        gamma = rng.normal(1.0, 0.5, size=d)
        dout = rng.normal(size=shape)
        mu = x.mean(-1, keepdims=True)
        rstd = 1.0 / np.sqrt(x.var(-1, keepdims=True) + eps)
        xhat = (x - mu) * rstd
        dxhat = dout * gamma
        axes = tuple(range(x.ndim - 1))
        ref = {"dx": rstd * (dxhat - dxhat.mean(-1, keepdims=True)
                             - xhat * (dxhat * xhat).mean(-1, keepdims=True)),
               "dgamma": (dout * xhat).sum(axis=axes), "dbeta": dout.sum(axis=axes)}
        out = expect_tuple(call(fn, dout, x, gamma, eps), 3, names)
        if any(o is None for o in out):
            raise NotImplementedError
        dx, dgamma, dbeta = (np.asarray(o) for o in out)
        for name, o in (("dgamma", dgamma), ("dbeta", dbeta)):
            if o.shape != (d,):
                raise Hint(f"{name} has shape {o.shape}, expected ({d},): gamma and beta are "
                           "shared by every position, so sum their gradients over all axes but "
                           "the last (axis=tuple(range(x.ndim - 1))).")
        dx = expect_array(dx, shape, "dx")
        if not _close(dbeta, ref["dbeta"]):
            raise Hint("dbeta is wrong: y = xhat * gamma + beta, so dbeta = dout summed over "
                       "the positions.")
        if not _close(dgamma, ref["dgamma"]):
            if _close(dgamma, (dout * x).sum(axis=axes)):
                raise Hint("dgamma multiplies dout by the normalized input xhat, not by x.")
            raise Hint("dgamma is wrong: dgamma = sum over positions of dout * xhat.")
        if _close(dx, ref["dx"]):
            continue
        if _close(dx, dxhat * rstd):
            raise Hint("dx treats the mean and the variance as constants: both depend on x. "
                       "dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).")
        if _close(dx, rstd * (dout - dout.mean(-1, keepdims=True)
                              - xhat * (dout * xhat).mean(-1, keepdims=True))):
            raise Hint("dx forgot gamma: the gradient reaching xhat is dxhat = dout * gamma.")
        if _close(dx, rstd * (dxhat - dxhat.mean(-1, keepdims=True))):
            raise Hint("dx is missing the term of the variance: sigma depends on x too, which "
                       "adds - xhat * mean(dxhat * xhat) inside the bracket.")
        if _close(dx, rstd * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdims=True))):
            raise Hint("dx is missing the term of the mean: mu depends on x too, which adds "
                       "- mean(dxhat) inside the bracket.")
        err = np.max(np.abs(dx - ref["dx"]))
        raise Hint(f"dx differs from the reference (largest difference {err:.3g}): "
                   "dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), "
                   "means over the last axis.")


def check_layer_norm_backward(fn):
    """Check fn(dout, x, gamma, eps) -> (dx, dgamma, dbeta) for y = LN(x) * gamma + beta."""
    return check("layer_norm_backward", fn, _layer_norm_backward_cases)


# ----------------------------------------------------------------------------
# chapter 12: parameter count of an encoder layer

def _encoder_layer_count(d, d_ff):
    attn = 4 * (d * d + d)                 # W_q, W_k, W_v, W_o and their biases
    ffn = d * d_ff + d_ff + d_ff * d + d   # two Linear layers
    norms = 2 * 2 * d                      # two LayerNorms, gamma and beta each
    return attn, ffn, norms


def _encoder_count_cases(fn):
    for d, d_ff in ((512, 2048), (64, 256), (6, 10)):
        out = call(fn, d, d_ff)
        if out is None:
            raise NotImplementedError
        if not is_int(out):
            raise Hint(f"return the count as an integer, got {type(out).__name__} ({out!r})")
        attn, ffn, norms = _encoder_layer_count(d, d_ff)
        total = attn + ffn + norms
        if out == total:
            continue
        wrong = {
            attn + ffn: "you left out the two LayerNorms: each has gamma and beta, 2 d_model "
                        "parameters.",
            4 * d * d + 2 * d * d_ff + norms: "you left out the biases: four of size d_model "
                                              "in attention, d_ff and d_model in the FFN.",
            4 * d * d + 2 * d * d_ff: "you counted the weight matrices only: add the biases "
                                      "and the two LayerNorms' gamma and beta.",
            3 * (d * d + d) + ffn + norms: "attention has four projections, W_q, W_k, W_v and "
                                           "the output projection W_o.",
            attn + d * d_ff + d_ff + norms: "the FFN has two Linear layers, "
                                                            "d_model -> d_ff and d_ff -> d_model.",
            attn + ffn + 2 * d: "there are two LayerNorms in an encoder layer (after attention "
                                "and after the FFN), each with 2 d_model parameters.",
        }
        if int(out) in wrong:
            raise Hint(wrong[int(out)])
        # per-head matrices of size d x d would count h times too many: no h argument here
        raise Hint(f"for d_model={d}, d_ff={d_ff} expected {total:,} parameters, got {int(out):,}: "
                   "attention 4 (d^2 + d), FFN 2 d d_ff + d_ff + d, two LayerNorms 2 d each.")


def check_encoder_layer_num_parameters(fn):
    """Check fn(d_model, d_ff) -> number of parameters of one (post-LN) EncoderLayer."""
    return check("encoder_layer_num_parameters", fn, _encoder_count_cases)


# ----------------------------------------------------------------------------
# chapter 12: shapes through a forward pass

SHAPE_STAGES = ("src_embedded", "enc_self_weights", "memory", "tgt_embedded",
                "dec_self_weights", "cross_weights", "ffn_hidden", "logits")


def _shapes(B, S, T, d, h, d_ff, V):
    return {"src_embedded": (B, S, d), "enc_self_weights": (B, h, S, S), "memory": (B, S, d),
            "tgt_embedded": (B, T, d), "dec_self_weights": (B, h, T, T),
            "cross_weights": (B, h, T, S), "ffn_hidden": (B, T, d_ff), "logits": (B, T, V)}


def _shape_cases(fn):
    for B, S, T, d, h, d_ff, V in ((2, 7, 5, 16, 4, 64, 11), (3, 4, 9, 8, 2, 24, 13)):
        out = call(fn, B, S, T, d, h, d_ff, V)
        if out is None:
            raise NotImplementedError
        if not isinstance(out, dict):
            raise Hint(f"return a dict from stage name to shape tuple, got {type(out).__name__}")
        missing = [s for s in SHAPE_STAGES if s not in out]
        if missing:
            raise Hint(f"the dict is missing the stages {missing}; expected keys {list(SHAPE_STAGES)}")
        ref = _shapes(B, S, T, d, h, d_ff, V)
        args = f"B={B}, S={S}, T={T}, d_model={d}, h={h}, d_ff={d_ff}, V={V}"
        for stage in SHAPE_STAGES:
            got = out[stage]
            try:
                got = tuple(int(n) for n in got)
            except TypeError:
                raise Hint(f"{stage} should be a shape tuple such as (B, T, d_model), got {got!r}") from None
            want = ref[stage]
            if got == want:
                continue
            if stage == "cross_weights" and got == (B, h, S, T):
                raise Hint("cross_weights: the queries come from the decoder (T of them) and the keys "
                           "from the memory (S of them): (B, h, T, S).")
            if stage.endswith("weights") and len(got) == 3:
                raise Hint(f"{stage}: every head has its own weights, so there is a head axis: "
                           f"expected {want}.")
            if stage == "ffn_hidden" and got[-1] == d:
                raise Hint("ffn_hidden: the first Linear of the FFN widens each vector to d_ff.")
            if stage == "logits" and got[-1] == d:
                raise Hint("logits: the final Linear projects each d_model vector to one score "
                           "per vocabulary entry (V).")
            if stage == "memory" and got[1] == T:
                raise Hint("memory is the encoder's output: one vector per *source* position (S).")
            raise Hint(f"{stage}: expected {want} for {args}, got {got}.")


def check_transformer_shapes(fn):
    """Check fn(B, S, T, d_model, h, d_ff, V) -> {stage: shape} for the stages in SHAPE_STAGES."""
    return check("transformer_shapes", fn, _shape_cases)
