"""Finite-difference gradient checks, used by the tests and live in the backpropagation chapter."""
import numpy as np

__all__ = ["numerical_gradient", "rel_error"]


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of a scalar function f() with respect to the array x (changed in place and restored).

    Returns an array of x's shape: (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every entry i.
    Use float64: in float32 the rounding error of f swamps the difference.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad


def rel_error(a, b):
    """||a - b|| / (||a|| + ||b||), with a floor of 1e-12 below: about 1e-7 or less means two
    float64 gradients agree. (A gradient that is exactly zero in theory, such as that of the
    key bias in attention, is best checked with an absolute tolerance instead.)"""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))
