"""Checkers for chapters 6, 7, 9 and 10: layer normalization, the feed-forward network,
embeddings and dropout.

    from attnkit.exercises.layers import check_layer_norm
    check_layer_norm(my_layer_norm)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import functools

import numpy as np

from .core import Hint, call, cases_rng, check, expect_array, expect_close, expect_whole

__all__ = ["check_layer_norm", "check_pre_ln_residual", "check_ffn_num_parameters",
           "check_feed_forward", "check_ffn_flops", "check_crossover_length", "check_encode",
           "check_embed_input",
           "check_inverted_dropout", "check_attention_dropout"]

# a nan here is diagnosed by the cases themselves (eps outside the square root, ...)
_result = functools.partial(expect_array, finite=False)


# ----------------------------------------------------------------------------
# chapter 6: layer normalization

def _layer_norm(x, gamma, beta, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _normalize(x, axis, eps, ddof=0):
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True, ddof=ddof)
    return (x - mu) / np.sqrt(var + eps)


def _layer_norm_cases(fn):
    rng = cases_rng(1234)
    eps = 1e-5
    x = rng.normal(2.0, 3.0, size=(2, 5, 8))                          # (B, T, d)
    ones, zeros = np.ones(8), np.zeros(8)

    # 1. plain normalization (gamma = 1, beta = 0)
    out = _result(call(fn, x, ones, zeros, eps), x.shape)
    expected = _layer_norm(x, ones, zeros, eps)
    if not np.allclose(out, expected, atol=1e-6):
        if np.all(np.isfinite(out)):
            for axis in (0, 1, (0, 1)):
                if np.allclose(out, _normalize(x, axis, eps), atol=1e-6):
                    raise Hint(f"you normalized over axis {axis}: layer norm takes the mean and variance "
                               "of each vector over its features, the last axis "
                               "(x.mean(axis=-1, keepdims=True)).")
            if np.allclose(out, _normalize(x, None, eps), atol=1e-6):
                raise Hint("you used the mean and standard deviation of the whole batch: layer norm "
                           "computes them per position, over the last axis only "
                           "(x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)).")
            if np.allclose(out, _normalize(x, -1, eps, ddof=1), atol=1e-6):
                raise Hint("you divided the variance by d - 1 (ddof=1): layer norm uses the plain "
                           "average of squared deviations (np.var's default, ddof=0).")
        expect_close(out, expected, what="the normalized output", atol=1e-6,
                     hint="Each row should have mean 0 and variance 1 when gamma = 1 and beta = 0.")

    # 2. a row whose entries are all equal has variance 0
    xc = x.copy()
    xc[0, 2] = 3.0
    out = _result(call(fn, xc, ones, zeros, eps), xc.shape)
    if not np.all(np.isfinite(out)):
        raise Hint("a row whose entries are all equal gives nan: its variance is 0, so (x - mean) / "
                   "sqrt(var) is 0 / 0. Add eps inside the square root: np.sqrt(var + eps).")
    expect_close(out, _layer_norm(xc, ones, zeros, eps), what="the output for a constant row", atol=1e-6)

    # 3. rows with a tiny spread: where eps sits matters
    xs = rng.normal(0.0, 1e-3, size=(4, 8))
    out = _result(call(fn, xs, ones, zeros, eps), xs.shape)
    expected = _layer_norm(xs, ones, zeros, eps)
    if not np.allclose(out, expected, atol=1e-4):
        std = xs.std(axis=-1, keepdims=True)
        if np.allclose(out, (xs - xs.mean(-1, keepdims=True)) / (std + eps), atol=1e-4):
            raise Hint("eps goes inside the square root, (x - mean) / np.sqrt(var + eps), not added "
                       "to the standard deviation: the two differ for rows with a small spread.")
        expect_close(out, expected, what="the output for rows with a small spread", atol=1e-4)

    # 4. learned scale and shift
    gamma, beta = rng.normal(1.0, 0.5, 8), rng.normal(0.0, 1.0, 8)
    out = _result(call(fn, x, gamma, beta, eps), x.shape)
    expected = _layer_norm(x, gamma, beta, eps)
    if not np.allclose(out, expected, atol=1e-6):
        xhat = _normalize(x, -1, eps)
        if np.allclose(out, xhat, atol=1e-6):
            raise Hint("you ignored gamma and beta: multiply the normalized x by gamma, then add beta.")
        if np.allclose(out, (xhat + beta) * gamma, atol=1e-6):
            raise Hint("scale first, then shift: x_hat * gamma + beta, not (x_hat + beta) * gamma.")
        expect_close(out, expected, what="the output with gamma and beta", atol=1e-6)


def check_layer_norm(fn):
    """Check fn(x, gamma, beta, eps) -> layer norm of x over its last axis, shape of x."""
    return check("layer_norm", fn, _layer_norm_cases)


def _pre_ln_cases(fn):
    rng = cases_rng(1234)
    x = rng.normal(1.0, 2.0, size=(2, 4, 6))                          # (B, T, d)
    W = rng.normal(0.0, 0.5, size=(6, 6))

    def sublayer(z):
        return np.tanh(z @ W)

    def norm(z):
        return _normalize(z, -1, 1e-5)

    out = _result(call(fn, x, sublayer, norm), x.shape)
    expected = x + sublayer(norm(x))
    if np.allclose(out, expected):
        return
    if np.allclose(out, norm(x + sublayer(x))):
        raise Hint("that is the post-LN block of the original Transformer, norm(x + sublayer(x)). "
                   "Pre-LN normalizes the sublayer's *input* and leaves the residual path alone: "
                   "x + sublayer(norm(x)).")
    if np.allclose(out, sublayer(norm(x))):
        raise Hint("you dropped the residual connection: add x back, x + sublayer(norm(x)).")
    if np.allclose(out, norm(x) + sublayer(norm(x))):
        raise Hint("the residual should carry x itself, not norm(x): x + sublayer(norm(x)). "
                   "An untouched residual path is the point of pre-LN.")
    if np.allclose(out, norm(x + sublayer(norm(x)))):
        raise Hint("you normalized twice: pre-LN has no normalization after the addition; "
                   "return x + sublayer(norm(x)).")
    expect_close(out, expected, what="the block's output", hint="Expected x + sublayer(norm(x)).")


def check_pre_ln_residual(fn):
    """Check fn(x, sublayer, norm) -> a pre-LN residual block, x + sublayer(norm(x))."""
    return check("pre_ln_residual", fn, _pre_ln_cases)


# ----------------------------------------------------------------------------
# chapter 7: the position-wise feed-forward network

def _ffn_count_cases(fn):
    for d_model, d_ff in ((512, 2048), (64, 256), (10, 3)):
        n = call(fn, d_model, d_ff)
        if n is None:
            raise NotImplementedError
        expected = d_model * d_ff + d_ff + d_ff * d_model + d_model
        if not isinstance(n, (int, np.integer)):
            raise Hint(f"return an integer, got {type(n).__name__} ({n!r})")
        if n == expected:
            continue
        where = f"(for d_model={d_model}, d_ff={d_ff} you returned {n:,}, expected {expected:,})"
        if n == 2 * d_model * d_ff:
            raise Hint(f"you counted the weights but not the biases {where}: W1 has d_model*d_ff "
                       "entries and b1 has d_ff, W2 has d_ff*d_model and b2 has d_model.")
        if n == 2 * d_model * d_ff + d_ff or n == 2 * d_model * d_ff + d_model:
            raise Hint(f"you counted only one of the two biases {where}: b1 has d_ff entries and b2 has "
                       f"d_model.")
        if n == 2 * d_model * d_ff + 2 * d_model or n == 2 * d_model * d_ff + 2 * d_ff:
            raise Hint(f"the two biases have different sizes {where}: b1 has d_ff entries (the hidden "
                       "width) and b2 has d_model (the output width).")
        if n in (d_model * d_ff + d_ff, d_ff * d_model + d_model):
            raise Hint(f"you counted only one of the two linear layers {where}.")
        raise Hint(f"the count is off {where}: add up W1 (d_model x d_ff), b1 (d_ff), "
                   "W2 (d_ff x d_model) and b2 (d_model).")


def check_ffn_num_parameters(fn):
    """Check fn(d_model, d_ff) -> number of parameters of the feed-forward network (an int)."""
    return check("ffn_num_parameters", fn, _ffn_count_cases)


def _ffn_cases(fn):
    rng = cases_rng(1234)
    B, T, d, d_ff = 2, 5, 6, 16
    x = rng.normal(size=(B, T, d))
    W1, b1 = rng.normal(0, 0.5, size=(d, d_ff)), rng.normal(0, 0.5, size=d_ff)
    W2, b2 = rng.normal(0, 0.5, size=(d_ff, d)), rng.normal(0, 0.5, size=d)
    out = _result(call(fn, x, W1, b1, W2, b2), (B, T, d), "the output")
    expected = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    if np.allclose(out, expected):
        return
    if np.allclose(out, (x @ W1 + b1) @ W2 + b2):
        raise Hint("you left out the ReLU: without a nonlinearity between them the two layers "
                   "collapse into one linear map. Use np.maximum(x @ W1 + b1, 0).")
    if np.allclose(out, np.maximum(expected, 0)):
        raise Hint("the ReLU goes between the two layers only: the output x W1 ... W2 + b2 must be "
                   "able to take negative values.")
    if np.allclose(out, np.maximum(x @ W1, 0) @ W2 + b2) or np.allclose(out, np.maximum(x @ W1 + b1, 0) @ W2):
        raise Hint("a bias is missing: FFN(x) = max(0, x W1 + b1) W2 + b2.")
    expect_close(out, expected, what="the output", hint="Expected max(0, x W1 + b1) W2 + b2.")


def check_feed_forward(fn):
    """Check fn(x, W1, b1, W2, b2) -> max(0, x W1 + b1) W2 + b2 for x of shape (B, T, d_model)."""
    return check("feed_forward", fn, _ffn_cases)


# ----------------------------------------------------------------------------
# chapter 9: tokens to vectors

def _encode_cases(fn):
    vocab = {"<pad>": 0, "<unk>": 1, "the": 2, "cat": 3, "sat": 4, "on": 5, "mat": 6}
    tokens = ["the", "cat", "sat", "on", "the", "mat"]
    out = call(fn, list(tokens), dict(vocab))
    if out is None:
        raise NotImplementedError
    out = np.asarray(out)
    if out.shape != (len(tokens),) or not np.issubdtype(out.dtype, np.integer):
        raise Hint(f"return one integer id per token (a list or a 1-D integer array of length "
                   f"{len(tokens)}), got shape {out.shape} and dtype {out.dtype}")
    if out.tolist() != [2, 3, 4, 5, 2, 6]:
        raise Hint(f"for {tokens} expected ids [2, 3, 4, 5, 2, 6], got {out.tolist()}: look each token up "
                   f"in vocab.")
    tokens = ["the", "dog", "sat", "on", "a", "mat"]
    try:
        out = call(fn, list(tokens), dict(vocab))
    except Hint as h:
        if "KeyError" in str(h):
            raise Hint("an unknown word raised KeyError: words missing from the vocabulary map to "
                       "vocab['<unk>'] (use vocab.get(token, vocab['<unk>'])).") from None
        raise
    out = np.asarray(out).tolist()
    if out == [2, 0, 4, 5, 0, 6]:
        raise Hint("unknown words got the <pad> id: <pad> marks positions that hold no token at all "
                   "(and gets masked out); unknown words map to <unk>.")
    if out != [2, 1, 4, 5, 1, 6]:
        raise Hint(f"for {tokens} expected ids [2, 1, 4, 5, 1, 6] ('dog' and 'a' are unknown), got {out}")


def check_encode(fn):
    """Check fn(tokens, vocab) -> list of ids, with unknown tokens mapped to vocab['<unk>']."""
    return check("encode", fn, _encode_cases)


def _embed_cases(fn):
    rng = cases_rng(1234)
    V, d, max_len, B, T = 11, 16, 20, 2, 7
    E = rng.normal(0, 1 / np.sqrt(d), size=(V, d))
    pe = rng.normal(size=(max_len, d))
    ids = rng.integers(0, V, size=(B, T))
    ids[0, :3] = [3, 3, 9]
    out = _result(call(fn, ids, E, pe), (B, T, d), "the input to the first layer")
    expected = E[ids] * np.sqrt(d) + pe[:T]
    if np.allclose(out, expected):
        return
    if np.allclose(out, E[ids] + pe[:T]):
        raise Hint("you forgot the scaling: multiply the embeddings by sqrt(d_model) before adding "
                   "the positional encoding, E[ids] * np.sqrt(d_model) + pe[:T].")
    if np.allclose(out, (E[ids] + pe[:T]) * np.sqrt(d)):
        raise Hint("only the token embeddings are scaled by sqrt(d_model), not the positional encoding.")
    if np.allclose(out, E[ids] / np.sqrt(d) + pe[:T]):
        raise Hint("multiply by sqrt(d_model), don't divide: the embeddings start small (about "
                   "1/sqrt(d_model) "
                   "per entry) and the scaling brings them to the size of the positional encoding.")
    if np.allclose(out, E[ids] * d + pe[:T]):
        raise Hint("scale by the square root of d_model, not by d_model itself.")
    if np.allclose(out, E[ids] * np.sqrt(d) + pe[ids]):
        raise Hint("the positional encoding is indexed by position (pe[:T], the same for every "
                   "sequence in the batch), not by token id.")
    expect_close(out, expected, what="the input", hint="Expected E[ids] * sqrt(d_model) + pe[:T].")


def check_embed_input(fn):
    """Check fn(ids, E, pe) -> E[ids] * sqrt(d_model) + pe[:T] for ids of shape (B, T)."""
    return check("embed_input", fn, _embed_cases)


# ----------------------------------------------------------------------------
# chapter 10: dropout

def _dropout_cases(fn):
    p = 0.2
    x = cases_rng(1234).uniform(1.0, 2.0, size=(400, 250))               # positive, so a 0 means dropped

    out = call(fn, x, p, cases_rng(0), training=False)
    out = _result(out, x.shape, "the output in eval mode")
    if not np.array_equal(out, x):
        raise Hint("in eval mode (training=False) dropout must return x unchanged: inverted dropout "
                   "already rescaled during training, so inference uses every unit as is.")

    out = _result(call(fn, x, p, cases_rng(0), training=True), x.shape)
    dropped = out == 0
    kept = ~dropped
    if not dropped.any():
        raise Hint("in training mode no entry was zeroed: drop each entry with probability p.")
    if np.allclose(out[kept], x[kept]):
        raise Hint("you forgot the rescaling: divide the kept entries by (1 - p). Without it the "
                   "expected value of every unit shrinks by a factor (1 - p) during training.")
    if np.allclose(out[kept], x[kept] * (1 - p)):
        raise Hint("divide the kept entries by (1 - p), don't multiply: the survivors must grow to "
                   "make up for the dropped ones.")
    if not np.allclose(out[kept], x[kept] / (1 - p)):
        raise Hint("kept entries should equal x / (1 - p), and dropped entries 0.")
    frac = dropped.mean()
    if abs(frac - (1 - p)) < 0.02:
        raise Hint(f"you dropped {frac:.0%} of the entries with p = {p}: that is 1 - p. "
                   "rng.random(x.shape) < p marks the entries to drop.")
    if abs(frac - p) > 0.02:
        raise Hint(f"you dropped {frac:.1%} of the entries, expected about p = {p:.0%}.")

    again = call(fn, x, p, cases_rng(0), training=True)
    if not np.array_equal(np.asarray(again), out):
        raise Hint("two calls with the same seeded rng gave different masks: draw the random numbers "
                   "from the rng argument (rng.random(x.shape)), not from np.random.")
    other = call(fn, x, p, cases_rng(1), training=True)
    if np.array_equal(np.asarray(other), out):
        raise Hint("the mask does not depend on the rng: draw a fresh random mask with rng.random(x.shape).")


def check_inverted_dropout(fn):
    """Check fn(x, p, rng, training=True) -> inverted dropout of x (identity when training=False)."""
    return check("inverted_dropout", fn, _dropout_cases)


def _attention_dropout_cases(fn):
    crng = cases_rng(1234)
    T, d, p, n = 5, 8, 0.3, 4000
    q, k, v = crng.normal(size=(T, d)), crng.normal(size=(T, d)), crng.normal(1.0, 1.0, size=(T, d))
    s = q @ k.T / np.sqrt(d)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    exact = w @ v                                                     # (T, d)

    out = _result(call(fn, q, k, v, p, cases_rng(0), training=False), (T, d), "the output in eval mode")
    if not np.allclose(out, exact):
        raise Hint("in eval mode (training=False) the output must be plain attention, "
                   "softmax(q k^T / sqrt(d_k)) v, with no dropout.")

    rng = cases_rng(0)
    outs = np.stack([_result(call(fn, q, k, v, p, rng, training=True), (T, d)) for _ in range(n)])
    if np.allclose(outs, exact):
        raise Hint("in training mode nothing was dropped: apply dropout to the attention weights.")
    if np.mean(outs == 0) > 0.1:
        raise Hint("whole output entries are zero: you dropped the output. Dropout goes on the "
                   "attention weights, the (T_q, T_k) matrix after the softmax, before multiplying by v.")
    mean = outs.mean(axis=0)
    if np.allclose(mean, exact, atol=0.1):
        return
    if np.allclose(mean, (1 - p) * exact, atol=0.1):
        raise Hint("on average the output shrank by a factor (1 - p): divide the kept weights by (1 - p).")
    raise Hint(f"averaged over {n} runs the output differs from attention without dropout (largest "
               f"difference {np.max(np.abs(mean - exact)):.2f}): drop weights after the softmax, "
               "not scores before it, and rescale the kept ones by 1 / (1 - p).")


def check_attention_dropout(fn):
    """Check fn(q, k, v, p, rng, training=True) -> dropout(softmax(q k^T / sqrt(d_k))) v for (T, d) inputs."""
    return check("attention_dropout", fn, _attention_dropout_cases)


# ----------------------------------------------------------------------------
# transfer task (chapter 7): the FFN's cost against attention's, and where they cross

def _ffn_flops(T, d_model, d_ff):
    return 4 * T * d_model * d_ff                    # two products, (T, d) @ (d, d_ff) and back


def _crossover(d_model, d_ff):
    """Smallest T >= 1 with attention's 8 T d^2 + 4 T^2 d >= the FFN's 4 T d d_ff: T >= d_ff - 2 d."""
    return max(1, d_ff - 2 * d_model)


def _ffn_flop_cases(fn):
    for T, d_model, d_ff in ((10, 8, 32), (100, 512, 2048), (7, 12, 20)):
        got = expect_whole(call(fn, T, d_model, d_ff), f"the FLOPs for T={T}, d_model={d_model}, d_ff={d_ff}")
        want = _ffn_flops(T, d_model, d_ff)
        if got == want:
            continue
        where = f"for T={T}, d_model={d_model}, d_ff={d_ff} you count {got:,}"
        if got * 2 == want:
            raise Hint(f"{where}, half of {want:,}: the FFN has two products, W_1 (d_model, d_ff) and "
                       "W_2 (d_ff, d_model), each 2 T d_model d_ff FLOPs; did you count one, or "
                       "one FLOP per multiply-add?")
        raise Hint(f"{where}, expected {want:,}: two products of 2 T d_model d_ff FLOPs each "
                   "(leave out the biases and the ReLU).")


def check_ffn_flops(fn):
    """Check fn(T, d_model, d_ff) -> FLOPs of the FFN's two matrix products on T positions."""
    return check("FLOPs of the feed-forward network", fn, _ffn_flop_cases,
                 "4 T d_model d_ff: linear in T, like the attention projections.")


