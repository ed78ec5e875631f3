"""The checkers of chapter 18 (a decoder-only GPT) pass the reference solutions and fail typical wrong
answers with their specific hint."""
import math

import numpy as np
import pytest

from attnkit.exercises.gpt import check_lm_loss, check_perplexity, check_top_k_filter
from attnkit.losses import CrossEntropyLoss
from attnkit.sampling import top_k_filter

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------- the shifted loss

def lm_loss_ref(logits, ids):
    logp = log_softmax(logits[:, :-1])
    return -np.take_along_axis(logp, ids[:, 1:, None], axis=-1).mean()


def test_lm_loss_reference_and_attnkit_pass():
    passes(check_lm_loss(lm_loss_ref))
    passes(check_lm_loss(lambda lg, ids: CrossEntropyLoss().forward(lg[:, :-1], ids[:, 1:])))


def test_lm_loss_not_done():
    def todo(logits, ids):
        ...
    fails_with(check_lm_loss(todo), "not done yet")


def _pick(lp, t):
    return -np.take_along_axis(lp, t[..., None], axis=-1)


@pytest.mark.parametrize("wrong, hint", [
    (lambda lg, ids: _pick(log_softmax(lg), ids).mean(), "against its own token"),
    (lambda lg, ids: _pick(log_softmax(lg[:, 1:]), ids[:, :-1]).mean(), "the shift goes the wrong way"),
    (lambda lg, ids: _pick(log_softmax(lg[:, :-1]), ids[:, 1:]).sum(), "you returned the sum"),
    (lambda lg, ids: _pick(log_softmax(lg[:, :-1]), ids[:, 1:]).sum() / lg.shape[0], "batch size only"),
    (lambda lg, ids: _pick(log_softmax(lg[:-1]), ids[1:]).mean(), "along the batch axis"),
    (lambda lg, ids: -np.take_along_axis(lg[:, :-1], ids[:, 1:, None], axis=-1).mean(), "raw logit"),
    (lambda lg, ids: -np.log(np.take_along_axis(np.exp(lg[:, :-1]) / np.exp(lg[:, :-1]).sum(-1, keepdims=True),
                                                ids[:, 1:, None], axis=-1)).mean(), "subtract the row maximum"),
])
def test_lm_loss_mistakes_get_their_hint(wrong, hint):
    fails_with(check_lm_loss(wrong), hint)


# ---------------------------------------------------------------- top-k

def top_k_ref(logits, k):
    out = np.full_like(logits, -np.inf)
    idx = np.argsort(-logits, axis=1)[:, :k]
    np.put_along_axis(out, idx, np.take_along_axis(logits, idx, axis=1), axis=1)
    return out


def test_top_k_reference_and_attnkit_pass():
    passes(check_top_k_filter(top_k_ref))
    passes(check_top_k_filter(top_k_filter))


def test_top_k_not_done():
    fails_with(check_top_k_filter(lambda logits, k: None), "not done yet")


def _keep(logits, idx, fill=-np.inf):
    out = np.full_like(logits, fill)
    np.put_along_axis(out, idx, np.take_along_axis(logits, idx, axis=1), axis=1)
    return out


@pytest.mark.parametrize("wrong, hint", [
    (lambda lg, k: _keep(lg, np.argsort(lg, axis=1)[:, :k]), "k *smallest*"),
    (lambda lg, k: _keep(lg, np.argsort(-lg, axis=1)[:, :k + 1]), "off-by-one"),
    (lambda lg, k: _keep(lg, np.argsort(-lg, axis=1)[:, :k], fill=0.0), "not 0"),
    (lambda lg, k: np.where(lg >= np.sort(lg.ravel())[-k], lg, -np.inf), "row by row"),
    (lambda lg, k: top_k_ref(lg, k)[:, :k], "shape (N, V)"),
    (lambda lg, k: top_k_ref(lg, k) * 0.5, "keep their values"),
])
def test_top_k_mistakes_get_their_hint(wrong, hint):
    fails_with(check_top_k_filter(wrong), hint)


# ---------------------------------------------------------------- perplexity and bits

def test_perplexity_reference_passes():
    passes(check_perplexity(lambda loss: (math.exp(loss), loss / math.log(2))))


def test_perplexity_not_done():
    fails_with(check_perplexity(lambda loss: None), "not done yet")


@pytest.mark.parametrize("wrong, hint", [
    (lambda loss: (2 ** loss, loss / math.log(2)), "not 2^loss"),
    (lambda loss: (math.exp(loss), loss * math.log(2)), "you multiplied by ln 2"),
    (lambda loss: (math.exp(loss), loss / math.log(10)), "not by ln 10"),
    (lambda loss: math.exp(loss), "return two numbers"),
])
def test_perplexity_mistakes_get_their_hint(wrong, hint):
    fails_with(check_perplexity(wrong), hint)
