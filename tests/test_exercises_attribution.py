"""The checkers of the attributions chapter pass the reference answers (and attnkit's own
functions) and fail typical wrong answers with their specific hint."""
import numpy as np
import pytest

from attnkit.attribution import rollout
from attnkit.exercises.attribution import check_occlusion, check_rollout
from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


def rollout_ref(maps):
    T = maps.shape[-1]
    R = np.eye(T)
    for W in maps:
        A = W.mean(axis=0) + np.eye(T)
        R = (A / A.sum(axis=1, keepdims=True)) @ R
    return R


def _chain(maps, combine, norm=True, reverse=False):
    T = maps.shape[-1]
    R = np.eye(T)
    for W in maps:
        A = combine(W) + (np.eye(T) if norm is not None else 0)
        if norm:
            A = A / A.sum(axis=1, keepdims=True)
        R = R @ A if reverse else A @ R
    return R


def test_rollout_reference_and_attnkit_pass():
    passes(check_rollout(rollout_ref))
    passes(check_rollout(rollout))


def test_rollout_not_done():
    fails_with(check_rollout(lambda maps: None), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (lambda m: _chain(m, lambda W: W.mean(0), norm=None), "add the identity"),
    (lambda m: _chain(m, lambda W: W.mean(0), norm=False), "renormalize the rows"),
    (lambda m: _chain(m, lambda W: W.mean(0), reverse=True), "multiply later layers on the left"),
    (lambda m: _chain(m, lambda W: W[0]), "average the heads"),
    (lambda m: _chain(m, lambda W: W.sum(0)), "instead of summing"),
    (lambda m: _chain(m[-1:], lambda W: W.mean(0)), "last layer alone"),
    (lambda m: np.stack([_chain(m, lambda W: W.mean(0))] * 2), "shape"),
    (lambda m: _chain(m, lambda W: W.mean(0)) ** 2, "differs from the expected"),
])
def test_rollout_wrong_answers_get_their_hint(wrong, hint):
    fails_with(check_rollout(wrong), hint)


def occlusion_ref(proba, ids, pad_id):
    n = len(ids)
    p = proba(ids[None])[0]
    c = np.argmax(p)
    copies = np.repeat(ids[None], n, axis=0)
    copies[np.arange(n), np.arange(n)] = pad_id
    return p[c] - proba(copies)[:, c]


def _copies(ids, pad_id):
    n = len(ids)
    copies = np.repeat(ids[None], n, axis=0)
    copies[np.arange(n), np.arange(n)] = pad_id
    return copies


def occ_loop(proba, ids, pad_id):
    p = proba(ids[None])[0]
    c = np.argmax(p)
    return np.array([p[c] - proba(row[None])[0, c] for row in _copies(ids, pad_id)])


def occ_own_class(proba, ids, pad_id):
    p, q = proba(ids[None])[0], proba(_copies(ids, pad_id))
    k = q.argmax(1)
    return p[k] - q[np.arange(len(ids)), k]


def occ_class_one(proba, ids, pad_id):
    p, q = proba(ids[None])[0], proba(_copies(ids, pad_id))
    c = 1 if np.argmax(p) != 1 else 0
    return p[c] - q[:, c]


def occ_deleted(proba, ids, pad_id):
    p = proba(ids[None])[0]
    c = np.argmax(p)
    return np.array([p[c] - proba(np.delete(ids, t)[None])[0, c] for t in range(len(ids))])


def occ_probability(proba, ids, pad_id):
    c = np.argmax(proba(ids[None])[0])
    return proba(_copies(ids, pad_id))[:, c]


def test_occlusion_reference_passes():
    passes(check_occlusion(occlusion_ref))


def test_occlusion_not_done():
    fails_with(check_occlusion(lambda proba, ids, pad_id: None), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (lambda proba, ids, pad_id: -occlusion_ref(proba, ids, pad_id), "sign is reversed"),
    (occ_loop, "called"),
    (occ_own_class, "keep one class"),
    (occ_class_one, "not a fixed class"),
    (occ_deleted, "instead of deleting"),
    (occ_probability, "not one of the probabilities"),
    (lambda proba, ids, pad_id: occlusion_ref(proba, ids, pad_id)[:-1], "shape"),
    (lambda proba, ids, pad_id: occlusion_ref(proba, ids, 0), "differ from the expected"),
])
def test_occlusion_wrong_answers_get_their_hint(wrong, hint):
    fails_with(check_occlusion(wrong), hint)
