"""The checkers of chapters 20-21: the reference solutions pass, typical wrong answers get their hint."""
import numpy as np

from attnkit.exercises.history import check_additive_score, check_gaussian_weights, check_gru_step
from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


# ----------------------------------------------------------------------------
# Gaussian kernel weights

def gaussian(q, k, sigma):
    s = -(q[:, None] - k[None, :]) ** 2 / (2 * sigma ** 2)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_gaussian_weights():
    passes(check_gaussian_weights(gaussian))
    fails_with(check_gaussian_weights(lambda q, k, s: gaussian(q, k, s).T.copy()), "shape (7, 4)")
    fails_with(check_gaussian_weights(lambda q, k, s: gaussian(q, k, s / np.sqrt(2))), "2 sigma^2")
    fails_with(check_gaussian_weights(
        lambda q, k, s: np.exp(-(q[:, None] - k[None, :]) ** 2 / (2 * s ** 2))), "sum to 1")

    def unstable(q, k, s):
        e = np.exp(-(q[:, None] - k[None, :]) ** 2 / (2 * s ** 2))
        return e / e.sum(axis=1, keepdims=True)
    fails_with(check_gaussian_weights(unstable), "underflows")
    fails_with(check_gaussian_weights(lambda q, k, s: None), "not done yet")


# ----------------------------------------------------------------------------
# one GRU step

def sig(a):
    return 1 / (1 + np.exp(-a))


def gru_step(x, h, W_ih, W_hh, b_ih, b_hh, variant=None):
    H = h.shape[1]
    gi, gh = x @ W_ih + b_ih, h @ W_hh + b_hh
    r, z = sig(gi[:, :H] + gh[:, :H]), sig(gi[:, H:2 * H] + gh[:, H:2 * H])
    if variant == "order":
        r, z = z, r
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    if variant == "before":
        n = np.tanh(gi[:, 2 * H:] + (r * h) @ W_hh[:, 2 * H:] + b_hh[2 * H:])
    if variant == "bias":
        n = np.tanh(gi[:, 2 * H:] + r * (h @ W_hh[:, 2 * H:]) + b_hh[2 * H:])
    if variant == "swap":
        return z * n + (1 - z) * h
    return (1 - z) * n + z * h


def test_gru_step():
    passes(check_gru_step(gru_step))
    fails_with(check_gru_step(lambda *a: gru_step(*a, variant="swap")), "(1 - z) * n + z * h")
    fails_with(check_gru_step(lambda *a: gru_step(*a, variant="before")), "(r * h) @ W_hn")
    fails_with(check_gru_step(lambda *a: gru_step(*a, variant="bias")), "*with* its bias")
    fails_with(check_gru_step(lambda *a: gru_step(*a, variant="order")), "r | z | n")
    fails_with(check_gru_step(lambda *a: np.tanh(gru_step(*a))), "differs from PyTorch")
    fails_with(check_gru_step(lambda *a: gru_step(*a)[0]), "shape")


# ----------------------------------------------------------------------------
# additive score

def additive(q, K, W_q, W_k, v):
    return np.tanh(q @ W_q + K @ W_k) @ v


def test_additive_score():
    passes(check_additive_score(additive))
    fails_with(check_additive_score(lambda q, K, W_q, W_k, v: (q @ W_q + K @ W_k) @ v), "tanh is missing")

    def weights(*a):
        s = additive(*a)
        e = np.exp(s - s.max())
        return e / e.sum()
    fails_with(check_additive_score(weights), "softmax weights")
    fails_with(check_additive_score(lambda q, K, W_q, W_k, v: np.tanh(q @ W_q + K @ W_k).sum(1)), "weight them")
    fails_with(check_additive_score(lambda q, K, W_q, W_k, v: K @ W_k @ v), "differ")
    fails_with(check_additive_score(lambda q, K, W_q, W_k, v: q @ K), "raised")
