"""The checkers of the tiled-attention chapter pass the reference answers and fail typical wrong
answers with their specific hint."""
import numpy as np
import pytest

from attnkit.exercises.efficient import check_causal_tile_count, check_online_softmax_step

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


def step_ref(m, l, acc, s, v):
    m_new = np.maximum(m, s.max(axis=-1, keepdims=True))
    alpha = np.exp(m - m_new)
    p = np.exp(s - m_new)
    return m_new, alpha * l + p.sum(-1, keepdims=True), alpha * acc + p @ v


def step_no_l_rescale(m, l, acc, s, v):
    m_new, _, acc_new = step_ref(m, l, acc, s, v)
    return m_new, l + np.exp(s - m_new).sum(-1, keepdims=True), acc_new


def step_no_acc_rescale(m, l, acc, s, v):
    m_new, l_new, _ = step_ref(m, l, acc, s, v)
    return m_new, l_new, acc + np.exp(s - m_new) @ v


def step_wrong_sign(m, l, acc, s, v):
    m_new = np.maximum(m, s.max(axis=-1, keepdims=True))
    alpha = np.exp(np.minimum(m_new - m, 50))
    p = np.exp(s - m_new)
    return m_new, alpha * l + p.sum(-1, keepdims=True), alpha * acc + p @ v



def step_tile_max(m, l, acc, s, v):
    m_new = s.max(axis=-1, keepdims=True)
    return (m_new, *step_ref(m, l, acc, s, v)[1:])


def test_online_step_reference_passes():
    passes(check_online_softmax_step(step_ref))


def test_online_step_not_done():
    def todo(m, l, acc, s, v):
        ...
    fails_with(check_online_softmax_step(todo), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (step_no_l_rescale, "l must be rescaled too"),
    (step_no_acc_rescale, "acc must be rescaled"),
    (step_wrong_sign, "check the sign"),
    (step_tile_max, "running maximum"),
    (lambda m, l, acc, s, v: step_ref(m, l, acc, s, v)[:2], "as a tuple"),
    (lambda m, l, acc, s, v: step_ref(m, l, acc, s, v)[:2] + (acc[:, :1],), "shape"),
])
def test_online_step_wrong_answers_get_their_hint(wrong, hint):
    fails_with(check_online_softmax_step(wrong), hint)


def test_online_step_normalised_acc_gets_its_hint():
    def normalised(m, l, acc, s, v):       # keeps acc = softmax @ v so far, l = 1
        m_new, l_new, acc_un = step_ref(m, l, acc * l, s, v)
        return m_new, l_new, acc_un / l_new
    fails_with(check_online_softmax_step(normalised), "unnormalised")


def tiles_ref(T, block):
    n = -(-T // block)
    return n * (n + 1) // 2


def test_tile_count_reference_passes():
    passes(check_causal_tile_count(tiles_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda T, b: (-(-T // b)) ** 2, "full grid"),
    (lambda T, b: (-(-T // b)) * (-(-T // b) - 1) // 2, "on the diagonal are needed"),
    (lambda T, b: (T // b) * (T // b + 1) // 2, "last, shorter block"),
    (lambda T, b: T * (T + 1) // 2, "pairs"),
    (lambda T, b: 3, "expected"),
    (lambda T, b: None, "not done yet"),
])
def test_tile_count_wrong_answers_get_their_hint(wrong, hint):
    fails_with(check_causal_tile_count(wrong), hint)
