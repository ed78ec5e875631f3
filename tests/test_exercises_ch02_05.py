"""The checkers of chapters 2-5 accept the reference solutions and reject typical mistakes with their hint."""
import numpy as np
import pytest

from attnkit.exercises.multi_head import (check_merge_heads, check_mha_flops, check_mha_param_count,
                                          check_split_heads)
from attnkit.exercises.positions import _shift_matrix as shift_matrix  # the private answer
from attnkit.exercises.positions import check_shift_matrix, check_sinusoidal_table
from attnkit.exercises.self_attention import check_batched_attention, check_self_attention
from attnkit.functional import softmax
from attnkit.nn import MultiHeadAttention, sinusoidal_table


def assert_fails(result, *fragments):
    assert not result.passed, f"the checker accepted a wrong answer: {result!r}"
    for f in fragments:
        assert f in result.message, f"expected {f!r} in the hint, got: {result.message}"


def not_done(*args):
    raise NotImplementedError


# ---------------------------------------------------------------- chapter 2: attention

def attention(q, k, v):
    return softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])) @ v


def test_attention_reference_passes():
    assert check_batched_attention(attention).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda q, k, v: softmax(q @ np.swapaxes(k, -1, -2)) @ v, "without scaling"),
    (lambda q, k, v: (q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])) @ v, "forgot the softmax"),
    (lambda q, k, v: softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), axis=-2) @ v, "axis=-1"),
    (lambda q, k, v: softmax(q @ k.transpose(-2, -1) / np.sqrt(q.shape[-1])) @ v, "np.swapaxes"),
    (lambda q, k, v: softmax(q @ k.T / np.sqrt(q.shape[-1])) @ v, "np.swapaxes"),
    (lambda q, k, v: softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])) @ v, "np.swapaxes"),
    (lambda q, k, v: (softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])) @ v, None), "not a tuple"),
    (lambda q, k, v: softmax(q @ np.swapaxes(k, -1, -2) / q.shape[-1]) @ v, "differs from"),
    (not_done, "not done yet"),
])
def test_attention_wrong_answers_fail(wrong, hint):
    assert_fails(check_batched_attention(wrong), hint)


def self_attention(x, W_q, W_k, W_v):
    return attention(x @ W_q, x @ W_k, x @ W_v)


def test_self_attention_reference_passes():
    assert check_self_attention(self_attention).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, W_q, W_k, W_v: softmax((x @ W_q) @ np.swapaxes(x @ W_k, -1, -2) / np.sqrt(x.shape[-1])) @ (x @ W_v),
     "sqrt(d_model)"),
    (lambda x, W_q, W_k, W_v: attention(x @ W_q, x @ W_q, x @ W_v), "queries with queries"),
    (lambda x, W_q, W_k, W_v: attention(x, x, x @ W_v), "project first"),
    (lambda x, W_q, W_k, W_v: softmax((x @ W_q) @ np.swapaxes(x @ W_k, -1, -2)) @ (x @ W_v), "without scaling"),
    (lambda x, W_q, W_k, W_v: attention(x @ W_q, x @ W_k, x), "expected (2, 5, 4)"),
])
def test_self_attention_wrong_answers_fail(wrong, hint):
    assert_fails(check_self_attention(wrong), hint)


# ---------------------------------------------------------------- chapter 3: counting

def param_count(d_model, num_heads, bias=True):
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


def test_param_count_reference_passes_and_matches_attnkit():
    assert check_mha_param_count(param_count).passed
    for d_model, h, bias in ((8, 2, True), (12, 3, False)):
        assert MultiHeadAttention(d_model, h, bias=bias).num_parameters() == param_count(d_model, h, bias)


@pytest.mark.parametrize("wrong, hint", [
    (lambda d, h, bias: h * param_count(d, h, bias), "not (d_model, d_model)"),
    (lambda d, h, bias: 3 * d * d + (3 * d if bias else 0), "output projection"),
    (lambda d, h, bias: 4 * d * d, "bias vector"),
    (lambda d, h, bias: 4 * d * d + 4 * d, "no bias vectors"),
    (lambda d, h, bias: 4 * d * d + 4 * d + h, "expected"),
    (lambda d, h, bias: "many", "should be a number"),
])
def test_param_count_wrong_answers_fail(wrong, hint):
    assert_fails(check_mha_param_count(wrong), hint)


def flops(T, d_model, h):
    d_k = d_model // h
    return 4 * 2 * T * d_model * d_model + h * (2 * T * T * d_k + 2 * T * T * d_k)


def test_flops_reference_passes():
    assert check_mha_flops(flops).passed


