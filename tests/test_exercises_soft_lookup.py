"""The chapter 1 checkers: the reference solutions pass, typical wrong answers get their specific hint."""
import numpy as np
import pytest

from attnkit.exercises.soft_lookup import check_attention_weights, check_soft_lookup, check_softmax
from attnkit.functional import softmax as attnkit_softmax


# ----------------------------------------------------------------------------
# softmax: the reference and typical wrong answers

def stable_softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def naive_softmax(x):
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def wrong_axis_softmax(x):
    e = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def whole_array_softmax(x):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def no_keepdims_softmax(x):
    e = np.exp(x - np.max(x, axis=-1))
    return e / np.sum(e, axis=-1)


def axis1_softmax(x):  # right for 2-D inputs, wrong for 3-D ones
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def float64_softmax(x):
    return stable_softmax(np.array(x, dtype=float))


def mean_shift_softmax(x):
    e = np.exp(x - np.mean(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def unnormalized_softmax(x):
    return np.exp(x - np.max(x, axis=-1, keepdims=True))


def not_done(x):
    ...


def not_implemented(x):
    raise NotImplementedError


def raises(x):
    return x.reshape(7, -1)


def test_softmax_reference_and_attnkit_pass():
    for fn in (stable_softmax, attnkit_softmax):
        result = check_softmax(fn)
        assert result.passed, result
        assert repr(result).startswith("PASSED [softmax]")


@pytest.mark.parametrize("fn, hint", [
    (naive_softmax, "contains nan or inf for scores around 1000 (float64)"),
    (wrong_axis_softmax, "the columns of your result sum to 1, not the rows"),
    (whole_array_softmax, "your whole array sums to 1"),
    (no_keepdims_softmax, "keep the reduced axis with keepdims=True"),
    (axis1_softmax, "your result sums to 1 over axis 1"),
    (float64_softmax, "a float32 input gave a float64 result"),
    (mean_shift_softmax, "with -inf entries (masked keys) your result contains nan"),
    (unnormalized_softmax, "the rows of your result do not sum to 1"),
    (not_done, "not done yet"),
    (not_implemented, "not done yet"),
    (raises, "your function raised ValueError"),
])
def test_softmax_wrong_answers_get_their_hint(fn, hint):
    result = check_softmax(fn)
    assert not result.passed
    text = " ".join(repr(result).split())  # the repr is wrapped at 72 columns
    assert text.startswith("NOT YET [softmax] "), text
    assert hint in text, text
    # one line of advice, never a traceback (the message, not the repr, which may be wrapped)
    assert "\n" not in result.message and "Traceback" not in text, text


def test_softmax_underflow_hint():
    # exp(-1000) underflows to 0 in float64: only the (-1000) case can catch a function that
    # subtracts the max on large inputs but not otherwise
    def big_only(x):
        return stable_softmax(x) if np.max(x) > 500 or x.dtype == np.float32 else naive_softmax(x)
    text = " ".join(repr(check_softmax(big_only)).split())  # the repr is wrapped at 72 columns
    assert "scores around -1000" in text, text


def test_softmax_passing_a_non_function():
    text = " ".join(repr(check_softmax(stable_softmax(np.zeros(3)))).split())  # the repr is wrapped at 72 columns
    assert text.startswith("NOT YET") and "pass your function itself" in text


# ----------------------------------------------------------------------------
# attention weights of one query

def weights(q, K):
    return stable_softmax(K @ q)


def test_attention_weights_reference_passes():
    result = check_attention_weights(weights)
    assert result.passed, result
    assert repr(result).startswith("PASSED [attention weights]")


@pytest.mark.parametrize("fn, hint", [
    (lambda q, K: K @ q, "you returned the scores K @ q themselves"),
    (lambda q, K: np.exp(K @ q), "the weights don't sum to 1"),
    (lambda q, K: stable_softmax(K), "your weights have K's shape (5, 3)"),
    (lambda q, K: stable_softmax(K.sum(axis=1)), "your weights don't change when the query changes"),
    (lambda q, K: stable_softmax(K @ q / np.sqrt(len(q))), "your scores are divided by sqrt(d)"),
    (lambda q, K: naive_softmax(K @ q), "when the scores q . k_j are around 1000"),
    (lambda q, K: stable_softmax(q * K).sum(axis=0), "has shape (3,), expected (5,)"),
    (lambda q, K: stable_softmax(-(K @ q)), "the weight vector differs from the expected values"),
    (lambda q, K: None, "not done yet"),
    (lambda q, K: q @ K, "K holds one key per row, shape (n, d), so all the scores at once are K @ q"),
])
def test_attention_weights_wrong_answers_get_their_hint(fn, hint):
    result = check_attention_weights(fn)
    assert not result.passed
    text = " ".join(repr(result).split())  # the repr is wrapped at 72 columns
    assert text.startswith("NOT YET [attention weights] "), text
    assert hint in text, text
    assert "\n" not in result.message, text


# ----------------------------------------------------------------------------
# the full soft lookup

def lookup(q, K, V):
    return stable_softmax(K @ q) @ V


def test_soft_lookup_reference_passes():
    result = check_soft_lookup(lookup)
    assert result.passed, result


@pytest.mark.parametrize("fn, hint", [
    (lambda q, K, V: stable_softmax(K @ q), "those look like the weights"),
    (lambda q, K, V: stable_softmax(K @ q)[:, None] * V, "you weighted each value but did not add them up"),
    (lambda q, K, V: V[np.argmax(K @ q)], "that is a hard lookup"),
    (lambda q, K, V: V.mean(axis=0), "the plain average of the values"),
    (lambda q, K, V: naive_softmax(K @ q) @ V, "when the scores q . k_j are around 1000"),
    (lambda q, K, V: (K @ q) @ V, "the output differs from the expected values"),
    (lambda q, K, V: None, "not done yet"),
])
def test_soft_lookup_wrong_answers_get_their_hint(fn, hint):
    result = check_soft_lookup(fn)
    assert not result.passed
    text = " ".join(repr(result).split())  # the repr is wrapped at 72 columns
    assert text.startswith("NOT YET [soft lookup] "), text
    assert hint in text, text
