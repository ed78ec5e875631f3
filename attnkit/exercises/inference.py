"""Checkers for chapter 23, attention at inference time: the cache size, grouped-query
attention, and the sliding-window mask with sinks.

    from attnkit.exercises.inference import check_kv_cache_bytes
    check_kv_cache_bytes(my_kv_cache_bytes)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import numpy as np

from ..functional import attention_forward
from ..kvcache import kv_cache_bytes, sliding_window_mask
from .core import Hint, call, cases_rng, check, expect_array, expect_number

__all__ = ["check_kv_cache_bytes", "check_grouped_attention", "check_window_mask"]


def _cases_rng():
    return cases_rng(2323)  # hidden cases are the same on every run, whatever the seed shift


# ----------------------------------------------------------------------------
# the key/value cache size

# the first case tells the factors 2 (keys and values), layers and bytes apart
_CACHE_CASES = [(12, 768, 12, 12, 1024, 4), (32, 4096, 32, 8, 32768, 2), (2, 64, 4, 1, 512, 4),
                (80, 8192, 64, 8, 4096, 2)]


def _cache_cases(fn):
    for L, d, h, h_kv, T, b in _CACHE_CASES:
        out = expect_number(call(fn, L, d, h, h_kv, T, b), "the number of bytes")
        want = kv_cache_bytes(L, d, h, T, num_kv_heads=h_kv, dtype=b)
        if out == want:
            continue
        d_k = d // h
        wrong = [
            (want // 2, "you counted the keys only: the cache holds keys *and* values, a factor 2."),
            (want * h // h_kv if h_kv != h else None,
             "you used num_heads (or d_model for the width of the keys): only the num_kv_heads "
             "key/value heads are cached, num_kv_heads * d_k numbers a position and layer."),
            (want // L, "you counted one layer: every layer has its own cache."),
            (want // b, "you counted values, not bytes: multiply by bytes_per_value."),
            (2 * L * T * h_kv * d_k * b * 8, "you counted bits: the answer is in bytes."),
        ]
        for value, hint in wrong:
            if value is not None and out == value:
                raise Hint(hint)
        raise Hint(f"for {L} layers, d_model {d}, {h} heads, {h_kv} key/value heads, context {T} and "
                   f"{b} bytes a value the cache holds {want:,} bytes, you returned {out:,}.")


def check_kv_cache_bytes(fn):
    """fn(num_layers, d_model, num_heads, num_kv_heads, context_length, bytes_per_value) -> bytes."""
    return check("key/value cache size", fn, _cache_cases,
                 "all hidden cases pass: 2 x layers x context x num_kv_heads x d_k x bytes.")


# ----------------------------------------------------------------------------
# grouped-query attention by copying each key/value head to its query heads

def _grouped_ref(q, k, v, mask=None):
    g = q.shape[1] // k.shape[1]
    return attention_forward(q, np.repeat(k, g, axis=1), np.repeat(v, g, axis=1), mask=mask)[0]


def _grouped_cases(fn):
    rng = _cases_rng()
    for B, h, h_kv, T, d in [(2, 4, 2, 5, 3), (1, 6, 3, 4, 2), (2, 4, 1, 3, 4), (1, 2, 2, 3, 2)]:
        q = rng.normal(size=(B, h, T, d))
        k, v = rng.normal(size=(B, h_kv, T, d)), rng.normal(size=(B, h_kv, T, d))
        out = expect_array(call(fn, q, k, v), (B, h, T, d), "the heads")
        want = _grouped_ref(q, k, v)
        if np.allclose(out, want, atol=1e-8):
            continue
        g = h // h_kv
        tiled = attention_forward(q, np.tile(k, (1, g, 1, 1)), np.tile(v, (1, g, 1, 1)))[0]
        if np.allclose(out, tiled, atol=1e-8):
            raise Hint("query head i must read key/value head i // g (the heads of a group are "
                       "neighbours): np.repeat(k, g, axis=1), not np.tile, which gives i % h_kv.")
        unscaled = attention_forward(q * np.sqrt(d), np.repeat(k, g, 1), np.repeat(v, g, 1))[0]
        if np.allclose(out, unscaled, atol=1e-8):
            raise Hint("divide the scores by sqrt(d_k), as in ordinary attention.")
        raise Hint(f"for q {q.shape} and k, v {k.shape} your heads differ from attention over the "
                   "key/value heads copied to their g = h / h_kv query heads.")


def check_grouped_attention(fn):
    """fn(q (B, h, T, d_k), k (B, h_kv, T, d_k), v (B, h_kv, T, d_k)) -> heads (B, h, T, d_k)."""
    return check("grouped-query attention", fn, _grouped_cases,
                 "all hidden cases pass: query head i attends with key/value head i // (h / h_kv).")


# ----------------------------------------------------------------------------
# the sliding-window mask with attention sinks

def _window_cases(fn):
    for T, W, s in [(8, 3, 0), (9, 3, 2), (6, 1, 1), (5, 7, 0), (10, 4, 1)]:
        out = np.asarray(expect_array(call(fn, T, W, s), (T, T), "the mask"))
        if out.dtype != bool:
            raise Hint(f"return a boolean mask (True = may attend), got dtype {out.dtype}.")
        want = sliding_window_mask(T, W, s)
        if np.array_equal(out, want):
            continue
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        if np.any(out & (j > i)):
            raise Hint("a query sees a future position: the window is causal, j <= i (the sinks too).")
        if s and np.array_equal(out, sliding_window_mask(T, W, 0)):
            raise Hint(f"with sinks = {s} the first {s} positions stay visible to every later query.")
        if np.array_equal(out, (j <= i) & ((i - j <= W) | (j < s))):
            raise Hint(f"off by one: a window of {W} holds the query itself and the {W - 1} positions "
                       "before it, i - j < window.")
        raise Hint(f"for T = {T}, window = {W}, sinks = {s}: True where j <= i and (i - j < window "
                   "or j < sinks).")


def check_window_mask(fn):
    """fn(T, window, sinks) -> (T, T) bool, True where query i may see key j."""
    return check("sliding-window mask with sinks", fn, _window_cases,
                 "all hidden cases pass: causal, the last `window` positions, and the sinks.")
