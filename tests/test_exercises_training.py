"""The checkers of chapter 13 (training strategy) pass the reference solutions and fail typical wrong
answers with their specific hint."""
import math

import numpy as np
import pytest

from attnkit.exercises.training import check_clip_grad_norm, check_noam_schedule
from attnkit.optim import clip_grad_norm, noam_schedule

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


# ---------------------------------------------------------------- the noam schedule

def noam_ref(step, d_model, warmup):
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def test_noam_reference_passes():
    passes(check_noam_schedule(noam_ref))


def test_noam_attnkit_passes():
    passes(check_noam_schedule(lambda s, d, w: noam_schedule(d, w)(s)))


def test_noam_numpy_scalar_passes():
    passes(check_noam_schedule(lambda s, d, w: np.float32(noam_ref(s, d, w))))


def test_noam_not_done():
    def todo(step, d_model, warmup):
        ...
    fails_with(check_noam_schedule(todo), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, d, w: noam_ref(s + 1, d, w), "steps are counted from 1"),
    (lambda s, d, w: min(s ** -0.5, s * w ** -1.5), "d_model^-0.5 is missing"),
    (lambda s, d, w: d ** 0.5 * min(s ** -0.5, s * w ** -1.5), "instead of d_model^-0.5"),
    (lambda s, d, w: d ** -1 * min(s ** -0.5, s * w ** -1.5), "d_model^-1 instead"),
    (lambda s, d, w: d ** -0.5 * max(s ** -0.5, s * w ** -1.5), "the max of the two terms"),
    (lambda s, d, w: d ** -0.5 * min(s ** -0.5, s * w ** -0.5), "warmup term has the wrong exponent"),
    (lambda s, d, w: d ** -0.5 * min(s ** -0.5, s / w), "not step / warmup"),
    (lambda s, d, w: d ** -0.5 * min(1 / s, s * w ** -1.5), "decay term has the wrong exponent"),
    (lambda s, d, w: 2 * noam_ref(s, d, w), "expected"),
    (lambda s, d, w: [noam_ref(s, d, w)] * 2, "return one number"),
    (lambda s, d, w: float("inf"), "division by zero"),
    (lambda s, d, w: 1 / 0, "ZeroDivisionError"),
])
def test_noam_wrong_answers(wrong, hint):
    fails_with(check_noam_schedule(wrong), hint)


# ---------------------------------------------------------------- gradient clipping

def clip_ref(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    if total > max_norm:
        for g in grads:
            g *= max_norm / total
    return total


def test_clip_reference_passes():
    passes(check_clip_grad_norm(clip_ref))


def test_clip_attnkit_passes():
    # attnkit's version takes (param, grad) pairs; the gradients are what it scales
    passes(check_clip_grad_norm(lambda grads, m: clip_grad_norm([(g.copy(), g) for g in grads], m)))


def test_clip_not_done():
    def todo(grads, max_norm):
        ...
    fails_with(check_clip_grad_norm(todo), "not done yet")


def per_tensor(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    for g in grads:
        n = np.linalg.norm(g)
        if n > max_norm:
            g *= max_norm / n
    return total


def rebinds(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    if total > max_norm:
        for g in grads:
            g = g * (max_norm / total)  # noqa: F841 (the bug: rebinding a name)
    return total


def replaces(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    if total > max_norm:
        for i, g in enumerate(grads):
            grads[i] = g * (max_norm / total)
    return total


def returns_new(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    return [g * min(1.0, max_norm / total) for g in grads]


def always_scales(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    for g in grads:
        g *= max_norm / total
    return total


def returns_after(grads, max_norm):
    clip_ref(grads, max_norm)
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads))


def returns_nothing(grads, max_norm):
    clip_ref(grads, max_norm)


def sum_not_sqrt(grads, max_norm):
    total = sum(float(np.linalg.norm(g)) for g in grads)  # sum of norms, not the norm of everything
    if total > max_norm:
        for g in grads:
            g *= max_norm / total
    return total


@pytest.mark.parametrize("wrong, hint", [
    (per_tensor, "each array to max_norm on its own"),
    (rebinds, "scale every array in place"),
    (replaces, "the arrays you were given are unchanged"),
    (returns_new, "scale them in place"),
    (always_scales, "clipping only ever shrinks"),
    (returns_after, "norm after clipping"),
    (returns_nothing, "you returned None"),
    (sum_not_sqrt, "should be exactly max_norm"),
    (lambda grads, m: None if grads[0].fill(0) is None else 0.0, "should be exactly max_norm"),
    (lambda grads, m: 1 / 0, "ZeroDivisionError"),
])
def test_clip_wrong_answers(wrong, hint):
    fails_with(check_clip_grad_norm(wrong), hint)


def test_clip_unchanged_hint():
    fails_with(check_clip_grad_norm(lambda grads, m: 3.0), "are unchanged, but their global norm")
