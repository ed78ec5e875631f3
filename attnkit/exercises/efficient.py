"""Checkers for the chapter on tiled attention: one online-softmax update, and the causal tile count.

    from attnkit.exercises.efficient import check_online_softmax_step
    check_online_softmax_step(my_step)   # -> PASSED ... or NOT YET ... with a hint
"""
import numpy as np

from .core import Hint, call, cases_rng, check, expect_array

__all__ = ["check_online_softmax_step", "check_causal_tile_count"]


def _reference_step(m, l, acc, s, v):
    m_new = np.maximum(m, s.max(axis=-1, keepdims=True))                   # (n, 1)
    alpha = np.exp(m - m_new)                                              # (n, 1)
    p = np.exp(s - m_new)                                                  # (n, b)
    return m_new, alpha * l + p.sum(-1, keepdims=True), alpha * acc + p @ v


def _run(step, S, V, block):
    """Feed the tiles of scores S (n, T) and values V (T, d_v) to step; return m, l, acc."""
    n, d_v = S.shape[0], V.shape[1]
    m, l, acc = np.full((n, 1), -np.inf), np.zeros((n, 1)), np.zeros((n, d_v))
    for j in range(0, S.shape[1], block):
        res = call(step, m, l, acc, S[:, j:j + block], V[j:j + block])
        if res is None:
            raise NotImplementedError
        if not (isinstance(res, tuple) and len(res) == 3):
            raise Hint("return the three updated running quantities as a tuple (m_new, l_new, acc_new)")
        m_new = np.asarray(res[0], dtype=float)
        if m_new.shape != (n, 1):
            raise Hint(f"m_new has shape {m_new.shape}, expected {(n, 1)}: one running maximum per "
                       "query row (keepdims=True)")
        if not np.allclose(m_new, S[:, :j + block].max(1, keepdims=True)):
            raise Hint("m_new must be the running maximum over every tile so far: "
                       "np.maximum(m, s.max(axis=-1, keepdims=True)), not the maximum of this tile")
        m = m_new
        l, acc = (expect_array(np.asarray(x, dtype=float), shape, name) for x, shape, name in
                  zip(res[1:], [(n, 1), (n, d_v)], ["l_new", "acc_new"]))
    return m, l, acc


def _online_cases(step):
    rng = cases_rng(0)
    for n, T, d_v, block, size in [(3, 12, 2, 4, 1.0), (4, 10, 3, 3, 3.0), (2, 9, 2, 2, 300.0)]:
        S = rng.standard_normal((n, T)) * size                             # (n, T) scores
        S[:, -2:] += 2 * size                                              # the maximum comes late
        V = rng.standard_normal((T, d_v))                                  # (T, d_v)
        m, l, acc = _run(step, S, V, block)
        w = np.exp(S - S.max(1, keepdims=True))                            # (n, T)
        if not np.allclose(l, w.sum(1, keepdims=True)):
            # which mistake? compare with the sums a wrong update leaves after the same tiles
            ref_m = np.full((n, 1), -np.inf)
            l_norescale = np.zeros((n, 1))
            for j in range(0, T, block):
                ref_m = np.maximum(ref_m, S[:, j:j + block].max(1, keepdims=True))
                l_norescale += np.exp(S[:, j:j + block] - ref_m).sum(1, keepdims=True)
            if np.allclose(l, l_norescale):
                raise Hint("l must be rescaled too: when the maximum grows from m to m_new, the sum "
                           "so far was taken with the old maximum, so multiply it by exp(m - m_new)")
            raise Hint("l_new should be exp(m - m_new) * l + the row sum of exp(s - m_new), the softmax "
                       "denominator relative to the current maximum (check the sign of m - m_new)")
        if not np.allclose(acc, w @ V) and np.allclose(acc, (w / w.sum(1, keepdims=True)) @ V):
            raise Hint("keep acc unnormalised (alpha * acc + p @ v); divide by l only at the very end")
        if not np.allclose(acc, w @ V):
            raise Hint("acc must be rescaled by the same factor exp(m - m_new) as l before adding "
                       "p @ v, where p = exp(s - m_new)")


def check_online_softmax_step(fn):
    """Check fn(m, l, acc, s, v) -> (m_new, l_new, acc_new), one tile of the online softmax."""
    return check("online_softmax_step", fn, _online_cases)


def _tile_cases(fn):
    for T, block in [(64, 16), (100, 16), (8, 8), (7, 16), (512, 64)]:
        got = call(fn, T, block)
        if got is None:
            raise NotImplementedError
        n = -(-T // block)
        if got == n * (n + 1) // 2:
            continue
        m = T // block
        if T % block and got in (m * (m + 1) // 2, m * m):
            raise Hint(f"T={T}, block={block}: the last, shorter block counts too: there are "
                       f"ceil(T / block) = {n} blocks, not T // block = {m}")
        if got == n * n:
            raise Hint(f"T={T}, block={block}: {got} is the full grid; skip the tiles whose every key "
                       "comes after every query (above the diagonal)")
        if got == n * (n - 1) // 2:
            raise Hint(f"T={T}, block={block}: the tiles on the diagonal are needed (they hold the "
                       "positions that see themselves), only those above it are skipped")
        if got == T * (T + 1) // 2:
            raise Hint("that counts (query, key) pairs, not tiles of block x block")
        raise Hint(f"T={T}, block={block}: expected {n * (n + 1) // 2} tiles, got {got!r}")


def check_causal_tile_count(fn):
    """Check fn(T, block) -> number of (block x block) tiles causal tiled attention computes."""
    return check("causal_tile_count", fn, _tile_cases)
