"""The checkers of chapters 6-10 pass the reference solutions and fail typical wrong answers with
their specific hint."""
import numpy as np
import pytest

from attnkit.exercises.layers import (check_attention_dropout, check_embed_input, check_encode,
                                      check_feed_forward, check_ffn_num_parameters,
                                      check_inverted_dropout, check_layer_norm, check_pre_ln_residual)
from attnkit.exercises.masking import check_causal_mask, check_combined_mask, check_masked_softmax

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


# ---------------------------------------------------------------- chapter 6: layer norm

def ln_ref(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def test_layer_norm_reference_passes():
    passes(check_layer_norm(ln_ref))


def test_layer_norm_not_done():
    def todo(x, gamma, beta, eps=1e-5):
        ...
    fails_with(check_layer_norm(todo), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, g, b, eps: (x - x.mean(0, keepdims=True)) / np.sqrt(x.var(0, keepdims=True) + eps) * g + b,
     "you normalized over axis 0"),
    (lambda x, g, b, eps: (x - x.mean(-2, keepdims=True)) / np.sqrt(x.var(-2, keepdims=True) + eps) * g + b,
     "you normalized over axis 1"),
    (lambda x, g, b, eps: (x - x.mean()) / np.sqrt(x.var() + eps) * g + b, "of the whole batch"),
    (lambda x, g, b, eps: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True, ddof=1) + eps) * g + b,
     "ddof=1"),
    (lambda x, g, b, eps: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True)) * g + b,
     "Add eps inside the square root"),
    (lambda x, g, b, eps: (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + eps) * g + b,
     "eps goes inside the square root"),
    (lambda x, g, b, eps: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps),
     "you ignored gamma and beta"),
    (lambda x, g, b, eps: ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) + b) * g,
     "scale first, then shift"),
])
def test_layer_norm_wrong_answers(wrong, hint):
    with np.errstate(all="ignore"):
        fails_with(check_layer_norm(wrong), hint)


def pre_ln_ref(x, sublayer, norm):
    return x + sublayer(norm(x))


def test_pre_ln_reference_passes():
    passes(check_pre_ln_residual(pre_ln_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, f, n: n(x + f(x)), "post-LN"),
    (lambda x, f, n: f(n(x)), "dropped the residual"),
    (lambda x, f, n: n(x) + f(n(x)), "not norm(x)"),
    (lambda x, f, n: n(x + f(n(x))), "normalized twice"),
    (lambda x, f, n: x + f(x), "Expected x + sublayer(norm(x))"),
])
def test_pre_ln_wrong_answers(wrong, hint):
    fails_with(check_pre_ln_residual(wrong), hint)


# ---------------------------------------------------------------- chapter 7: feed-forward

def test_ffn_count_reference_passes():
    passes(check_ffn_num_parameters(lambda d, f: d * f + f + f * d + d))


@pytest.mark.parametrize("wrong, hint", [
    (lambda d, f: 2 * d * f, "not the biases"),
    (lambda d, f: 2 * d * f + f, "only one of the two biases"),
    (lambda d, f: 2 * d * f + 2 * f, "different sizes"),
    (lambda d, f: d * f + f, "only one of the two linear layers"),
    (lambda d, f: 4 * d * f, "the count is off"),
    (lambda d, f: float(2 * d * f + d + f), "return an integer"),
])
def test_ffn_count_wrong_answers(wrong, hint):
    fails_with(check_ffn_num_parameters(wrong), hint)


def ffn_ref(x, W1, b1, W2, b2):
    return np.maximum(x @ W1 + b1, 0) @ W2 + b2


def test_feed_forward_reference_passes():
    passes(check_feed_forward(ffn_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, W1, b1, W2, b2: (x @ W1 + b1) @ W2 + b2, "left out the ReLU"),
    (lambda x, W1, b1, W2, b2: np.maximum(np.maximum(x @ W1 + b1, 0) @ W2 + b2, 0), "between the two layers only"),
    (lambda x, W1, b1, W2, b2: np.maximum(x @ W1, 0) @ W2 + b2, "a bias is missing"),
    (lambda x, W1, b1, W2, b2: np.maximum(x @ W1 + b1, 0) @ W2, "a bias is missing"),
    (lambda x, W1, b1, W2, b2: np.maximum(x @ W2.T + b1, 0) @ W2 + b2, "Expected max(0, x W1 + b1) W2 + b2"),
    (lambda x, W1, b1, W2, b2: np.maximum(x @ W1.T + b1, 0) @ W2 + b2, "your function raised ValueError"),
])
def test_feed_forward_wrong_answers(wrong, hint):
    fails_with(check_feed_forward(wrong), hint)


# ---------------------------------------------------------------- chapter 9: embeddings

