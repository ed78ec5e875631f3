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
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

__all__ = [
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "scaled_dot_product_attention", "attention_forward", "attention_backward", "attention",
    "causal_mask", "padding_mask",
    "flash_attention_forward", "flash_attention_backward", "flash_attention", "flash_tiles",
    "linear_attention_forward", "linear_attention_backward", "linear_attention",
    "linear_attention_step", "linear_attention_recurrent", "elu_feature_map",
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


def check_bias(bias, scores_shape, dtype):
    """Check that an additive score bias broadcasts to scores_shape (..., T_q, T_k); return it in dtype."""
    bias = require_float(bias, "bias")
    if bias.ndim > len(scores_shape) or not all(
            b in (1, s) for b, s in zip(bias.shape[::-1], scores_shape[::-1])):
        raise ValueError(
            f"bias of shape {bias.shape} does not broadcast to attention scores of shape "
            f"{scores_shape} (..., T_q, T_k); each bias dimension must be 1 or equal the score's")
    if not np.all(np.isfinite(bias)):
        raise ValueError("bias must be finite: hide keys with the boolean mask, not with -inf in the bias")
    return bias.astype(dtype, copy=False)


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


# Threads. Each product of a (B, h, ...) stack is B*h small BLAS calls, and with several BLAS
# threads every one of them waits for all the threads; NumPy's elementwise softmax steps run in
# one thread. Instead, when BLAS has n > 1 threads, the first leading (batch) axis is split into
# chunks that n Python threads process at once (NumPy releases the GIL inside its loops), each
# with single-threaded BLAS: products and softmax both run in parallel, and each chunk's scores
# are still in cache when its softmax reads them. The BLAS thread count is restored afterwards.
# The calling thread and n - 1 pool threads take chunks from one shared list until it is empty,
# so a pool thread the scheduler wakes late costs nothing (the chunks it would have taken are
# done by the others). The pool threads are made once and kept: starting and joining new ones on
# every call cost 0.2 ms on an idle machine and 4-8 ms (median) on a busy one, more than a whole
# T=128 attention forward.
_blas = None
_pool = None                     # (n, ThreadPoolExecutor) made by chunk_pool
_pool_lock = threading.Lock()


def blas_controller():
    """threadpoolctl's handle on the loaded BLAS libraries, made once."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def chunk_pool(n):
    """The process's pool of n helper threads for run_chunks (made on first use, remade if n changes)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != n:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            _pool = (n, ThreadPoolExecutor(n, thread_name_prefix="attnkit-chunks"))
        return _pool[1]


def _forget_pool():
    """After fork the child has none of the parent's threads: make a new pool when one is needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


# Threads pay only for enough work. Handing chunks to the pool wakes a pool thread, and every
# chunk adds hand-offs between the threads; on this machine (a virtual one, whose idle CPUs halt
# at once) that cost 0.3-1 ms a call. A decoding step of B=8, h=4, one query over 64 keys
# (d_k=16) took 366 us threaded and 53 us in one thread; a (8, 4, 64, 64, 16) training-sized
# forward 1,048 us against 463 us; at (32, 4, 64, 64, 16), 34 million floating-point operations,
# the threads won, 1,293 us against 1,792 us. With B=1, h=8, T=128 split over heads, chunks of
# one head (4 million operations) took 1.5-2.1 ms a forward, of two heads 0.7-0.9 ms. So each
# chunk gets at least CHUNK_FLOPS of work, and a call with less than two chunks' worth runs in
# the calling thread. Above that, chunks are made as large as BIG_CHUNK_FLOPS while there are at
# least two: the B=8, h=8, T=128 forward (8 batch elements of 34 million operations) measured
# 3.9-4.1 ms in two chunks against 4.3-4.4 ms in eight (bench_attention, three runs each),
# and calls of 34-270 million operations were as fast or faster.
CHUNK_FLOPS = 8e6
BIG_CHUNK_FLOPS = 128e6
# Larger chunks also mean larger buffers: a chunk's scores are one array (attention() keeps one
# per thread), so the forward's chunks hold at most CHUNK_BYTES of them (at least one index).
CHUNK_BYTES = 2 * 2 ** 20


def run_chunks(fn, lead, serial=None, flops=None, most=None):
    """Call fn(index) for chunks of the first leading axis, in parallel when BLAS has threads.

    serial: with one thread, chunks of this many indices run one after another (None: one call
    on the whole axis); smaller pieces stay in cache between the softmax steps.
    flops: the call's floating-point operations, if known: at most flops / CHUNK_FLOPS chunks (with
    fewer than two the call runs in one thread), and no more than two or flops / BIG_CHUNK_FLOPS.
    most: with threads, at most this many indices a chunk (what a chunk's buffers may hold).
    """
    if not lead:
        fn(())
        return
    n = max([lib["num_threads"] for lib in blas_controller().info()] or [1])
    size = lead[0]
    count = size if not flops or not CHUNK_FLOPS else min(size, int(flops // CHUNK_FLOPS))   # chunks
    if count >= 2 and flops and BIG_CHUNK_FLOPS:
        count = min(count, max(2, int(flops // BIG_CHUNK_FLOPS)))   # fewer hand-offs when chunks are small
    if n == 1 or count < 2 or threading.current_thread().name.startswith("attnkit-chunks"):
        step = size if serial is None else max(1, serial)           # (a worker never waits on its own pool)
        for i in range(0, size, step):
            fn(slice(i, i + step) if step < size else slice(None))
        return
    if count > 4 * n:
        count = 2 * n                                               # a few even chunks per thread
    if most:
        count = max(count, -(-size // most))                        # chunks of at most `most` indices
    chunks = [slice(i * size // count, (i + 1) * size // count) for i in range(count)]
    todo, lock = iter(chunks), threading.Lock()

    def drain():                                                    # run chunks until none is left
        while True:
            with lock:
                c = next(todo, None)
            if c is None:
                return
            fn(c)

    with blas_controller().limit(limits=1):
        futures = [chunk_pool(n - 1).submit(drain) for _ in range(n - 1)]
        try:
            drain()                                                 # the caller works too
        finally:
            with lock:
                for _ in todo:                                      # after an error (or Ctrl-C): stop
                    pass
            for f in futures:
                f.cancel()                                          # not started yet: nothing left for it
            wait(futures)                                           # all done before BLAS threads return
    for f in futures:
        if not f.cancelled():
            f.result()                                              # re-raises a worker's exception


# One thread walks the batch in chunks of about SERIAL_BYTES of scores (at least one batch
# element): at B=8, h=8 one 4 MiB chunk at T=128 measured 9.6 ms a forward, 1 MiB chunks 5.7 ms
# (less memory is freshly allocated and page-faulted per call, and each chunk stays in cache);
# at T=512 one 64 MiB chunk was 10% slower than 8 MiB ones. Only when the whole score matrix is
# one query block: otherwise the blocks, whose size depends on the chunk's, would change how dk
# is summed, and its last bits.
SERIAL_BYTES = 2 ** 20


def attention_flops(lead, T_q, T_k, d_k, d_v):
    """Floating-point operations of one attention forward's two products, 2 T_q T_k (d_k + d_v) a matrix."""
    return 2.0 * float(np.prod(lead)) * T_q * T_k * (d_k + d_v)


def serial_chunk(lead, T_q, T_k, itemsize, block_bytes):
    """Indices of the first leading axis per chunk for run_chunks's one-thread path (None: all)."""
    if not lead or len(query_blocks(int(np.prod(lead)), T_q, T_k, itemsize, block_bytes)) > 1:
        return None
    return max(1, SERIAL_BYTES // max(1, int(np.prod(lead[1:])) * T_q * T_k * itemsize))


def batch_part(mask, bi, n_lead):
    """The part of a mask (or bias) broadcastable to (*lead, T_q, T_k) that goes with chunk bi.

    bi is a slice of the first leading axis, or (0, slice) for a batch of one split over its
    second axis (tile_chunks); n_lead = len(lead). Axes the mask lacks or has of size 1 are
    broadcast and kept whole; the batch of one's axis is dropped.
    """
    if bi == ():
        return mask
    missing = n_lead + 2 - mask.ndim                                # leading axes broadcast from the left
    index = [slice(None)] * mask.ndim
    for axis, part in enumerate(bi if isinstance(bi, tuple) else (bi,)):
        m_axis = axis - missing                                     # the mask's axis under lead axis `axis`
        if m_axis < 0:
            continue                                                # broadcast: the whole mask serves
        if isinstance(part, int):
            index[m_axis] = 0                                       # the batch of one (size 1): dropped
        elif mask.shape[m_axis] != 1:
            index[m_axis] = part
    return mask[tuple(index)]


def check_qkv(q, k, v):
    """Check the shapes and dtypes of attention's q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v)."""
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
    return q, k, v


def softmax_scores(qb, ktc, mc, bc, rows, w):
    """The attention weights of one block of query rows, written into w (..., Tb, T_k).

    qb: (..., Tb, d_k) the block's queries, already scaled by 1/sqrt(d_k); ktc: (..., d_k, T_k);
    mc, bc: the chunk's mask and bias (or None), of which rows selects the block's part.
    attention_forward and attention share it, so their arithmetic is the same on every element.
    """
    np.matmul(qb, ktc, out=w)                                       # scores
    if bc is not None:
        w += bc if bc.shape[-2] == 1 else bc[..., rows, :]          # + bias (..., Tb, T_k)
    if mc is not None:
        mb = mc if mc.shape[-2] == 1 else mc[..., rows, :]
        np.copyto(w, -np.inf, where=~mb)                            # masked scores -> -inf
    m = np.max(w, axis=-1, keepdims=True)                           # (..., Tb, 1)
    if mc is not None:
        m[~np.isfinite(m)] = 0                                      # fully masked rows stay -inf
    w -= m                                                          # largest score 0: exp cannot overflow
    np.exp(w, out=w)                                                # masked entries: exp(-inf) = 0
    s = np.sum(w, axis=-1, keepdims=True)                           # (..., Tb, 1)
    if mc is not None:
        s[s == 0] = np.inf                                          # fully masked row: 0 * (1 / inf) = 0
    w *= np.reciprocal(s)                                           # (..., Tb, T_k) weights; one divide a row


def fill_attention(q, k, v, mask, bias, block_bytes, probs, out):
    """The loop that attention_forward and attention share, over chunks of the leading dims
    (run_chunks) and blocks of query rows (query_blocks), on checked inputs.

    probs: the (..., T_q, T_k) array to fill with the weights, or None to compute each block's
    in this thread's scratch buffer (kept between calls); out: the (..., T_q, d_v) array to
    fill with the weights times v, or None (attention dropout multiplies afterwards).
    """
    *lead, T_q, d_k = q.shape
    T_k, d_v = k.shape[-2], v.shape[-1]
    scale = q.dtype.type(1.0 / np.sqrt(d_k))
    kt = np.swapaxes(k, -1, -2)                                     # (..., d_k, T_k) a view
    at, split = tile_chunks(lead)                                   # B = 1: split the heads instead

    def fill(bi):                                                   # one chunk of the leading dims
        i = at(bi)
        qc = np.multiply(q[i], scale, out=scratch("queries", q[i].shape, q.dtype))  # the small operand
        ktc, vc = kt[i], v[i]
        mc = None if mask is None else batch_part(mask, i, len(lead))
        bc = None if bias is None else batch_part(bias, i, len(lead))
        blocks = query_blocks(int(np.prod(qc.shape[:-2])), T_q, T_k, q.itemsize, block_bytes)
        if probs is None:
            wc = scratch("scores", (*qc.shape[:-2], blocks[0].stop, T_k), q.dtype)  # (..., Tb, T_k) reused
        for rows in blocks:
            w = wc[..., : rows.stop - rows.start, :] if probs is None else probs[i][..., rows, :]
            softmax_scores(qc[..., rows, :], ktc, mc, bc, rows, w)  # (..., Tb, T_k) in place
            if out is not None:
                np.matmul(w, vc, out=out[i][..., rows, :])          # (..., Tb, d_v) while w is in cache
    per_index = int(np.prod(split[1:])) * T_q * T_k * q.itemsize   # scores bytes of one index of split
    run_chunks(fill, split, serial_chunk(split, T_q, T_k, q.itemsize, block_bytes),
               flops=attention_flops(lead, T_q, T_k, d_k, d_v), most=max(1, CHUNK_BYTES // max(1, per_index)))


def attention_forward(q, k, v, mask=None, dropout_p=0.0, rng=None, block_bytes=None, bias=None):
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
      bias: optional finite float array broadcastable to (..., T_q, T_k), added to the scaled
         scores before the mask (ALiBi's distance penalties); fixed, it gets no gradient
    Returns out of shape (..., T_q, d_v), cache (a dict; cache["weights"] are the weights used,
    after dropout, of shape (..., T_q, T_k); cache["probs"] the softmax before dropout).

    The cache holds ``out`` itself (the backward needs it): copy ``out`` before changing it in
    place, or the gradients will be wrong.
    """
    q, k, v = check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0 and rng is None:
        raise ValueError("attention dropout needs an rng: pass rng=np.random.default_rng(seed)")
    *lead, T_q, d_k = q.shape
    T_k, d_v = k.shape[-2], v.shape[-1]
    if mask is not None:
        mask = check_mask(mask, (*lead, T_q, T_k))
    if bias is not None:
        bias = check_bias(bias, (*lead, T_q, T_k), q.dtype)
    scale = 1.0 / np.sqrt(d_k)
    probs = np.empty((*lead, T_q, T_k), dtype=q.dtype)              # (..., T_q, T_k) the one big array
    out = np.empty((*lead, T_q, d_v), dtype=q.dtype)                # (..., T_q, d_v)

    fill_attention(q, k, v, mask, bias, block_bytes, probs, None if dropout_p > 0 else out)

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
    dq = np.empty_like(q)                                           # (..., T_q, d_k)
    dk = np.zeros_like(k)                                           # (..., T_k, d_k) sums over blocks
    dv = np.empty_like(v)                                           # (..., T_k, d_v)

    at, split = tile_chunks(lead)                                   # as in the forward

    def grads(bi):                                                  # one chunk of the leading dims
        i = at(bi)
        wc, pc, doc, qc, kc = w[i], probs[i], dout[i], q[i], k[i]
        np.matmul(np.swapaxes(wc, -1, -2), doc, out=dv[i])          # (..., T_k, d_v)
        row = np.sum(doc * out[i], axis=-1, keepdims=True)          # (..., T_q, 1) = rowsum(dP * P)
        vt = np.swapaxes(v[i], -1, -2)                              # (..., d_v, T_k) a view
        blocks = query_blocks(int(np.prod(qc.shape[:-2])), T_q, T_k, w.itemsize, cache.get("block_bytes"))
        buf = np.empty((*qc.shape[:-2], blocks[0].stop, T_k), dtype=w.dtype)  # (..., Tb, T_k) reused
        dkc = dk[i]                                                 # (..., T_k, d_k) a view
        dk_part = np.empty_like(dkc) if len(blocks) > 1 else dkc    # (..., T_k, d_k)
        for rows in blocks:
            ds = buf[..., : rows.stop - rows.start, :]              # (..., Tb, T_k)
            np.matmul(doc[..., rows, :], vt, out=ds)                # dW, the gradient of the weights used
            if w is probs:                                          # no dropout: dS = P * (dW - row)
                ds -= row[..., rows, :]
                ds *= pc[..., rows, :]
            else:                                                   # dropout: P * dP = W * dW
                ds *= wc[..., rows, :]
                ds -= pc[..., rows, :] * row[..., rows, :]
            np.matmul(ds, kc, out=dq[i][..., rows, :])              # (..., Tb, d_k)
            np.matmul(np.swapaxes(ds, -1, -2), qc[..., rows, :], out=dk_part)  # (..., T_k, d_k)
            if dk_part is not dkc:
                dkc += dk_part
    run_chunks(grads, split, serial_chunk(split, T_q, T_k, w.itemsize, cache.get("block_bytes")),
               flops=2 * attention_flops(lead, T_q, T_k, q.shape[-1], v.shape[-1]))
    dq *= dq.dtype.type(scale)
    dk *= dk.dtype.type(scale)
    return dq, dk, dv


# fill_attention keeps each thread's scaled queries (and, for attention(), its scores) between
# calls, up to SCRATCH_BYTES: a freshly allocated buffer is fresh memory, and its first touch
# costs a page fault per 4 KiB page. On
# this machine that was most of the gap between attention() with a new buffer per call and the
# arithmetic alone (B=1, h=8, T=128, one thread: 1.14 ms against 0.62 ms).
SCRATCH_BYTES = 16 * 2 ** 20
_scratch = threading.local()


def scratch(name, shape, dtype):
    """This thread's buffer `name` as an array of shape and dtype, reused between calls when it
    is at most SCRATCH_BYTES (larger ones are made for the call and dropped)."""
    dtype, size = np.dtype(dtype), int(np.prod(shape))
    key = f"{name}_{dtype.name}"
    buf = getattr(_scratch, key, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        if buf.nbytes <= SCRATCH_BYTES:
            setattr(_scratch, key, buf)
    return buf[:size].reshape(shape)


def attention(q, k, v, mask=None, bias=None, block_bytes=None):
    """The output of attention_forward alone, for inference: softmax(q k^T / sqrt(d_k) + bias) v.

    Shapes, mask and bias as in attention_forward; returns out (..., T_q, d_v), equal bit for
    bit to attention_forward's (no dropout). Nothing is kept for a backward, so no
    (..., T_q, T_k) array is made: each thread computes its chunks' weights in one buffer (a
    chunk of the batch: one batch element's (h, T_q, T_k), or a few up to CHUNK_BYTES), kept
    between calls, instead of writing the whole weight tensor to fresh memory. This is what
    PyTorch does under torch.no_grad(); use attention_forward when you need the weights.
    """
    q, k, v = check_qkv(q, k, v)
    *lead, T_q, d_k = q.shape
    T_k, d_v = k.shape[-2], v.shape[-1]
    if mask is not None:
        mask = check_mask(mask, (*lead, T_q, T_k))
    if bias is not None:
        bias = check_bias(bias, (*lead, T_q, T_k), q.dtype)
    out = np.empty((*lead, T_q, d_v), dtype=q.dtype)                # (..., T_q, d_v)
    fill_attention(q, k, v, mask, bias, block_bytes, None, out)
    return out


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0, rng=None, bias=None):
    """softmax(q k^T / sqrt(d_k) + bias) v. Shapes as in attention_forward; returns (out, weights).

    out: (..., T_q, d_v); weights: (..., T_q, T_k), after dropout when dropout_p > 0.
    """
    out, cache = attention_forward(q, k, v, mask=mask, dropout_p=dropout_p, rng=rng, bias=bias)
    return out, cache["weights"]


# ----------------------------------------------------------------------------
# tiled attention with an online softmax (FlashAttention-2, Dao 2023, Algorithms 1 and 2)
#
# The output is computed one (block_q x block_k) tile of the score matrix at a time: no array
# of T_q x T_k ever exists. The softmax over a row of tiles is assembled with a running maximum
# m and a running sum l (Milakov & Gimelshein 2018): when a new tile raises the maximum from m
# to m', everything summed so far is multiplied by exp(m - m'), which makes the result exactly
# the one-pass softmax. The forward keeps only q, k, v, out and the row log-sum-exp L; the
# backward recomputes each tile's probabilities as exp(S - L) and uses D = rowsum(dO * O).
# Loops over tiles are the algorithm; each tile is computed for all batch and head dims at once.
#
# causal=True with T_q != T_k aligns the queries with the *last* T_q keys (query i sees keys
# j <= i + T_k - T_q), as when new queries attend to a cache of earlier keys; with T_q == T_k
# it is causal_mask(T). Tiles entirely above that diagonal are skipped.

FLASH_BLOCK_Q = 256      # default tile sizes: large enough that each product is one efficient
FLASH_BLOCK_K = 512      # BLAS call per (batch, head), small enough that a tile stays in cache


def check_block(size, name):
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{name} must be a positive integer number of rows in a tile, got {size!r}")
    return int(size)


def flash_tiles(T_q, T_k, block_q, block_k, causal=False):
    """The tiles tiled attention computes: a list of (rows, cols, on_diagonal) in forward order.

    rows and cols are slices of the query and key axes; on_diagonal says that the tile crosses
    the causal diagonal and needs the mask inside it. With causal=True the tiles entirely above
    the diagonal are left out; the full grid has ceil(T_q / block_q) * ceil(T_k / block_k) tiles.
    """
    block_q, block_k = check_block(block_q, "block_q"), check_block(block_k, "block_k")
    offset = T_k - T_q                                  # query i sees keys j <= i + offset
    tiles = []
    for i0 in range(0, T_q, block_q):
        i1 = min(i0 + block_q, T_q)
        for j0 in range(0, T_k, block_k):
            j1 = min(j0 + block_k, T_k)
            if causal and j0 > i1 - 1 + offset:         # every key after every query: skip
                continue
            tiles.append((slice(i0, i1), slice(j0, j1), causal and j1 - 1 > i0 + offset))
    return tiles


def check_key_mask(key_mask, lead, T_k):
    """A boolean key mask broadcast to (..., T_k); padding_mask's (B, 1, 1, T_k) is accepted too."""
    key_mask = np.asarray(key_mask)
    if key_mask.dtype != np.bool_:
        raise TypeError(f"key_mask must be boolean (True = may attend), got dtype {key_mask.dtype}; "
                        "pass key_mask.astype(bool) if 1 means 'keep'")
    if key_mask.ndim == len(lead) + 2 and key_mask.shape[-2] == 1:
        key_mask = key_mask[..., 0, :]                  # padding_mask's (B, 1, 1, T_k) -> (B, 1, T_k)
    target = (*lead, T_k)
    if (key_mask.ndim < 1 or key_mask.ndim > len(target)
            or not all(m in (1, t) for m, t in zip(key_mask.shape[::-1], target[::-1]))
            or key_mask.shape[-1] != T_k):
        raise ValueError(f"key_mask of shape {key_mask.shape} does not broadcast to (..., T_k) = {target}: "
                         "it masks keys only, one entry per key (for a (T_q, T_k) mask use attention_forward)")
    return np.broadcast_to(key_mask, target)                       # (..., T_k) a view


def tile_scores(q_i, k_j, rows, cols, on_diagonal, offset, key_mask, slopes=None, out=None):
    """One tile's scores q_i k_j^T (either one pre-scaled), plus ALiBi's -m |i + offset - j| when
    slopes (h,) are given (one per head, the axis before the tile's), -inf where masked: (..., bq, bk).
    out: optional (..., bq, bk) buffer the scores are written into (and returned)."""
    s = np.matmul(q_i, np.swapaxes(k_j, -1, -2), out=out)                     # (..., bq, bk)
    if slopes is not None:
        i = np.arange(rows.start, rows.stop)[:, None] + offset                # (bq, 1) query positions
        j = np.arange(cols.start, cols.stop)[None, :]                         # (1, bk) key positions
        s -= slopes[:, None, None] * np.abs(i - j).astype(s.dtype)           # (h, bq, bk): this tile's bias
    if on_diagonal:
        i = np.arange(rows.start, rows.stop)[:, None]                         # (bq, 1)
        j = np.arange(cols.start, cols.stop)[None, :]                         # (1, bk)
        np.copyto(s, -np.inf, where=j > i + offset)                           # the future
    if key_mask is not None:
        np.copyto(s, -np.inf, where=~key_mask[..., None, cols])               # padded keys
    return s


def tile_buffer(buf, shape):
    """A (..., bq, bk) view of the start of a reused tile buffer (edge tiles are smaller)."""
    return buf[..., : shape[-2], : shape[-1]]


def chunk_slopes(slopes, bi, n_lead):
    """The ALiBi slopes that go with chunk bi of the first leading axis (sliced when that axis is h)."""
    return slopes if slopes is None or n_lead > 1 or bi == () else slopes[bi]


def tile_chunks(lead):
    """How the kernels split their leading dims over threads: (index of chunk bi, dims to split).

    The first axis, or with one batch element (B = 1, lead (1, h, ...)) the next one, so that a
    single long sequence still runs its heads in parallel.
    """
    if len(lead) > 1 and lead[0] == 1:
        return (lambda bi: (0, bi)), lead[1:]
    return (lambda bi: bi), lead


def check_slopes(slopes, lead, dtype):
    """ALiBi slopes for the tiled kernel: None, or finite floats of shape (h,), h the head axis (lead[-1])."""
    if slopes is None:
        return None
    slopes = require_float(slopes, "alibi_slopes")
    if not lead or slopes.shape != (lead[-1],):
        raise ValueError(f"alibi_slopes must have one slope per head, shape ({lead[-1] if lead else 'h'},) "
                         f"for q of shape (..., h, T_q, d_k) with leading dims {tuple(lead)}, got {slopes.shape}")
    if not np.all(np.isfinite(slopes)):
        raise ValueError("alibi_slopes must be finite (attnkit.positions.alibi_slopes(h) gives the paper's)")
    return slopes.astype(dtype, copy=False)


def flash_attention_forward(q, k, v, causal=False, key_mask=None, block_q=FLASH_BLOCK_Q,
                            block_k=FLASH_BLOCK_K, alibi_slopes=None):
    """Attention computed tile by tile with an online softmax (FlashAttention-2's forward).

    Inputs: q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v) as in attention_forward;
      causal: hide the future (query i sees keys j <= i + T_k - T_q); key_mask: optional boolean
      (..., T_k), True = may attend (padding_mask's (B, 1, 1, T_k) works too); block_q, block_k:
      the tile size. A query that may attend to no key gets a zero output, as in attention_forward.
      alibi_slopes: optional (h,) floats for q of shape (..., h, T_q, d_k): ALiBi's bias
      -m_head |i - j| (query i at position i + T_k - T_q) is made tile by tile from the slopes, so
      no (T_q, T_k) bias exists either; equal to attention_forward with
      bias=attnkit.positions.alibi_bias(h, arange(T_k - T_q, T_k), arange(T_k)).
    Returns out (..., T_q, d_v), equal to attention_forward's up to rounding, and a cache holding
    q, k, v, out, the row log-sum-exp "lse" (..., T_q) and the tile counts "tiles" (computed)
    and "tiles_total" (the full grid). No (T_q, T_k) array is made.
    """
    q, k, v = check_qkv(q, k, v)
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"causal must be True or False, got {causal!r}")
    *lead, T_q, d_k = q.shape
    T_k, d_v = k.shape[-2], v.shape[-1]
    tiles = flash_tiles(T_q, T_k, block_q, block_k, causal)
    if key_mask is not None:
        key_mask = check_key_mask(key_mask, lead, T_k)                        # (..., T_k)
    slopes = check_slopes(alibi_slopes, lead, q.dtype)                        # (h,) or None
    dt = q.dtype.type
    scale = 1.0 / np.sqrt(d_k)
    offset = T_k - T_q
    out = np.zeros((*lead, T_q, d_v), dtype=q.dtype)                          # (..., T_q, d_v)
    lse = np.full((*lead, T_q), -np.inf, dtype=q.dtype)                       # (..., T_q)
    row_groups = {}                                                           # query block -> its tiles
    for rows, cols, on_diagonal in tiles:
        row_groups.setdefault((rows.start, rows.stop), []).append((cols, on_diagonal))

    at, split = tile_chunks(lead)

    def fill(bi):                                       # one chunk of the leading dims (run_chunks)
        i = at(bi)
        qc, kc, vc, oc, lc = q[i], k[i], v[i], out[i], lse[i]
        kmc = None if key_mask is None else key_mask[i]                       # (..., T_k)
        sc = chunk_slopes(slopes, bi, len(split))
        lead_c = qc.shape[:-2]
        buf = np.empty((*lead_c, min(block_q, T_q), min(block_k, T_k)), dtype=q.dtype)  # (..., bq, bk) reused
        for (i0, i1), row_tiles in row_groups.items():
            rows = slice(i0, i1)
            qs_i = qc[..., rows, :] * dt(scale)                               # (..., bq, d_k) scaled once
            m = np.full((*lead_c, i1 - i0, 1), -np.inf, dtype=q.dtype)        # (..., bq, 1) running max
            l = np.zeros((*lead_c, i1 - i0, 1), dtype=q.dtype)                # (..., bq, 1) running sum
            acc = np.zeros((*lead_c, i1 - i0, d_v), dtype=q.dtype)            # (..., bq, d_v) unnormalised
            pv = np.empty_like(acc)                                           # (..., bq, d_v) one tile's p v
            for cols, on_diagonal in row_tiles:
                p = tile_scores(qs_i, kc[..., cols, :], rows, cols, on_diagonal, offset, kmc, sc,
                                out=tile_buffer(buf, (i1 - i0, cols.stop - cols.start)))
                m_new = np.maximum(m, np.max(p, axis=-1, keepdims=True))      # (..., bq, 1)
                m_use = np.where(np.isfinite(m_new), m_new, dt(0))            # nothing visible yet: 0
                p -= m_use
                np.exp(p, out=p)                                              # (..., bq, bk) exp(S - m')
                alpha = np.exp(m - m_use)                                     # (..., bq, 1) old max -> new
                l *= alpha
                l += np.sum(p, axis=-1, keepdims=True)
                acc *= alpha                                                  # rescale, then add the tile
                acc += np.matmul(p, vc[..., cols, :], out=pv)                 # (..., bq, d_v)
                m = m_new
            seen = l > 0                                                      # (..., bq, 1)
            np.divide(acc, l, out=oc[..., rows, :], where=seen)               # (..., bq, d_v) zero if unseen
            with np.errstate(divide="ignore"):
                lc[..., rows] = (m + np.log(l))[..., 0]                       # (..., bq) -inf if unseen
    run_chunks(fill, split, serial=1,                   # one batch element's tiles at a time: in cache
               flops=attention_flops(lead, T_q, T_k, d_k, d_v))
    cache = {"q": q, "k": k, "v": v, "out": out, "lse": lse, "causal": bool(causal),
             "key_mask": key_mask, "block_q": block_q, "block_k": block_k, "scale": scale, "slopes": slopes,
             "tiles": len(tiles), "tiles_total": -(-T_q // block_q) * -(-T_k // block_k)}
    return out, cache


def flash_attention_backward(dout, cache):
    """Backward of flash_attention_forward (FlashAttention-2's Algorithm 2): dout (..., T_q, d_v) ->
    dq (..., T_q, d_k), dk (..., T_k, d_k), dv (..., T_k, d_v).

    Each tile's probabilities are recomputed from the scores and the saved log-sum-exp,
    P = exp(S - L), instead of being stored (compute traded for memory); with
    D = rowsum(dO * O) = rowsum(dP * P), the score gradient is dS = P * (dP - D).
    The outer loop runs over key blocks so that dk and dv of a block are finished in one pass.
    """
    q, k, v, out, lse = cache["q"], cache["k"], cache["v"], cache["out"], cache["lse"]
    dout = require_float(dout, "dout")
    if dout.shape != out.shape:
        raise ValueError(f"dout must have the shape of the attention output {out.shape}, got {dout.shape}")
    dout = dout.astype(q.dtype, copy=False)
    *lead, T_q, d_k = q.shape
    T_k = k.shape[-2]
    dt = q.dtype.type
    scale, offset, key_mask = cache["scale"], T_k - T_q, cache["key_mask"]
    block_q, block_k, slopes = cache["block_q"], cache["block_k"], cache.get("slopes")
    tiles = flash_tiles(T_q, T_k, block_q, block_k, cache["causal"])
    D = np.einsum("...i,...i->...", dout, out)[..., None]                     # (..., T_q, 1) no temporary
    L = np.where(np.isfinite(lse), lse, dt(np.inf))[..., None]                # (..., T_q, 1) unseen: P = 0
    dq = np.zeros_like(q)                                                     # (..., T_q, d_k) sums over key blocks
    dk = np.zeros_like(k)                                                     # (..., T_k, d_k)
    dv = np.zeros_like(v)                                                     # (..., T_k, d_v)
    col_groups = {}                                                           # key block -> its tiles
    for rows, cols, on_diagonal in tiles:
        col_groups.setdefault((cols.start, cols.stop), []).append((rows, on_diagonal))

    at, split = tile_chunks(lead)

    def grads(bi):                                      # one chunk of the leading dims (run_chunks)
        i = at(bi)
        qc, kc, vc, doc, Lc, Dc = q[i], k[i], v[i], dout[i], L[i], D[i]
        dqc, dkc, dvc = dq[i], dk[i], dv[i]                                   # views, written in place
        kmc = None if key_mask is None else key_mask[i]                       # (..., T_k)
        sc = chunk_slopes(slopes, bi, len(split))
        lead_c = qc.shape[:-2]
        shape = (*lead_c, min(block_q, T_q), min(block_k, T_k))
        pbuf, dsbuf = np.empty(shape, dtype=q.dtype), np.empty(shape, dtype=q.dtype)  # (..., bq, bk) reused
        for (j0, j1), col_tiles in col_groups.items():
            cols = slice(j0, j1)
            k_j, v_j = kc[..., cols, :], vc[..., cols, :]                     # (..., bk, d_k), (..., bk, d_v)
            ks_j = k_j * dt(scale)                                            # (..., bk, d_k) scaled once
            dk_j, dv_j = dkc[..., cols, :], dvc[..., cols, :]                 # views, summed over query blocks
            for rows, on_diagonal in col_tiles:
                tile = (rows.stop - rows.start, j1 - j0)
                p = tile_scores(qc[..., rows, :], ks_j, rows, cols, on_diagonal, offset, kmc, sc,
                                out=tile_buffer(pbuf, tile))
                p -= Lc[..., rows, :]
                np.exp(p, out=p)                                              # (..., bq, bk) P, recomputed
                dv_j += np.matmul(np.swapaxes(p, -1, -2), doc[..., rows, :])  # (..., bk, d_v)
                ds = np.matmul(doc[..., rows, :], np.swapaxes(v_j, -1, -2),
                               out=tile_buffer(dsbuf, tile))                  # (..., bq, bk) dP
                ds -= Dc[..., rows, :]
                ds *= p                                                       # dS = P * (dP - D)
                dqc[..., rows, :] += np.matmul(ds, k_j)                       # (..., bq, d_k)
                dk_j += np.matmul(np.swapaxes(ds, -1, -2), qc[..., rows, :])  # (..., bk, d_k)
    run_chunks(grads, split, serial=1, flops=2 * attention_flops(lead, T_q, T_k, d_k, v.shape[-1]))
    dq *= dt(scale)
    dk *= dt(scale)
    return dq, dk, dv


def flash_attention(q, k, v, causal=False, key_mask=None, block_q=FLASH_BLOCK_Q, block_k=FLASH_BLOCK_K,
                    alibi_slopes=None):
    """Tiled attention's output (..., T_q, d_v) only; see flash_attention_forward."""
    return flash_attention_forward(q, k, v, causal, key_mask, block_q, block_k, alibi_slopes)[0]


# ----------------------------------------------------------------------------
# linear attention (Katharopoulos et al. 2020): softmax(q . k) replaced by phi(q) . phi(k)
#
# With phi(x) = elu(x) + 1 > 0, out_i = sum_j (phi(q_i) . phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j).
# Because the similarity is a dot product of features, the sum over keys can be taken first:
# phi(K)^T V is (d_k, d_v) whatever T is, so the cost grows like T, not T^2. The causal form
# is also an RNN whose state S_t = sum_{j<=t} phi(k_j) v_j^T, z_t = sum_{j<=t} phi(k_j) has a
# fixed size: each decoded token costs the same. The normaliser is computed by the same sums on
# a column of ones appended to v.

def elu_feature_map(x):
    """phi(x) = elu(x) + 1: x + 1 for x > 0, exp(x) otherwise; always positive."""
    return np.where(x > 0, x + x.dtype.type(1), np.exp(np.minimum(x, 0)))


def elu_feature_map_backward(dphi, x):
    """Gradient through elu_feature_map: 1 for x > 0, exp(x) otherwise."""
    return dphi * np.where(x > 0, x.dtype.type(1), np.exp(np.minimum(x, 0)))


def linear_sums(a, b, c, causal, chunk, reverse=False):
    """Y_i = sum over j of (a_i . b_j) c_j: over all j, over j <= i (causal), or j >= i (reverse).

    a (..., T_a, d), b (..., T_b, d), c (..., T_b, e) -> (..., T_a, e). The causal sums run in
    chunks of `chunk` positions: inside a chunk the masked (chunk, chunk) products, across chunks a
    running state b^T c of shape (..., d, e), so the cost is linear in T.
    """
    if not causal:
        return np.matmul(a, np.matmul(np.swapaxes(b, -1, -2), c))             # (..., T_a, e)
    if reverse:                                                               # j >= i: run time backwards
        flip = lambda x: x[..., ::-1, :]                                      # noqa: E731
        return flip(linear_sums(flip(a), flip(b), flip(c), True, chunk))
    *lead, T, d = a.shape
    state = np.zeros((*lead, d, c.shape[-1]), dtype=a.dtype)                  # (..., d, e)
    y = np.empty((*lead, T, c.shape[-1]), dtype=a.dtype)                      # (..., T, e)
    for c0 in range(0, T, chunk):
        t = slice(c0, min(c0 + chunk, T))
        w = np.matmul(a[..., t, :], np.swapaxes(b[..., t, :], -1, -2))        # (..., C, C)
        w *= np.tri(w.shape[-1], dtype=bool)                                  # j <= i inside the chunk
        y[..., t, :] = np.matmul(w, c[..., t, :]) + np.matmul(a[..., t, :], state)  # (..., C, e)
        state += np.matmul(np.swapaxes(b[..., t, :], -1, -2), c[..., t, :])   # (..., d, e)
    return y


def linear_attention_forward(q, k, v, causal=False, chunk=64):
    """Linear attention with the feature map elu(x) + 1, in its parallel form.

    Inputs q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v) (causal needs T_q == T_k);
    chunk: positions per chunk of the causal form (any value gives the same result).
    Returns out (..., T_q, d_v) and a cache for linear_attention_backward.
    """
    q, k, v = check_qkv(q, k, v)
    chunk = check_block(chunk, "chunk")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal linear attention needs as many queries as keys: q {q.shape}, k {k.shape}")
    fq, fk = elu_feature_map(q), elu_feature_map(k)                           # (..., T_q, d_k), (..., T_k, d_k)
    v1 = np.concatenate([v, np.ones((*v.shape[:-1], 1), dtype=v.dtype)], axis=-1)  # (..., T_k, d_v + 1)
    n = linear_sums(fq, fk, v1, causal, chunk)                                # (..., T_q, d_v + 1)
    den = n[..., -1:]                                                         # (..., T_q, 1) > 0
    out = n[..., :-1] / den                                                   # (..., T_q, d_v)
    cache = {"q": q, "k": k, "fq": fq, "fk": fk, "v1": v1, "out": out, "den": den,
             "causal": bool(causal), "chunk": chunk}
    return out, cache


def linear_attention_backward(dout, cache):
    """Backward of linear_attention_forward: dout (..., T_q, d_v) -> dq, dk, dv.

    With n = [numerator, denominator], dn = [dout / den, -rowsum(dout * out) / den], and the
    gradients of Y_i = sum_j (a_i . b_j) c_j are sums of the same kind (reversed in time for
    the keys and values when causal).
    """
    q, k, fq, fk, v1, out, den = (cache[n] for n in ("q", "k", "fq", "fk", "v1", "out", "den"))
    causal, chunk = cache["causal"], cache["chunk"]
    dout = require_float(dout, "dout")
    if dout.shape != out.shape:
        raise ValueError(f"dout must have the shape of the attention output {out.shape}, got {dout.shape}")
    dout = dout.astype(q.dtype, copy=False)
    dn = np.concatenate([dout, -np.sum(dout * out, axis=-1, keepdims=True)], axis=-1) / den  # (..., T_q, d_v + 1)
    dfq = linear_sums(dn, v1, fk, causal, chunk)                              # (..., T_q, d_k)
    dfk = linear_sums(v1, dn, fq, causal, chunk, reverse=True)                # (..., T_k, d_k)
    dv1 = linear_sums(fk, fq, dn, causal, chunk, reverse=True)                # (..., T_k, d_v + 1)
    return elu_feature_map_backward(dfq, q), elu_feature_map_backward(dfk, k), dv1[..., :-1]


def linear_attention(q, k, v, causal=False, chunk=64):
    """Linear attention's output (..., T_q, d_v) only; see linear_attention_forward."""
    return linear_attention_forward(q, k, v, causal, chunk)[0]


def linear_attention_step(q_t, k_t, v_t, state=None):
    """One decoding step of causal linear attention as an RNN: constant cost per token.

    q_t, k_t (..., d_k), v_t (..., d_v): the new token's query, key and value; state (S, z) with
    S (..., d_k, d_v) = sum of phi(k_j) v_j^T and z (..., d_k) = sum of phi(k_j) over the past,
    or None at the start. Returns out_t (..., d_v) and the new state.
    """
    q_t, k_t, v_t = require_float(q_t, "q_t"), require_float(k_t, "k_t"), require_float(v_t, "v_t")
    if q_t.shape != k_t.shape or q_t.shape[:-1] != v_t.shape[:-1]:
        raise ValueError(f"q_t and k_t must have one shape (..., d_k) and v_t (..., d_v) the same leading "
                         f"dims: got {q_t.shape}, {k_t.shape}, {v_t.shape}")
    if state is None:
        state = (np.zeros((*k_t.shape, v_t.shape[-1]), dtype=k_t.dtype), np.zeros_like(k_t))
    S, z = state
    fq, fk = elu_feature_map(q_t), elu_feature_map(k_t)                       # (..., d_k)
    S = S + fk[..., :, None] * v_t[..., None, :]                              # (..., d_k, d_v)
    z = z + fk                                                                # (..., d_k)
    num = np.matmul(fq[..., None, :], S)[..., 0, :]                           # (..., d_v)
    out_t = num / np.sum(fq * z, axis=-1, keepdims=True)                      # (..., d_v)
    return out_t, (S, z)


def linear_attention_recurrent(q, k, v):
    """Causal linear attention one position at a time with linear_attention_step: (..., T, d_v)."""
    q, k, v = check_qkv(q, k, v)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal linear attention needs as many queries as keys: q {q.shape}, k {k.shape}")
    out = np.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype)               # (..., T, d_v)
    state = None
    for t in range(q.shape[-2]):
        out[..., t, :], state = linear_attention_step(q[..., t, :], k[..., t, :], v[..., t, :], state)
    return out


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
