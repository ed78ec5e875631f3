"""The transfer exercises of chapters 3, 4, 7 and 8: the reference passes, each typical mistake
fails with its hint."""
import numpy as np
import pytest

from attnkit.exercises.core import assert_fails_with, assert_passes
from attnkit.exercises.layers import check_crossover_length, check_ffn_flops
from attnkit.exercises.masking import check_cross_attention_mask
from attnkit.exercises.multi_head import (check_cross_attention_flops, check_einsum_attention,
                                          check_split_fused_qkv)
from attnkit.functional import attention_forward
from attnkit.nn import merge_heads, split_heads
from attnkit.seeding import make_rng


# ---------------------------------------------------------------- chapter 3: cross-attention FLOPs

def cross_flops(T_q, T_k, d, h):
    return 4 * T_q * d * d + 4 * T_k * d * d + 4 * T_q * T_k * d


def test_cross_attention_flops_reference_passes():
    assert_passes(check_cross_attention_flops(cross_flops))


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, b, d, h: 8 * a * d * d + 4 * a * b * d, "T_k memory rows"),
    (lambda a, b, d, h: 8 * b * d * d + 4 * a * b * d, "T_q query rows"),
    (lambda a, b, d, h: 8 * a * d * d + 4 * a * a * d, "self-attention count"),
    (lambda a, b, d, h: 4 * a * d * d + 4 * b * d * d + 4 * h * a * b * d, "d_k = d_model / h"),
    (lambda a, b, d, h: cross_flops(a, b, d, h) // 2, "half of the expected"),
    (lambda a, b, d, h: 1.5, "whole number"),
    (lambda a, b, d, h: None, "not done yet"),
])
def test_cross_attention_flops_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_cross_attention_flops(wrong), hint)


# ---------------------------------------------------------------- chapter 4: fused layout, einsum

