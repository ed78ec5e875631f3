"""Softmax, attention and masks as plain NumPy functions.

Dimension names used in shape comments throughout attnkit (see the book's notation page):

    B    batch size
    T    sequence length (T_q queries, T_k keys and values)
    h    number of attention heads
    d_k  size of one query/key vector, d_v size of one value vector
    ...  any number of leading (batch, head) dimensions

Convention: a function that training differentiates comes as a forward/backward pair,

    out, cache = thing_forward(...)         # cache holds exactly what the backward needs
    dx, ...    = thing_backward(dout, cache)

and a plain ``thing(...)`` exists where a reader only needs the output.
Every array keeps the floating dtype it came in with (float32 or float64).

Masks are boolean, and **True means "may attend"**. Masked scores are set to -inf
rather than to a large negative number such as -1e9: -1e9 overflows to -inf in
float16, is not small enough when scores themselves are large, and still gives a
fully masked row a uniform (wrong) distribution. With -inf the masked weights are
exactly zero. A query whose every key is masked has no distribution at all; by
convention here it gets all-zero weights and a zero output (never nan).
"""
import numpy as np

__all__ = [
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "scaled_dot_product_attention", "attention_forward", "attention_backward",
    "causal_mask", "padding_mask",
]


# ----------------------------------------------------------------------------
# input checks: fail loudly instead of broadcasting into a wrong answer

def require_float(x, name):
    """Return x as an ndarray, raising TypeError unless it holds floats (float16/32/64)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{name} must be a floating-point array (float32 or float64), got dtype {x.dtype}; "
            f"convert it with {name}.astype(np.float32)")
    return x


def check_mask(mask, scores_shape):
    """Check that a boolean mask broadcasts to scores_shape (..., T_q, T_k); return it as an ndarray."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(
            f"mask must be boolean (True = may attend), got dtype {mask.dtype}. If your mask uses "
            "1 for 'keep', pass mask.astype(bool); if it uses 1 for 'hide', pass mask == 0.")
    if mask.ndim > len(scores_shape) or mask.ndim < 2:
        raise ValueError(
            f"mask of shape {mask.shape} does not fit attention scores of shape {scores_shape}: "
            "it needs at least the two dimensions (T_q, T_k) and no more dimensions than the scores")
    ok = all(m in (1, s) for m, s in zip(mask.shape[::-1], scores_shape[::-1]))
    if not ok:
        raise ValueError(
            f"mask of shape {mask.shape} does not broadcast to attention scores of shape "
            f"{scores_shape} (..., T_q, T_k); each mask dimension must be 1 or equal the score's")
    return mask


# ----------------------------------------------------------------------------
# softmax

def softmax(x, axis=-1):
    """Numerically stable softmax along `axis`; returns an array of x's shape and dtype.

    The row maximum is subtracted before exponentiating, so no entry of exp() exceeds 1 and
    nothing overflows. Entries of -inf get weight 0; a slice that is all -inf gets all zeros.
    """
    x = require_float(x, "x")
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)  # all -inf slice: avoid (-inf) - (-inf) = nan
    e = np.exp(x - m)
    s = np.sum(e, axis=axis, keepdims=True)
    return np.divide(e, s, out=np.zeros_like(e), where=s > 0)