def encode_ref(tokens, vocab):
    return [vocab.get(t, vocab["<unk>"]) for t in tokens]


def test_encode_reference_passes():
    passes(check_encode(encode_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda tokens, vocab: [vocab[t] for t in tokens], "raised KeyError"),
    (lambda tokens, vocab: [vocab.get(t, 0) for t in tokens], "got the <pad> id"),
    (lambda tokens, vocab: [vocab.get(t, -1) for t in tokens], "'dog' and 'a' are unknown"),
    (lambda tokens, vocab: [float(vocab.get(t, 1)) for t in tokens], "one integer id per token"),
    (lambda tokens, vocab: [vocab.get(t, 1) + 1 for t in tokens], "look each token up"),
])
def test_encode_wrong_answers(wrong, hint):
    fails_with(check_encode(wrong), hint)


def embed_ref(ids, E, pe):
    return E[ids] * np.sqrt(E.shape[1]) + pe[:ids.shape[1]]


def test_embed_input_reference_passes():
    passes(check_embed_input(embed_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda ids, E, pe: E[ids] + pe[:ids.shape[1]], "you forgot the scaling"),
    (lambda ids, E, pe: (E[ids] + pe[:ids.shape[1]]) * np.sqrt(E.shape[1]), "not the positional encoding"),
    (lambda ids, E, pe: E[ids] / np.sqrt(E.shape[1]) + pe[:ids.shape[1]], "don't divide"),
    (lambda ids, E, pe: E[ids] * E.shape[1] + pe[:ids.shape[1]], "not by d_model itself"),
    (lambda ids, E, pe: E[ids] * np.sqrt(E.shape[1]) + pe[ids], "indexed by position"),
    (lambda ids, E, pe: E[ids] * np.sqrt(E.shape[1]) + pe, "your function raised ValueError"),
])
def test_embed_input_wrong_answers(wrong, hint):
    fails_with(check_embed_input(wrong), hint)


# ---------------------------------------------------------------- chapter 10: dropout

def dropout_ref(x, p, rng, training=True):
    if not training or p == 0:
        return x
    keep = rng.random(x.shape) >= p
    return x * keep / (1 - p)


def test_dropout_reference_passes():
    passes(check_inverted_dropout(dropout_ref))


def _drop(scale, drop_prob=lambda p: p, use_rng=True, always=False, eval_too=False, fixed=False):
    def fn(x, p, rng, training=True):
        if not training and not eval_too:
            return x
        r = (np.random.default_rng(0) if fixed else rng if use_rng else np.random.default_rng())
        keep = r.random(x.shape) >= drop_prob(p)
        return x * keep * scale(p)
    return fn


@pytest.mark.parametrize("wrong, hint", [
    (_drop(lambda p: 1 / (1 - p), eval_too=True), "in eval mode (training=False) dropout must return x unchanged"),
    (_drop(lambda p: 1.0), "you forgot the rescaling"),
    (_drop(lambda p: 1 - p), "don't multiply"),
    (_drop(lambda p: 1 / (1 - p), drop_prob=lambda p: 1 - p), "that is 1 - p"),
    (_drop(lambda p: 1 / (1 - p), drop_prob=lambda p: p / 2), "expected about p = 20%"),
    (_drop(lambda p: 1 / (1 - p), use_rng=False), "from the rng argument"),
    (_drop(lambda p: 1 / (1 - p), fixed=True), "does not depend on the rng"),
    (lambda x, p, rng, training=True: x, "no entry was zeroed"),
])
def test_dropout_wrong_answers(wrong, hint):
    fails_with(check_inverted_dropout(wrong), hint)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attn_dropout_ref(q, k, v, p, rng, training=True):
    w = _softmax(q @ k.T / np.sqrt(q.shape[-1]))
    if training and p > 0:
        w = w * (rng.random(w.shape) >= p) / (1 - p)
    return w @ v


def test_attention_dropout_reference_passes():
    passes(check_attention_dropout(attn_dropout_ref))


def attn_no_rescale(q, k, v, p, rng, training=True):
    w = _softmax(q @ k.T / np.sqrt(q.shape[-1]))
    if training:
        w = w * (rng.random(w.shape) >= p)
    return w @ v


def attn_drop_output(q, k, v, p, rng, training=True):
    out = _softmax(q @ k.T / np.sqrt(q.shape[-1])) @ v
    if training:
        out = out * (rng.random(out.shape) >= p) / (1 - p)
    return out


def attn_drop_scores(q, k, v, p, rng, training=True):
    s = q @ k.T / np.sqrt(q.shape[-1])
    if training:
        s = s * (rng.random(s.shape) >= p) / (1 - p)
    return _softmax(s) @ v