def _crossover_cases(fn):
    for d_model, d_ff in ((512, 2048), (64, 256), (768, 3072), (100, 150), (128, 1000)):
        got = expect_whole(call(fn, d_model, d_ff), f"the length for d_model={d_model}, d_ff={d_ff}")
        want = _crossover(d_model, d_ff)
        if got == want:
            continue
        where = f"for d_model={d_model}, d_ff={d_ff} you answer {got:,}"
        if got == d_ff:
            raise Hint(f"{where}: that is where attention's T^2 term alone (4 T^2 d) equals the FFN; "
                       "the question compares the whole attention layer, projections (8 T d^2) included.")
        if got == max(1, d_ff - 2 * d_model) + 1 or got == max(1, d_ff - 2 * d_model) - 1:
            raise Hint(f"{where}, one off: the smallest T with attention >= FFN solves "
                       "8 T d^2 + 4 T^2 d >= 4 T d d_ff exactly at T = d_ff - 2 d_model.")
        if got == 2 * d_model:
            raise Hint(f"{where}: that is the answer for d_ff = 4 d_model only; work it out for any d_ff.")
        if d_ff <= 2 * d_model and got != 1:
            raise Hint(f"{where}: with d_ff <= 2 d_model the attention layer's projections alone "
                       "cost as much as the FFN, so it is at least as costly from T = 1 on.")
        raise Hint(f"{where}, expected {want:,}: divide 8 T d^2 + 4 T^2 d >= 4 T d d_ff by 4 T d.")


def check_crossover_length(fn):
    """Check fn(d_model, d_ff) -> smallest T at which a self-attention layer costs at least the FFN."""
    return check("attention against the FFN", fn, _crossover_cases,
                 "T = d_ff - 2 d_model (1024 for the paper's 512 and 2048): below it the FFN is the "
                 "larger cost of a layer, above it attention's T^2 grows past it.")
