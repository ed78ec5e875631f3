"""Checkers for chapter 22 (positions revisited): rotary embeddings and ALiBi's bias matrix.

    from attnkit.exercises.relative_positions import check_rope, check_alibi_matrix
    check_rope(my_rope)              # my_rope(x, positions) -> x rotated, (T, d) -> (T, d)
    check_alibi_matrix(my_alibi)     # my_alibi(h, T) -> (h, T, T) causal ALiBi bias

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import numpy as np

from ..positions import alibi_slopes, apply_rope
from .core import Hint, call, cases_rng, check, expect_array

__all__ = ["check_rope", "check_alibi_matrix"]


def _cases_rng():
    return cases_rng(2222)  # hidden cases are the same on every run, whatever the seed shift


# ----------------------------------------------------------------------------
# RoPE on (T, d): interleaved pairs (2i, 2i+1), angle p * 10000^(-2i/d)

def _rope_variant(x, positions, pairs="interleaved", exponent="2i", sign=1.0):
    """The reference (defaults) and its usual mistakes."""
    T, d = x.shape
    i = np.arange(d // 2)
    e = {"2i": 2 * i / d, "i": i / d}[exponent]
    angle = sign * np.asarray(positions)[:, None] * 10000.0 ** (-e)[None, :]  # (T, d/2)
    c, s = np.cos(angle), np.sin(angle)
    out = np.empty_like(x)
    a, b = (slice(0, None, 2), slice(1, None, 2)) if pairs == "interleaved" else \
        (slice(0, d // 2), slice(d // 2, d))
    out[:, a] = x[:, a] * c - x[:, b] * s
    out[:, b] = x[:, a] * s + x[:, b] * c
    return out


def _rope_cases(fn):
    rng = _cases_rng()
    for T, d, first in ((5, 8, 0), (6, 16, 3), (3, 4, 40)):
        x = rng.standard_normal((T, d))
        pos = np.arange(first, first + T)
        where = f"for x of shape {(T, d)} at positions {pos.tolist()}"
        out = expect_array(call(fn, x, pos), (T, d), what=f"the rotated x {where}")
        want = apply_rope(x, pos)
        if np.allclose(out, want, atol=1e-9):
            continue
        if np.allclose(out, x):
            raise Hint(f"{where} x came back unchanged: rotate each pair by the angle position * theta_i.")
        mistakes = [
            (_rope_variant(x, pos, sign=-1.0),
             "you rotate by minus the angle (x1 sin + x2 cos vs x1 cos + x2 sin swapped signs): the "
             "first coordinate of a pair becomes x1 cos - x2 sin, the second x1 sin + x2 cos."),
            (_rope_variant(x, pos, pairs="halves"),
             "you paired coordinate i with i + d/2 (the GPT-NeoX/Llama 'rotate half' layout); this "
             "chapter pairs neighbours, (x[2i], x[2i+1]), as the RoFormer paper writes R."),
            (_rope_variant(x, pos, exponent="i"),
             "the frequencies use i/d in the exponent; pair i turns at theta_i = 10000^(-2i/d), "
             "so that the slowest pair nearly stands still."),
        ]
        for wrong, hint in mistakes:
            if np.allclose(out, wrong, atol=1e-9):
                raise Hint(f"{where} {hint}")
        if np.allclose(np.linalg.norm(out, axis=1), np.linalg.norm(x, axis=1)):
            raise Hint(f"{where} the norms are kept (a rotation), but not the right one: pair "
                       "(x[2i], x[2i+1]) of row t turns by positions[t] * 10000^(-2i/d).")
        raise Hint(f"{where} the result differs from the rotation of each pair (x[2i], x[2i+1]) by "
                   f"positions[t] * 10000^(-2i/d) (largest difference {np.max(np.abs(out - want)):.3g}).")
    # the property the rotation is for: a score depends on the offset m - n only
    q, k = rng.standard_normal((1, 8)), rng.standard_normal((1, 8))
    scores = [float(call(fn, q, np.array([m]))[0] @ call(fn, k, np.array([m - 3]))[0]) for m in (3, 10, 99)]
    if np.ptp(scores) > 1e-9:
        raise Hint(f"the score of a query at m and a key at m - 3 changes with m ({scores}): "
                   "it must depend on m - n only.")


def check_rope(fn):
    """Check fn(x, positions) -> x with every pair (x[t, 2i], x[t, 2i+1]) rotated by
    positions[t] * 10000^(-2i/d); x (T, d), positions (T,)."""
    return check("rotary embedding", fn, _rope_cases,
                 "the pairs turn by position times frequency, and <R_m q, R_n k> depends on m - n only.")


# ----------------------------------------------------------------------------
# ALiBi's bias, causal mask folded in: -m_i (a - b) for b <= a, -inf for b > a

def _alibi_matrix(h, T, slopes=None, sign=-1.0, mask=True):
    m = alibi_slopes(h) if slopes is None else slopes
    a, b = np.arange(T)[:, None], np.arange(T)[None, :]
    dist = a - b                                                        # (T, T)
    out = sign * m[:, None, None] * dist[None].astype(float)            # (h, T, T)
    if mask:
        out = np.where((b <= a)[None], out, -np.inf)
    return out


def _alibi_cases(fn):
    for h, T in ((4, 5), (8, 7), (6, 4), (1, 3)):
        where = f"for h={h}, T={T}"
        out = call(fn, h, T)
        if out is None:
            raise NotImplementedError
        out = np.asarray(out, dtype=float)
        if out.shape != (h, T, T):
            raise Hint(f"{where} the bias has shape {out.shape}, expected (h, T, T) = {(h, T, T)}: one "
                       "(T, T) matrix per head.")
        want = _alibi_matrix(h, T)
        if np.array_equal(np.isinf(out), np.isinf(want)) and np.allclose(out[~np.isinf(want)],
                                                                         want[~np.isinf(want)]):
            continue
        upper = np.triu(np.ones((T, T), bool), 1)[None].repeat(h, 0)
        if not np.all(np.isneginf(out[upper])) and T > 1:
            lower = _alibi_matrix(h, T, mask=False)
            if np.allclose(out[~upper], lower[~upper]):
                raise Hint(f"{where} the lower triangle is right, but keys after the query must get -inf "
                           "(the causal mask folded into the bias).")
            raise Hint(f"{where} entries above the diagonal (keys after the query) must be -inf.")
        keep = ~upper
        naive = 2.0 ** -np.arange(1, h + 1)
        power = 2.0 ** (-8.0 * np.arange(1, h + 1) / h)
        mistakes = [
            (_alibi_matrix(h, T, sign=1.0), "the bias has the wrong sign: a far key gets a *penalty*, "
                                            "-m (a - b) <= 0, so attention favours recent keys."),
            (_alibi_matrix(h, T, slopes=2.0 ** (-8.0 * np.arange(0, h) / h)),
             "the slopes start at 2^0 = 1: the paper counts heads from 1, m_i = 2^(-8i/h), i = 1..h."),
            (_alibi_matrix(h, T, slopes=naive), "the slopes are 2^-i; the paper spreads them as "
                                                "m_i = 2^(-8i/h), so that they end at 2^-8 for any h."),
        ]
        if h & (h - 1):  # not a power of two
            mistakes.append((_alibi_matrix(h, T, slopes=power),
                             f"h={h} is not a power of two: the paper takes the {2 ** int(np.log2(h))} slopes "
                             "of the nearest smaller power of two n, then every other slope of 2n "
                             "(use attnkit.positions.alibi_slopes, or build them that way)."))
        for wrong, hint in mistakes:
            if np.allclose(out[keep], wrong[keep]):
                raise Hint(f"{where} {hint}")
        raise Hint(f"{where} the bias differs from -m_i (a - b) for the key b <= query a, with "
                   "m_i = 2^(-8i/h) (largest difference "
                   f"{np.max(np.abs(out[keep] - want[keep])):.3g}).")


def check_alibi_matrix(fn):
    """Check fn(h, T) -> (h, T, T): bias[i, a, b] = -m_i (a - b) for b <= a, -inf for b > a,
    with ALiBi's slopes m_i (the paper's rule when h is not a power of two)."""
    return check("ALiBi bias matrix", fn, _alibi_cases,
                 "each head penalizes distance linearly, with its own slope.")
