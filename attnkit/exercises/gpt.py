"""Checkers for chapter 18, a decoder-only language model: the shifted loss, top-k, perplexity.

    from attnkit.exercises.gpt import check_lm_loss
    check_lm_loss(my_lm_loss)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import math

import numpy as np

from .core import Hint, call, cases_rng, check

__all__ = ["check_lm_loss", "check_top_k_filter", "check_perplexity"]


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _scalar(out, what):
    if out is None:
        raise NotImplementedError
    try:
        value = float(np.asarray(out).item())
    except (TypeError, ValueError):
        raise Hint(f"{what} should be one number, got {type(out).__name__} of shape {np.shape(out)}") from None
    if not math.isfinite(value):
        raise Hint(f"{what} is {value}: subtract the row maximum before np.exp (use a log-softmax)")
    return value


# ----------------------------------------------------------------------------
# the next-token loss: logits at position t are scored against the token at t + 1

def _lm_loss(logits, ids):
    logp = _log_softmax(logits[:, :-1])                                  # (B, T-1, V)
    nxt = ids[:, 1:]                                                     # (B, T-1)
    return float(-np.take_along_axis(logp, nxt[..., None], axis=-1).mean())


def _lm_mistakes(logits, ids):
    B, T, V = logits.shape
    logp = _log_softmax(logits)
    pick = lambda lp, t: -np.take_along_axis(lp, t[..., None], axis=-1)  # noqa: E731
    return [
        (pick(logp, ids).mean(),
         "you scored each position against its own token: the logits at position t predict the "
         "*next* token, so compare logits[:, :-1] with ids[:, 1:]."),
        (pick(logp[:, 1:], ids[:, :-1]).mean(),
         "the shift goes the wrong way: position t predicts token t + 1, so pair logits[:, :-1] "
         "with ids[:, 1:] (not logits[:, 1:] with ids[:, :-1])."),
        (pick(logp[:, :-1], ids[:, 1:]).sum(),
         "you returned the sum: the loss is the mean over every scored position (B * (T - 1) of them)."),
        (pick(logp[:, :-1], ids[:, 1:]).sum() / B,
         "you divided by the batch size only: average over the B * (T - 1) scored positions."),
        (pick(_log_softmax(logits[:-1]), ids[1:]).mean(),
         "you shifted along the batch axis: the shift is along time (axis 1), logits[:, :-1] and ids[:, 1:]."),
        (-np.take_along_axis(logits[:, :-1], ids[:, 1:, None], axis=-1).mean(),
         "you took the raw logit of the next token: the loss needs log-probabilities, "
         "logits minus their logsumexp (a log-softmax)."),
    ]


def _lm_cases(fn):
    rng = cases_rng(1818)
    for B, T, V in [(2, 5, 7), (3, 8, 11), (1, 2, 4)]:
        logits = rng.normal(size=(B, T, V)) * 2
        ids = rng.integers(0, V, size=(B, T))
        out = _scalar(call(fn, logits, ids), "the loss")
        ref = _lm_loss(logits, ids)
        if math.isclose(out, ref, rel_tol=1e-6, abs_tol=1e-9):
            continue
        for wrong, hint in _lm_mistakes(logits, ids):
            if math.isclose(out, float(wrong), rel_tol=1e-6, abs_tol=1e-9):
                raise Hint(hint)
        raise Hint(f"for logits of shape {(B, T, V)} the loss should be {ref:.6f}, you returned {out:.6f}: "
                   "average -log softmax(logits[:, t])[ids[:, t + 1]] over every b and t < T - 1.")
    big = np.zeros((1, 3, 5))
    big[0, :, 0] = 1000.0                                               # overflows a naive softmax
    ids = np.array([[0, 0, 0]])
    out = _scalar(call(fn, big, ids), "the loss on logits of size 1000")
    if not math.isclose(out, 0.0, abs_tol=1e-6):
        raise Hint(f"with logits of 1000 on the right token the loss is about 0, you returned {out}: "
                   "compute log-probabilities stably (subtract the row maximum).")


def check_lm_loss(fn):
    """fn(logits (B, T, V), ids (B, T)) -> mean next-token cross-entropy (a float, nats)."""
    return check("causal LM loss", fn, _lm_cases,
                 "all hidden cases pass: position t is scored on token t + 1, averaged over B (T - 1) positions.")


# ----------------------------------------------------------------------------
# top-k filtering

def _top_k_cases(fn):
    rng = cases_rng(1818)
    for N, V, k in [(3, 8, 3), (2, 10, 1), (4, 6, 6), (1, 9, 5)]:
        logits = rng.normal(size=(N, V)) * 3
        out = call(fn, logits, k)
        if out is None:
            raise NotImplementedError
        out = np.asarray(out, dtype=np.float64)
        if out.shape != (N, V):
            raise Hint(f"return the filtered logits, shape (N, V) = {(N, V)}, got {out.shape}: keep every "
                       "token's slot and put -inf where a token is removed.")
        kept = np.isfinite(out)
        if np.any(out[~kept] != -np.inf):
            raise Hint("removed tokens must be -inf (then softmax gives them probability 0); you used +inf or nan.")
        if not kept.all() and k == V:
            raise Hint(f"with k = V = {V} every token stays.")
        if np.allclose(out, 0) or (np.all(kept) and k < V):
            raise Hint("set the removed logits to -inf, not 0: a logit of 0 still has probability "
                       "exp(0) / Z > 0 after the softmax.")
        n = kept.sum(axis=1)
        if np.any(n != k):
            bad = int(n[n != k][0])
            if bad == k + 1 or bad == k - 1:
                raise Hint(f"you kept {bad} tokens in a row with k = {k}: an off-by-one; keep exactly k.")
            raise Hint(f"each row must keep exactly k = {k} tokens, one kept {bad}: filter row by row "
                       "(sort or argpartition along axis=1), not over the whole array.")
        top = np.argsort(-logits, axis=1)[:, :k]
        want = np.zeros_like(kept)
        np.put_along_axis(want, top, True, axis=1)
        if not np.array_equal(kept, want):
            bottom = np.zeros_like(kept)
            np.put_along_axis(bottom, np.argsort(logits, axis=1)[:, :k], True, axis=1)
            if np.array_equal(kept, bottom):
                raise Hint("you kept the k *smallest* logits: keep the k largest (sort in decreasing order).")
            raise Hint("the kept tokens are not the k largest logits of their row.")
        if not np.allclose(out[kept], logits[kept]):
            raise Hint("the kept logits must keep their values (the softmax renormalizes them later); "
                       "you changed them.")


def check_top_k_filter(fn):
    """fn(logits (N, V), k) -> (N, V): the k largest logits of each row kept, the others -inf."""
    return check("top-k filter", fn, _top_k_cases,
                 "all hidden cases pass: k logits kept per row, the rest -inf.")


# ----------------------------------------------------------------------------
# perplexity and bits per character from a loss in nats

def _perplexity_cases(fn):
    for loss in (0.0, 1.0, 1.9, math.log(67)):
        out = call(fn, loss)
        if out is None:
            raise NotImplementedError
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise Hint("return two numbers, (perplexity, bits per character).")
        ppl, bits = _scalar(out[0], "the perplexity"), _scalar(out[1], "the bits per character")
        want_ppl, want_bits = math.exp(loss), loss / math.log(2)
        if not math.isclose(ppl, want_ppl, rel_tol=1e-6):
            if math.isclose(ppl, 2 ** loss, rel_tol=1e-6) and loss:
                raise Hint("the loss is in nats (natural log), so perplexity = e^loss (np.exp), not 2^loss.")
            if math.isclose(ppl, 10 ** loss, rel_tol=1e-6) and loss:
                raise Hint("the loss is in nats, so perplexity = e^loss, not 10^loss.")
            raise Hint(f"for a loss of {loss:.4f} nats the perplexity is e^loss = {want_ppl:.4f}, you returned {ppl:.4f}.")
        if not math.isclose(bits, want_bits, rel_tol=1e-6, abs_tol=1e-12):
            if math.isclose(bits, loss * math.log(2), rel_tol=1e-6) and loss:
                raise Hint("one bit is ln 2 = 0.693 nats, so bits = nats / ln 2; you multiplied by ln 2.")
            if math.isclose(bits, loss / math.log(10), rel_tol=1e-6) and loss:
                raise Hint("bits use base 2: divide the nats by ln 2, not by ln 10.")
            raise Hint(f"for a loss of {loss:.4f} nats the bits per character are loss / ln 2 = "
                       f"{want_bits:.4f}, you returned {bits:.4f}.")


def check_perplexity(fn):
    """fn(loss in nats per character) -> (perplexity, bits per character)."""
    return check("perplexity and bits", fn, _perplexity_cases,
                 "all hidden cases pass: perplexity = e^loss, bits = loss / ln 2.")
