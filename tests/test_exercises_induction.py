"""The checkers of chapter 24 (induction heads) pass the reference solutions and attnkit's scores, and
fail typical wrong answers with their specific hint."""
import numpy as np
import pytest

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes
from attnkit.exercises.induction import check_induction_score, check_previous_token_score
from attnkit.induction import induction_scores, previous_token_scores


def previous_ref(w):
    t = np.arange(1, w.shape[-1])
    return w[:, t, t - 1].mean(axis=-1)


def induction_ref(w, half):
    t = np.arange(half, 2 * half)
    return w[:, t, t - half + 1].mean(axis=-1)


def test_references_and_attnkit_pass():
    passes(check_previous_token_score(previous_ref))
    passes(check_previous_token_score(lambda w: previous_token_scores(w[None])))
    passes(check_induction_score(induction_ref))
    passes(check_induction_score(lambda w, half: induction_scores(w[None], half)))


def test_not_done():
    def todo(*args):
        ...
    fails_with(check_previous_token_score(todo), "not done yet")
    fails_with(check_induction_score(todo), "not done yet")


def _t(w):
    return np.arange(w.shape[-1])


@pytest.mark.parametrize("wrong, hint", [
    (lambda w: w[:, _t(w), _t(w) - 1].mean(axis=-1), "included row t = 0"),
    (lambda w: w[:, _t(w), _t(w)].mean(axis=-1), "the diagonal"),
    (lambda w: w[:, _t(w)[:-1], _t(w)[:-1] + 1].mean(axis=-1), "rows are queries"),
    (lambda w: w[:, _t(w)[1:], _t(w)[1:] - 1].sum(axis=-1), "the sum over rows"),
    (lambda w: w[:, _t(w)[1:], _t(w)[1:] - 1].mean(), "one score per head"),
    (lambda w: w[:, _t(w)[1:], _t(w)[1:] - 1], "one score per head"),
])
def test_previous_token_mistakes_get_their_hint(wrong, hint):
    fails_with(check_previous_token_score(wrong), hint)


def _r(half):
    return np.arange(half, 2 * half)


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, half: w[:, _r(half), _r(half) - half].mean(axis=-1), "earlier copy of the current token"),
    (lambda w, half: w[:, _r(half), _r(half) - half + 2].mean(axis=-1), "off by one"),
    (lambda w, half: w[:, _r(half)[:-1], _r(half)[:-1] - half + 1].mean(axis=-1), "left out the last row"),
    (lambda w, half: w[:, np.arange(1, 2 * half), np.maximum(np.arange(1, 2 * half) - half + 1, 0)].mean(-1),
     "averaged over every row"),
    (lambda w, half: w[:, _r(half), _r(half) - half + 1].sum(axis=-1), "the sum over rows"),
    (lambda w, half: w[:, _r(half), _r(half) - half + 1].mean(), "one score per head"),
    (lambda w, half: w[:, _r(half), _r(half) - half + 1].mean(axis=-1) + 0.01, "differ from the expected"),
])
def test_induction_mistakes_get_their_hint(wrong, hint):
    fails_with(check_induction_score(wrong), hint)
