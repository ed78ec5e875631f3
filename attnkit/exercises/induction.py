"""Checkers for chapter 24, induction heads: the previous-token and induction scores of attention matrices.

    from attnkit.exercises.induction import check_induction_score
    check_induction_score(my_induction_score)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import numpy as np

from .core import Hint, call, cases_rng, check, expect_array

__all__ = ["check_previous_token_score", "check_induction_score"]


def _cases_rng():
    return cases_rng(2424)  # hidden cases are the same on every run, whatever the seed shift


def _causal_weights(rng, h, T, sharp=2.0):
    """h random causal attention matrices (h, T, T): rows sum to 1, no weight on a later key."""
    scores = rng.normal(size=(h, T, T)) * sharp                           # (h, T, T)
    scores[:, np.triu(np.ones((T, T), dtype=bool), k=1)] = -np.inf
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)                              # (h, T, T)


def _match(out, candidates, where):
    """Raise the hint of the first wrong answer out equals, if any."""
    for wrong, hint in candidates:
        wrong = np.asarray(wrong, dtype=np.float64)
        if wrong.shape == out.shape and np.allclose(out, wrong, rtol=1e-6, atol=1e-10):
            raise Hint(hint)
    raise Hint(f"{where} the scores differ from the expected ones.")


# ----------------------------------------------------------------------------
# previous-token score: the mean weight of row t on key t - 1

def _previous(w):
    t = np.arange(1, w.shape[-1])
    return w[:, t, t - 1].mean(axis=-1)                                   # (h,)


def _previous_cases(fn):
    rng = _cases_rng()
    for h, T in [(3, 6), (2, 9), (4, 5)]:
        w = _causal_weights(rng, h, T)
        out = expect_array(call(fn, w), what="the scores")
        want = _previous(w)
        if out.shape != (h,):
            if out.shape == ():
                raise Hint("return one score per head, shape (h,): average over the query rows only "
                           "(axis -1 of w[:, t, t - 1]), not over the heads too.")
            raise Hint(f"return one score per head, shape (h,) = ({h},), got {out.shape}.")
        if np.allclose(out, want, rtol=1e-6, atol=1e-10):
            continue
        t = np.arange(T)
        _match(out, [
            (w[:, t, t - 1].mean(axis=-1),
             "you included row t = 0: it has no previous token (and w[:, 0, -1] is the weight on the "
             "*last* key, numpy's negative index); average over t = 1 .. T - 1."),
            (w[:, t, t].mean(axis=-1),
             "you took the diagonal w[:, t, t], the weight of each position on itself; the previous "
             "token is key t - 1."),
            (w[:, t[:-1], t[:-1] + 1].mean(axis=-1),
             "you read w[:, t - 1, t] (row before, key after): rows are queries, columns keys; the "
             "previous-token weight is w[:, t, t - 1]."),
            (w[:, t[1:], t[1:] - 1].sum(axis=-1),
             "you returned the sum over rows: the score is the mean, so that a perfect previous-token "
             "head scores 1."),
        ], f"for weights of shape {(h, T, T)}")


def check_previous_token_score(fn):
    """fn(weights (h, T, T)) -> (h,): the mean over t = 1 .. T - 1 of weights[:, t, t - 1]."""
    return check("previous-token score", fn, _previous_cases,
                 "all hidden cases pass: the mean weight of row t on key t - 1, over t = 1 .. T - 1.")


# ----------------------------------------------------------------------------
# induction score on a sequence whose second half repeats its first half

def _induction(w, half):
    t = np.arange(half, 2 * half)
    return w[:, t, t - half + 1].mean(axis=-1)                            # (h,)


def _induction_cases(fn):
    rng = _cases_rng()
    for h, half in [(3, 4), (2, 6), (4, 3)]:
        T = 2 * half
        w = _causal_weights(rng, h, T)
        out = expect_array(call(fn, w, half), what="the scores")
        if out.shape != (h,):
            if out.shape == ():
                raise Hint("return one score per head, shape (h,): average over the query rows only, "
                           "not over the heads too.")
            raise Hint(f"return one score per head, shape (h,) = ({h},), got {out.shape}.")
        want = _induction(w, half)
        if np.allclose(out, want, rtol=1e-6, atol=1e-10):
            continue
        t = np.arange(half, T)
        every = np.arange(T)
        _match(out, [
            (w[:, t, t - half].mean(axis=-1),
             "you read key t - half, the earlier copy of the current token itself; an induction head "
             "reads the token that came *after* it, key t - half + 1."),
            (w[:, t, t - half + 2].mean(axis=-1),
             "off by one: you read key t - half + 2; the token after the earlier copy of position t "
             "is at t - half + 1."),
            (w[:, t[:-1], t[:-1] - half + 1].mean(axis=-1),
             "you left out the last row (t = T - 1): every position of the second half, half .. "
             "2 half - 1, is a query."),
            (w[:, every[1:], np.maximum(every[1:] - half + 1, 0)].mean(axis=-1),
             "you averaged over every row: only the rows of the second half, t = half .. 2 half - 1, "
             "have an earlier copy to look up."),
            (w[:, t, t - half + 1].sum(axis=-1),
             "you returned the sum over rows: the score is the mean, so that a perfect induction head "
             "scores 1."),
        ], f"for weights of shape {(h, T, T)} and half = {half}")
    # a perfect induction head on the repeat must score exactly 1
    half = 5
    w = np.zeros((1, 10, 10))
    w[0, np.arange(5), 0] = 1
    w[0, np.arange(5, 10), np.arange(1, 6)] = 1
    out = expect_array(call(fn, w, half), what="the score of a perfect induction head")
    if not np.allclose(out, [1.0]):
        raise Hint(f"a head whose row t puts all its weight on key t - half + 1 should score 1, "
                   f"got {out}.")


def check_induction_score(fn):
    """fn(weights (h, T, T), half) -> (h,): on a sequence of T = 2 half tokens whose second half
    repeats the first, the mean over t = half .. T - 1 of weights[:, t, t - half + 1]."""
    return check("induction score", fn, _induction_cases,
                 "all hidden cases pass: rows of the repeat, each on the key right after its first "
                 "occurrence, averaged.")