def split_fused(qkv, h):
    B, T, D = qkv.shape
    x = qkv.reshape(B, T, h, 3, D // (3 * h)).transpose(3, 0, 2, 1, 4)   # (3, B, h, T, d_k)
    return x[0], x[1], x[2]


def test_split_fused_reference_passes_and_matches_a_per_head_layer():
    assert_passes(check_split_fused_qkv(split_fused))
    # the layout, built from per-head weights: [W_q0 W_k0 W_v0 | W_q1 W_k1 W_v1]
    rng = make_rng(0)
    h, d, d_k = 2, 6, 3
    W = {r: rng.standard_normal((h, d, d_k)) for r in "qkv"}
    fused = np.concatenate([W[r][i] for i in range(h) for r in "qkv"], axis=1)   # (d, 3 h d_k)
    x = rng.standard_normal((1, 4, d))
    q, k, v = split_fused(x @ fused, h)
    np.testing.assert_allclose(q, np.einsum("btd,hdk->bhtk", x, W["q"]))
    np.testing.assert_allclose(v, np.einsum("btd,hdk->bhtk", x, W["v"]))


def blocked(qkv, h):
    B, T, D = qkv.shape
    x = qkv.reshape(B, T, 3, h, D // (3 * h)).transpose(2, 0, 3, 1, 4)
    return x[0], x[1], x[2]


def reshaped_not_transposed(qkv, h):
    B, T, D = qkv.shape
    x = qkv.reshape(B, T, h, 3, D // (3 * h))
    return tuple(x[:, :, :, i].reshape(B, h, T, -1) for i in range(3))


@pytest.mark.parametrize("wrong, hint", [
    (blocked, "[all queries | all keys | all values]"),
    (reshaped_not_transposed, "a reshape mixes positions"),
    (lambda qkv, h: split_fused(qkv, h)[:2], "tuple of 3"),
    (lambda qkv, h: tuple(np.swapaxes(a, 1, 2) for a in split_fused(qkv, h)), "(B, h, T, d_k)"),
    (lambda qkv, h: None, "not done yet"),
])
def test_split_fused_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_split_fused_qkv(wrong), hint)


def einsum_mha(x, W_q, W_k, W_v, W_o, scale=True, axis=-1):
    q, k, v = (np.einsum("btd,hdk->bhtk", x, W) for W in (W_q, W_k, W_v))
    s = np.einsum("bhtk,bhsk->bhts", q, k) / (np.sqrt(W_q.shape[-1]) if scale else 1.0)
    w = np.exp(s - s.max(axis=axis, keepdims=True))
    w /= w.sum(axis=axis, keepdims=True)
    return np.einsum("bhtk,hkd->btd", np.einsum("bhts,bhsk->bhtk", w, v), W_o)


def test_einsum_reference_passes_and_equals_split_heads_attention():
    assert_passes(check_einsum_attention(einsum_mha))
    rng = make_rng(1)
    B, T, d, h = 2, 5, 8, 2
    x = rng.standard_normal((B, T, d))
    Wq, Wk, Wv, Wo = (rng.standard_normal((d, d)) for _ in range(4))
    per_head = [W.reshape(d, h, d // h).transpose(1, 0, 2) for W in (Wq, Wk, Wv)]   # (h, d, d_k)
    heads, _ = attention_forward(*(split_heads(x @ W, h) for W in (Wq, Wk, Wv)))
    np.testing.assert_allclose(einsum_mha(x, *per_head, Wo.reshape(h, d // h, d)),
                               merge_heads(heads) @ Wo, rtol=1e-10)


@pytest.mark.parametrize("wrong, hint", [
    (lambda *a: einsum_mha(*a, scale=False), "sqrt(d_k)"),
    (lambda *a: einsum_mha(*a, axis=-2), "over the keys"),
    (lambda x, *W: np.zeros_like(x), "differs from multi-head"),
    (lambda x, *W: np.zeros((1, 2)), "shape"),
])
def test_einsum_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_einsum_attention(wrong), hint)


# ---------------------------------------------------------------- chapter 7: FFN against attention

def test_ffn_flops_and_crossover_references_pass():
    assert_passes(check_ffn_flops(lambda T, d, f: 4 * T * d * f))
    assert_passes(check_crossover_length(lambda d, f: max(1, f - 2 * d)))


@pytest.mark.parametrize("wrong, hint", [
    (lambda T, d, f: 2 * T * d * f, "half of"),
    (lambda T, d, f: 4 * T * d * f + f + d, "expected"),
    (lambda T, d, f: None, "not done yet"),
])
def test_ffn_flops_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_ffn_flops(wrong), hint)


@pytest.mark.parametrize("wrong, hint", [
    (lambda d, f: f, "T^2 term alone"),
    (lambda d, f: max(1, f - 2 * d) + 1, "one off"),
    (lambda d, f: 2 * d, "d_ff = 4 d_model only"),
    (lambda d, f: f - 2 * d, "from T = 1 on"),
    (lambda d, f: "1024", "should be a number"),
])
def test_crossover_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_crossover_length(wrong), hint)


# ---------------------------------------------------------------- chapter 8: cross-attention mask

def cross_mask(lengths, T_q, T_k):
    keep = np.arange(T_k)[None, :] < np.asarray(lengths)[:, None]        # (B, T_k)
    return np.broadcast_to(keep[:, None, None, :], (len(lengths), 1, T_q, T_k))


def test_cross_attention_mask_reference_passes():
    assert_passes(check_cross_attention_mask(cross_mask))


@pytest.mark.parametrize("wrong, hint", [
    (lambda L, a, b: np.arange(b)[None, :] < np.asarray(L)[:, None], "one row per sequence"),
    (lambda L, a, b: cross_mask(L, a, b) & np.tril(np.ones((a, b), dtype=bool)), "not causal"),
    (lambda L, a, b: ~cross_mask(L, a, b), "True means"),
    (lambda L, a, b: cross_mask(L, a, b).astype(int), "boolean"),
    (lambda L, a, b: cross_mask(np.asarray(L) - 1, a, b), "should be True exactly"),
])
def test_cross_attention_mask_wrong_answers_fail(wrong, hint):
    assert_fails_with(check_cross_attention_mask(wrong), hint)
