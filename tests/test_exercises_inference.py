"""The checkers of chapter 23 (attention at inference time) pass the reference solutions and fail
typical wrong answers with their specific hint."""
import numpy as np

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes
from attnkit.exercises.inference import check_grouped_attention, check_kv_cache_bytes, check_window_mask
from attnkit.functional import attention_forward
from attnkit.kvcache import kv_cache_bytes, sliding_window_mask


# ---------------------------------------------------------------- cache size

def cache_ref(L, d, h, h_kv, T, b):
    return 2 * L * T * h_kv * (d // h) * b


def test_cache_reference_and_attnkit_pass():
    passes(check_kv_cache_bytes(cache_ref))
    passes(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: kv_cache_bytes(L, d, h, T, h_kv, dtype=b)))


def test_cache_mistakes():
    fails_with(check_kv_cache_bytes(lambda *a: None), "not done yet")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: cache_ref(L, d, h, h_kv, T, b) // 2),
               "keys *and* values")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: cache_ref(L, d, h, h, T, b)), "num_heads")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: 2 * L * T * d * b), "num_heads")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: cache_ref(1, d, h, h_kv, T, b)), "one layer")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: cache_ref(L, d, h, h_kv, T, 1)), "bytes_per_value")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: cache_ref(L, d, h, h_kv, T, b) * 8), "bits")
    fails_with(check_kv_cache_bytes(lambda L, d, h, h_kv, T, b: cache_ref(L, d, h, h_kv, T, b) + 1),
               "you returned")
    fails_with(check_kv_cache_bytes(lambda *a: "many"), "one number")


# ---------------------------------------------------------------- grouped-query attention

def grouped_ref(q, k, v):
    g = q.shape[1] // k.shape[1]
    return attention_forward(q, np.repeat(k, g, axis=1), np.repeat(v, g, axis=1))[0]


def test_grouped_reference_passes_and_mistakes_fail():
    passes(check_grouped_attention(grouped_ref))
    fails_with(check_grouped_attention(lambda q, k, v: None), "not done yet")

    def tiled(q, k, v):
        g = q.shape[1] // k.shape[1]
        return attention_forward(q, np.tile(k, (1, g, 1, 1)), np.tile(v, (1, g, 1, 1)))[0]
    fails_with(check_grouped_attention(tiled), "np.tile")

    def unscaled(q, k, v):
        return grouped_ref(q * np.sqrt(q.shape[-1]), k, v)
    fails_with(check_grouped_attention(unscaled), "sqrt(d_k)")
    fails_with(check_grouped_attention(lambda q, k, v: q), "differ")
    fails_with(check_grouped_attention(lambda q, k, v: k), "shape")


# ---------------------------------------------------------------- window mask

def window_ref(T, W, s):
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    return (j <= i) & ((i - j < W) | (j < s))


def test_window_reference_and_attnkit_pass():
    passes(check_window_mask(window_ref))
    passes(check_window_mask(sliding_window_mask))


def test_window_mistakes():
    fails_with(check_window_mask(lambda T, W, s: None), "not done yet")
    fails_with(check_window_mask(lambda T, W, s: window_ref(T, W, s).astype(int)), "boolean")

    def band(T, W, s):
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        return (np.abs(i - j) < W) | (j < s)
    fails_with(check_window_mask(band), "future")
    fails_with(check_window_mask(lambda T, W, s: window_ref(T, W, 0)), "sinks")

    def off_by_one(T, W, s):
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        return (j <= i) & ((i - j <= W) | (j < s))
    fails_with(check_window_mask(off_by_one), "off by one")
    fails_with(check_window_mask(lambda T, W, s: np.eye(T, dtype=bool)), "True where")