def softmax_backward(dout, cache, axis=-1):
    """Gradient through softmax; cache is softmax's output y: dx = y * (dout - sum(dout * y))."""
    y = cache
    return y * (dout - np.sum(dout * y, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    """log(softmax(x)) computed stably as x - logsumexp(x); all -inf slices give -inf."""
    x = require_float(x, "x")
    m = np.max(x, axis=axis, keepdims=True)
    m[~np.isfinite(m)] = 0                                  # all -inf slice: avoid (-inf) - (-inf) = nan
    out = x - m                                             # the one full-size result, updated in place
    s = np.sum(np.exp(out), axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out -= np.log(s)                                    # an all -inf slice gives nan here: set below
    if not np.all(s > 0):
        np.copyto(out, -np.inf, where=np.broadcast_to(s == 0, out.shape))
    return out


def log_softmax_backward(dout, cache, axis=-1):
    """Gradient through log_softmax; cache is its output: dx = dout - softmax(x) * sum(dout)."""
    logp = cache
    return dout - np.exp(logp) * np.sum(dout, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------
# scaled dot-product attention

# The (..., T_q, T_k) score matrix is the big array of attention: 1 GiB in float32 for
# B=8, h=8, T=2048. Forward and backward walk it in blocks of query rows, each block for all
# batch and head dimensions at once (no loop over batch or heads). The backward then needs a
# block-sized buffer for the score gradient instead of a second full matrix, and each block's
# softmax steps run right after the matmul that wrote it. Blocks of about 64 MiB measured
# fastest here at T=2048 (B=8, h=8): much smaller blocks make each BLAS call too small, one
# whole-matrix block streams 1 GiB through memory per softmax step. Up to T=512 (B=8, h=8)
# the whole matrix is one block.
BLOCK_BYTES = 64 * 2 ** 20


def query_blocks(lead_size, T_q, T_k, itemsize, block_bytes=None):
    """Slices of the query axis, each covering about block_bytes of the (..., T_q, T_k) scores."""
    block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
    rows = max(1, min(T_q, block_bytes // max(1, lead_size * T_k * itemsize)))
    return [slice(i, min(i + rows, T_q)) for i in range(0, T_q, rows)] or [slice(0, 0)]


def attention_forward(q, k, v, mask=None, dropout_p=0.0, rng=None, block_bytes=None):
    """Scaled dot-product attention, softmax(q k^T / sqrt(d_k)) v, keeping a cache for the backward.

    Inputs:
      q: (..., T_q, d_k) queries; k: (..., T_k, d_k) keys; v: (..., T_k, d_v) values,
         with the same leading dimensions (batch, heads)
      mask: optional boolean array broadcastable to (..., T_q, T_k); True = may attend. Masked
         scores become -inf, not -1e9 (see the module docstring), so their weights are exactly 0
      dropout_p: probability of dropping each attention weight (inverted dropout: the kept
         weights are divided by 1 - dropout_p, so the expectation is unchanged)
      rng: np.random.Generator used for dropout (required when dropout_p > 0)
      block_bytes: size of the blocks of query rows the scores are computed in (default
         BLOCK_BYTES); any value gives the same result, only speed and memory change
    Returns out of shape (..., T_q, d_v), cache (a dict; cache["weights"] are the weights used,
    after dropout, of shape (..., T_q, T_k); cache["probs"] the softmax before dropout).

    The cache holds ``out`` itself (the backward needs it): copy ``out`` before changing it in
    place, or the gradients will be wrong.
    """
    q, k, v = require_float(q, "q"), require_float(k, "k"), require_float(v, "v")
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k, v need at least 2 dimensions (T, d); got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"queries and keys must have the same size d_k: q {q.shape}, k {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"keys and values must have the same length T_k: k {k.shape}, v {v.shape}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            f"q, k, v must share their leading (batch, head) dimensions: q {q.shape}, k {k.shape}, v {v.shape}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.shape[-2] == 0:
        raise ValueError(f"attention needs at least one key, got k of shape {k.shape} (T_k = 0)")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0 and rng is None:
        raise ValueError("attention dropout needs an rng: pass rng=np.random.default_rng(seed)")
    *lead, T_q, d_k = q.shape
    T_k, d_v = k.shape[-2], v.shape[-1]
    if mask is not None:
        mask = check_mask(mask, (*lead, T_q, T_k))
    scale = 1.0 / np.sqrt(d_k)
    qs = q * q.dtype.type(scale)                                    # (..., T_q, d_k) scale the small operand
    kt = np.swapaxes(k, -1, -2)                                     # (..., d_k, T_k) a view

    probs = np.empty((*lead, T_q, T_k), dtype=q.dtype)              # (..., T_q, T_k) the one big array
    out = np.empty((*lead, T_q, d_v), dtype=q.dtype)                # (..., T_q, d_v)
    for rows in query_blocks(int(np.prod(lead)), T_q, T_k, q.itemsize, block_bytes):
        w = probs[..., rows, :]                                     # (..., Tb, T_k) a view, filled in place
        np.matmul(qs[..., rows, :], kt, out=w)                      # scores
        if mask is not None:
            mb = mask if mask.shape[-2] == 1 else mask[..., rows, :]
            np.copyto(w, -np.inf, where=~mb)                        # masked scores -> -inf
        m = np.max(w, axis=-1, keepdims=True)                       # (..., Tb, 1)
        if mask is not None:
            m[~np.isfinite(m)] = 0                                  # fully masked rows stay -inf
        w -= m                                                      # largest score 0: exp cannot overflow
        np.exp(w, out=w)                                            # masked entries: exp(-inf) = 0
        s = np.sum(w, axis=-1, keepdims=True)                       # (..., Tb, 1)
        if mask is not None:
            s[s == 0] = np.inf                                      # fully masked row: 0 * (1 / inf) = 0
        w *= np.reciprocal(s)                                       # (..., Tb, T_k) weights; one divide a row
        if dropout_p == 0:
            np.matmul(w, v, out=out[..., rows, :])                  # (..., Tb, d_v) while w is in cache

    if dropout_p > 0:
        keep = rng.random(probs.shape, dtype=np.float32) >= dropout_p   # (..., T_q, T_k) bool
        weights = probs * keep                                      # (..., T_q, T_k) a second copy
        weights *= weights.dtype.type(1.0 / (1.0 - dropout_p))
        np.matmul(weights, v, out=out)                              # (..., T_q, d_v)
    else:
        weights = probs
    cache = {"q": q, "k": k, "v": v, "probs": probs, "weights": weights, "out": out,
             "dropout_p": dropout_p, "scale": scale, "block_bytes": block_bytes}
    return out, cache


def attention_backward(dout, cache):
    """Backward of attention_forward: dout (..., T_q, d_v) -> dq (..., T_q, d_k), dk (..., T_k, d_k), dv (..., T_k, d_v).

    With P the softmax, W the weights used (P, or P with dropout) and dW = dout v^T, the score
    gradient is dS = P * (dP - rowsum(dP * P)), where dP = dW (no dropout) or dW * W / P.
    The row sum equals dout_i . out_i (also with dropout), which needs no (T_q, T_k) temporary,
    and dS is computed one block of query rows at a time in a reused buffer.
    """
    q, k, v = cache["q"], cache["k"], cache["v"]
    probs, w, out, scale = cache["probs"], cache["weights"], cache["out"], cache["scale"]
    dout = require_float(dout, "dout")
    if dout.shape != out.shape:
        raise ValueError(f"dout must have the shape of the attention output {out.shape}, got {dout.shape}")
    dout = dout.astype(w.dtype, copy=False)
    *lead, T_q, T_k = w.shape
    dv = np.matmul(np.swapaxes(w, -1, -2), dout)                    # (..., T_k, d_v)
    row = np.sum(dout * out, axis=-1, keepdims=True)                # (..., T_q, 1) = rowsum(dP * P)
    vt = np.swapaxes(v, -1, -2)                                     # (..., d_v, T_k) a view
    blocks = query_blocks(int(np.prod(lead)), T_q, T_k, w.itemsize, cache.get("block_bytes"))
    Tb = blocks[0].stop
    buf = np.empty((*lead, Tb, T_k), dtype=w.dtype)                 # (..., Tb, T_k) reused for every block
    dq = np.empty_like(q)                                           # (..., T_q, d_k)
    dk = np.zeros_like(k)                                           # (..., T_k, d_k) sums over blocks
    dk_part = np.empty_like(k) if len(blocks) > 1 else dk           # (..., T_k, d_k)
    for rows in blocks:
        ds = buf[..., : rows.stop - rows.start, :]                  # (..., Tb, T_k)
        np.matmul(dout[..., rows, :], vt, out=ds)                   # dW, the gradient of the weights used
        if w is probs:                                              # no dropout: dS = P * (dW - row)
            ds -= row[..., rows, :]
            ds *= probs[..., rows, :]
        else:                                                       # dropout: P * dP = W * dW
            ds *= w[..., rows, :]
            ds -= probs[..., rows, :] * row[..., rows, :]
        np.matmul(ds, k, out=dq[..., rows, :])                      # (..., Tb, d_k)
        np.matmul(np.swapaxes(ds, -1, -2), q[..., rows, :], out=dk_part)  # (..., T_k, d_k)
        if dk_part is not dk:
            dk += dk_part
    dq *= dq.dtype.type(scale)
    dk *= dk.dtype.type(scale)
    return dq, dk, dv


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0, rng=None):
    """softmax(q k^T / sqrt(d_k)) v. Shapes as in attention_forward; returns (out, weights).

    out: (..., T_q, d_v); weights: (..., T_q, T_k), after dropout when dropout_p > 0.
    """
    out, cache = attention_forward(q, k, v, mask=mask, dropout_p=dropout_p, rng=rng)
    return out, cache["weights"]


# ----------------------------------------------------------------------------
# masks (True = may attend)

def causal_mask(T):
    """(T, T) boolean mask, True on and below the diagonal: position t sees positions 0..t."""
    if int(T) != T or T < 1:
        raise ValueError(f"causal_mask needs a positive integer length, got {T!r}")
    return np.tril(np.ones((int(T), int(T)), dtype=bool))


def padding_mask(lengths, T):
    """(B, 1, 1, T) boolean mask, True where position < length: keys that are real tokens.

    lengths: (B,) integer lengths of each sequence, each in [0, T]. The shape broadcasts
    against scores (B, h, T_q, T).
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be a 1-D array of integers, got shape {lengths.shape}, dtype {lengths.dtype}")
    if np.any(lengths < 0) or np.any(lengths > T):
        raise ValueError(f"every length must lie in [0, T={T}], got {lengths.tolist()}")
    return (np.arange(T)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)