@pytest.mark.parametrize("wrong, hint", [
    (lambda T, d, h: flops(T, d, h) // 2, "2 m n p FLOPs"),
    (lambda T, d, h: 8 * T * d * d + 4 * h * T * T * d, "d_k = d_model / h"),
    (lambda T, d, h: 6 * T * d * d + 4 * T * T * d, "output projection"),
    (lambda T, d, h: 8 * T * d * d + 2 * T * T * d, "both T x T products"),
    (lambda T, d, h: 8 * T * d * d + 4 * T * d * d, "expected"),
])
def test_flops_wrong_answers_fail(wrong, hint):
    assert_fails(check_mha_flops(wrong), hint)


# ---------------------------------------------------------------- chapter 4: split and merge

def split_heads(x, h):
    B, T, d = x.shape
    return x.reshape(B, T, h, d // h).transpose(0, 2, 1, 3)


def merge_heads(x):
    B, h, T, d_k = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, h * d_k)


def test_split_merge_reference_passes_and_round_trips():
    assert check_split_heads(split_heads).passed
    assert check_merge_heads(merge_heads).passed
    x = np.random.default_rng(0).standard_normal((2, 5, 12))
    assert np.array_equal(merge_heads(split_heads(x, 3)), x)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, h: x.reshape(x.shape[0], h, x.shape[1], x.shape[2] // h), "mixes positions"),
    (lambda x, h: x.reshape(x.shape[0], x.shape[1], h, x.shape[2] // h), "transpose(0, 2, 1, 3)"),
    (lambda x, h: x.reshape(x.shape[0], x.shape[1], x.shape[2] // h, h).transpose(0, 3, 1, 2), "contiguous block"),
    (lambda x, h: x.reshape(x.shape[0], x.shape[1], h, -1).transpose(0, 2, 1, 3)[:, :, ::-1], "wrong values"),
    (lambda x, h: x.reshape(x.shape[0], h, -1), "expected"),
])
def test_split_wrong_answers_fail(wrong, hint):
    assert_fails(check_split_heads(wrong), hint)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: x.reshape(x.shape[0], x.shape[2], -1), "mixes positions"),
    (lambda x: x.transpose(0, 2, 1, 3), "expected"),
    (lambda x: x.transpose(0, 2, 3, 1).reshape(x.shape[0], x.shape[2], -1), "wrong values"),
])
def test_merge_wrong_answers_fail(wrong, hint):
    assert_fails(check_merge_heads(wrong), hint)


# ---------------------------------------------------------------- chapter 5: positions

def table(max_len, d_model):
    pos = np.arange(max_len)[:, None]
    angle = pos / 10000 ** (np.arange(0, d_model, 2) / d_model)
    pe = np.empty((max_len, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return pe


def test_table_reference_passes():
    assert check_sinusoidal_table(table).passed


def _swapped(max_len, d_model):
    pe = table(max_len, d_model)
    return pe[:, np.arange(d_model) ^ 1]          # swap each (sin, cos) column pair


def _half_exponent(max_len, d_model):
    angle = np.arange(max_len)[:, None] / 10000 ** (np.arange(d_model // 2) / d_model)
    pe = np.empty((max_len, d_model))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return pe


def _own_index(max_len, d_model):
    j = np.arange(d_model)
    angle = np.arange(max_len)[:, None] / 10000 ** (j / d_model)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))


def _sines_twice(max_len, d_model):
    pe = table(max_len, d_model)
    pe[:, 1::2] = pe[:, 0::2]
    return pe


@pytest.mark.parametrize("wrong, hint", [
    (_swapped, "sin and cos are swapped"),
    (_half_exponent, "2i/d_model"),
    (_own_index, "share one frequency"),
    (_sines_twice, "repeat the sines"),
    (lambda n, d: table(n, d) * 2, "largest difference"),
    (lambda n, d: table(n, d).T, "expected"),
])
def test_table_wrong_answers_fail(wrong, hint):
    assert_fails(check_sinusoidal_table(wrong), hint)


def shift(k, d_model):
    omega = 1 / 10000 ** (np.arange(0, d_model, 2) / d_model)
    M = np.zeros((d_model, d_model))
    for i, w in enumerate(omega):
        c, s = np.cos(k * w), np.sin(k * w)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, s], [-s, c]]
    return M


def test_shift_reference_passes_and_shifts():
    assert check_shift_matrix(shift).passed
    pe = sinusoidal_table(30, 8)
    assert np.allclose(pe[3:13] @ shift_matrix(7, 8).T, pe[10:20])


@pytest.mark.parametrize("wrong, hint", [
    (lambda k, d: shift(k, d).T, "shifts by -k"),
    (lambda k, d: shift(2 * k + 1, d), "2 x 2 blocks is right"),
    (lambda k, d: np.eye(d), "does not equal PE[p + k]"),
    (lambda k, d: shift(k, d)[:-1], "expected"),
])
def test_shift_wrong_answers_fail(wrong, hint):
    assert_fails(check_shift_matrix(wrong), hint)