def attn_drop_always(q, k, v, p, rng, training=True):
    return attn_dropout_ref(q, k, v, p, rng, training=True)


@pytest.mark.parametrize("wrong, hint", [
    (attn_no_rescale, "shrank by a factor (1 - p)"),
    (attn_drop_output, "you dropped the output"),
    (attn_drop_scores, "not scores before it"),
    (attn_drop_always, "in eval mode (training=False) the output must be plain attention"),
    (lambda q, k, v, p, rng, training=True: attn_dropout_ref(q, k, v, p, rng, training=False), "nothing was dropped"),
])
def test_attention_dropout_wrong_answers(wrong, hint):
    fails_with(check_attention_dropout(wrong), hint)


# ---------------------------------------------------------------- chapter 8: masks

def test_causal_mask_reference_passes():
    passes(check_causal_mask(lambda T: np.tril(np.ones((T, T), dtype=bool))))


@pytest.mark.parametrize("wrong, hint", [
    (lambda T: np.triu(np.ones((T, T), dtype=bool), 1), "convention is inverted"),
    (lambda T: np.triu(np.ones((T, T), dtype=bool)), "that is the transpose"),
    (lambda T: np.tril(np.ones((T, T), dtype=bool), -1), "a position may attend to itself"),
    (lambda T: np.tril(np.ones((T, T), dtype=bool), 1), "one step into the future"),
    (lambda T: np.tril(np.ones((T, T))), "should be a boolean array"),
    (lambda T: np.tril(np.ones((T, T + 1), dtype=bool)), "expected (5, 5)"),
    (lambda T: np.ones((T, T), dtype=bool), "expected True exactly on and below"),
])
def test_causal_mask_wrong_answers(wrong, hint):
    fails_with(check_causal_mask(wrong), hint)


def combined_ref(lengths, T):
    causal = np.tril(np.ones((T, T), dtype=bool))
    pad = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    return causal[None, None] & pad[:, None, None, :]


def test_combined_mask_reference_passes():
    passes(check_combined_mask(combined_ref))


def _pad(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]   # (B, T)


def _causal(T):
    return np.tril(np.ones((T, T), dtype=bool))


@pytest.mark.parametrize("wrong, hint", [
    (lambda L, T: ~combined_ref(L, T), "convention is inverted"),
    (lambda L, T: _causal(T)[None] & _pad(L, T)[:, None, :], "give it shape (B, 1, T, T)"),
    (lambda L, T: _pad(L, T)[:, None, None, :], "padding mask alone: combine"),
    (lambda L, T: _causal(T)[None, None] | _pad(L, T)[:, None, None, :], "combine with &"),
    (lambda L, T: _causal(T)[None, None] & _pad(L, T)[:, None, :, None], "masked padded *queries*"),
    (lambda L, T: np.broadcast_to(_causal(T), (len(L), 1, T, T)), "causal mask alone"),
    (lambda L, T: np.broadcast_to(_pad(L, T)[:, None, None, :], (len(L), 1, T, T)), "future keys must be hidden"),
    (lambda L, T: _causal(T) & _pad(L, T), "your function raised ValueError"),
])
def test_combined_mask_wrong_answers(wrong, hint):
    fails_with(check_combined_mask(wrong), hint)


def test_combined_mask_catches_accidental_broadcast_when_B_equals_T():
    # (B, T) & (T, T) only broadcasts when B == T; the second hidden case has B == T.
    def wrong(L, T):
        if len(L) != T:
            return combined_ref(L, T)
        return _causal(T) & _pad(L, T)
    fails_with(check_combined_mask(wrong), "give it shape (B, 1, T, T)")


def masked_softmax_ref(scores, mask):
    s = np.where(mask, scores, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    z = e.sum(-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def naive_inf(scores, mask):
    s = np.where(mask, scores, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def big_negative(scores, mask):
    s = np.where(mask, scores, -1e9)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def unstable(scores, mask):
    e = np.exp(scores) * mask
    z = e.sum(-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def mask_after(scores, mask):
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True) * mask


def zero_scores(scores, mask):
    return masked_softmax_ref(np.where(mask, scores, 0.0), np.ones_like(mask))


def test_masked_softmax_reference_passes():
    passes(check_masked_softmax(masked_softmax_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, m: masked_softmax_ref(s, ~m), "the weights sit on the masked positions"),
    (naive_inf, "a fully masked row gives nan"),
    (big_negative, "uniform distribution"),
    (unstable, "large scores give nan or inf"),
    (mask_after, "rows do not sum to 1"),
    (zero_scores, "masked positions got nonzero weight"),
])
def test_masked_softmax_wrong_answers(wrong, hint):
    with np.errstate(all="ignore"):
        fails_with(check_masked_softmax(wrong), hint)
