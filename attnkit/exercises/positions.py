"""Checkers for chapter 5 (positional encoding): the sinusoidal table and the shift-by-k matrix.

    from attnkit.exercises.positions import check_sinusoidal_table, check_shift_matrix
    check_sinusoidal_table(my_table)   # my_table(max_len, d_model) -> (max_len, d_model)
    check_shift_matrix(my_shift)       # my_shift(k, d_model) -> M_k (d_model, d_model), PE[p + k] = M_k PE[p]
"""
import numpy as np

from ..nn import sinusoidal_table
from .core import Hint, call, check, expect_array

__all__ = ["check_sinusoidal_table", "check_shift_matrix"]


def _angles(max_len, d_model, exponent):
    pos = np.arange(max_len)[:, None]                                   # (max_len, 1)
    return pos / np.power(10000.0, exponent[None, :] / d_model)        # (max_len, d_model/2)


def _table(max_len, d_model, exponent, swap=False):
    a = _angles(max_len, d_model, exponent)
    pe = np.zeros((max_len, d_model))
    pe[:, 0::2], pe[:, 1::2] = (np.cos(a), np.sin(a)) if swap else (np.sin(a), np.cos(a))
    return pe


def _table_cases(fn):
    for max_len, d_model in ((10, 8), (50, 16), (7, 6)):
        out = expect_array(call(fn, max_len, d_model), (max_len, d_model),
                           what=f"the table for max_len={max_len}, d_model={d_model}")
        want = sinusoidal_table(max_len, d_model)
        if np.allclose(out, want, atol=1e-6):
            continue
        two_i = np.arange(0, d_model, 2)
        where = f"for max_len={max_len}, d_model={d_model}"
        if np.allclose(out, _table(max_len, d_model, two_i, swap=True), atol=1e-6):
            raise Hint(f"{where} sin and cos are swapped: even columns 2i hold the sine, odd columns "
                       "2i+1 the cosine (row 0 should read 0, 1, 0, 1, ...).")
        if np.allclose(out, _table(max_len, d_model, two_i // 2), atol=1e-6):
            raise Hint(f"{where} the exponent is i/d_model; it is 2i/d_model, where 2i is the even "
                       "column index (np.arange(0, d_model, 2)), so the wavelengths reach 10000 * 2 pi.")
        j = np.arange(d_model)
        pe = np.where(j % 2 == 0, np.sin(np.arange(max_len)[:, None] / 10000.0 ** (j / d_model)),
                      np.cos(np.arange(max_len)[:, None] / 10000.0 ** (j / d_model)))
        if np.allclose(out, pe, atol=1e-6):
            raise Hint(f"{where} the odd column 2i+1 uses its own index in the exponent; a sine and "
                       "its cosine partner share one frequency, 1 / 10000^(2i/d_model).")
        if np.allclose(out[:, 0::2], want[:, 0::2], atol=1e-6) and np.allclose(out[:, 0::2], out[:, 1::2]):
            raise Hint(f"{where} the odd columns repeat the sines: they should hold the cosines.")
        err = np.max(np.abs(out - want))
        raise Hint(f"{where} the table differs from PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), "
                   f"PE[pos, 2i+1] = cos(...) (largest difference {err:.3g}).")


def check_sinusoidal_table(fn):
    """Check fn(max_len, d_model) -> the (max_len, d_model) sinusoidal table (d_model even)."""
    return check("sinusoidal position table", fn, _table_cases, "the table matches Vaswani et al. (2017).")


def _shift_matrix(k, d_model):   # the answer, private
    """M_k with PE[pos + k] = M_k @ PE[pos]: a 2 x 2 rotation by angle k * omega_i for each (sin, cos)
    pair."""
    omega = 1.0 / np.power(10000.0, np.arange(0, d_model, 2) / d_model)  # (d_model/2,)
    c, s = np.cos(k * omega), np.sin(k * omega)
    M = np.zeros((d_model, d_model))
    M[0::2, 0::2] = np.diag(c)
    M[0::2, 1::2] = np.diag(s)  # sin(a+b) = sin a cos b + cos a sin b
    M[1::2, 0::2] = np.diag(-s)  # cos(a+b) = cos a cos b - sin a sin b
    M[1::2, 1::2] = np.diag(c)
    return M


def _shift_cases(fn):
    for k, d_model in ((1, 8), (5, 16), (-3, 8), (0, 4)):
        M = expect_array(call(fn, k, d_model), (d_model, d_model), what=f"M_k for k={k}, d_model={d_model}")
        want = _shift_matrix(k, d_model)
        if np.allclose(M, want, atol=1e-8):
            continue
        where = f"for k={k}, d_model={d_model}"
        if np.allclose(M, want.T, atol=1e-8):
            raise Hint(f"{where} your matrix shifts by -k (it is M_k transposed): check the signs, "
                       "sin(p+k) = sin p cos k + cos p sin k and cos(p+k) = cos p cos k - sin p sin k.")
        if np.allclose(np.abs(M) > 1e-12, np.abs(want) > 1e-12):
            raise Hint(f"{where} the pattern of 2 x 2 blocks is right but the values are not: "
                       "block i rotates by the angle k * omega_i, omega_i = 1 / 10000^(2i/d_model).")
        raise Hint(f"{where} M_k @ PE[p] does not equal PE[p + k]. M_k is block diagonal: one 2 x 2 "
                   "block [[cos, sin], [-sin, cos]] of angle k * omega_i for each (sin, cos) pair of "
                   "columns.")


def check_shift_matrix(fn):
    """Check fn(k, d_model) -> M_k (d_model, d_model) with sinusoidal_table[p + k] = M_k @
    sinusoidal_table[p]."""
    return check("shift by k as a matrix", fn, _shift_cases,
                 "moving k positions is a rotation that does not depend on the position p.")
