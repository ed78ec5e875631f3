"""The chapter 22 checkers: the reference passes, each typical mistake fails with its hint."""
import numpy as np
import pytest

from attnkit.exercises.core import assert_fails_with, assert_passes
from attnkit.exercises.relative_positions import (_alibi_matrix, _rope_variant, check_alibi_matrix,
                                                  check_rope)
from attnkit.positions import alibi_slopes, apply_rope


def test_rope_reference_passes():
    assert_passes(check_rope(lambda x, p: apply_rope(x, p)))
    assert_passes(check_rope(lambda x, p: _rope_variant(x, p)))


def _rope_loop(x, positions):  # the learner's version with a loop over pairs
    out = x.copy()
    T, d = x.shape
    for t in range(T):
        for i in range(d // 2):
            a = positions[t] * 10000.0 ** (-2 * i / d)
            c, s = np.cos(a), np.sin(a)
            out[t, 2 * i] = c * x[t, 2 * i] - s * x[t, 2 * i + 1]
            out[t, 2 * i + 1] = s * x[t, 2 * i] + c * x[t, 2 * i + 1]
    return out


def test_rope_loop_version_passes():
    assert_passes(check_rope(_rope_loop))


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, p: _rope_variant(x, p, sign=-1.0), "minus the angle"),
    (lambda x, p: _rope_variant(x, p, pairs="halves"), "rotate half"),
    (lambda x, p: _rope_variant(x, p, exponent="i"), "i/d in the exponent"),
    (lambda x, p: x, "unchanged"),
    (lambda x, p: _rope_variant(x, p + 1), "norms are kept"),
    (lambda x, p: x * 2, "differs from the rotation"),
    (lambda x, p: x[:, :-1], "shape"),
    (lambda x, p: None, "not done yet"),
])
def test_rope_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_rope(wrong), hint)


def _alibi_reference(h, T):
    a, b = np.arange(T)[:, None], np.arange(T)[None, :]
    bias = -alibi_slopes(h)[:, None, None] * (a - b)
    return np.where(b <= a, bias, -np.inf)


def test_alibi_reference_passes():
    assert_passes(check_alibi_matrix(_alibi_reference))
    assert_passes(check_alibi_matrix(_alibi_matrix))


@pytest.mark.parametrize("wrong, hint", [
    (lambda h, T: _alibi_matrix(h, T, sign=1.0), "wrong sign"),
    (lambda h, T: _alibi_matrix(h, T, slopes=2.0 ** (-8.0 * np.arange(0, h) / h)), "start at 2^0"),
    (lambda h, T: _alibi_matrix(h, T, slopes=2.0 ** -np.arange(1, h + 1)), "slopes are 2^-i"),
    (lambda h, T: _alibi_matrix(h, T, slopes=2.0 ** (-8.0 * np.arange(1, h + 1) / h)),
     "not a power of two"),
    (lambda h, T: _alibi_matrix(h, T, mask=False), "causal mask folded"),
    (lambda h, T: _alibi_matrix(h, T, sign=1.0, mask=False), "must be -inf"),
    (lambda h, T: _alibi_matrix(h, T)[0], "shape"),
    (lambda h, T: np.where(np.isinf(_alibi_matrix(h, T)), -np.inf, 0.0), "differs from"),
    (lambda h, T: None, "not done yet"),
])
def test_alibi_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_alibi_matrix(wrong), hint)
