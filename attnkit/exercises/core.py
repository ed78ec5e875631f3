"""The machinery behind the exercise checkers.

A checker runs the learner's function on hidden cases and returns a CheckResult, whose text
is either a pass or one specific hint; it never lets a traceback through. A case raises
``Hint("...")`` when something is wrong; ``call`` runs the learner's code and turns its
exceptions into hints that say on which input it failed.
"""
import textwrap
from dataclasses import dataclass

import numpy as np

from ..seeding import fixed_rng

__all__ = ["CheckResult", "Hint", "call", "check", "cases_rng", "expect_array", "expect_close",
           "expect_number", "expect_whole", "expect_tuple", "assert_passes", "assert_fails_with"]


def cases_rng(seed):
    """The Generator of a checker's hidden cases: the same cases on every run, also in the
    robustness run (the cases are tuned so that each typical mistake is caught)."""
    return fixed_rng(seed)


class Hint(Exception):
    """Something specific is wrong with the learner's answer; the message says what and how to fix it."""


@dataclass
class CheckResult:
    """What a checker found: passed or not, and the message shown to the learner."""
    name: str
    passed: bool
    message: str

    def __bool__(self):
        return self.passed

    def __repr__(self):
        # wrapped, so a long hint reads without scrolling in the notebook and the book
        text = f"{'PASSED' if self.passed else 'NOT YET'} [{self.name}] {self.message}"
        return textwrap.fill(text, width=72, subsequent_indent="    ", break_on_hyphens=False)


def _describe(args):
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            parts.append(f"an array of shape {a.shape} ({a.dtype})")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def call(fn, *args, **kwargs):
    """Call the learner's fn on copies of the inputs; turn any exception into a Hint naming the input."""
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        with np.errstate(all="ignore"):  # overflow shows up in the result, checked by expect_array
            return fn(*copies, **kwargs)
    except (Hint, NotImplementedError):
        raise
    except Exception as e:  # the learner's bug, reported in one line, not as a traceback
        raise Hint(f"your function raised {type(e).__name__}: {e} (called with {_describe(args)})") from None


def expect_array(out, shape=None, what="the result", finite=True):
    """Hint unless out is an ndarray (of the given shape) with no nan or inf (finite=False: a
    checker that names the cause of a nan itself); returns it as an array."""
    if out is None:
        raise NotImplementedError
    if not isinstance(out, np.ndarray):
        if np.isscalar(out) or isinstance(out, (list, tuple)):
            out = np.asarray(out)
        else:
            raise Hint(f"{what} should be a NumPy array, got {type(out).__name__}")
    if shape is not None and out.shape != tuple(shape):
        raise Hint(f"{what} has shape {out.shape}, expected {tuple(shape)}: check which axis you "
                   "reduce over and whether you kept dimensions (keepdims=True)")
    if finite and np.issubdtype(out.dtype, np.floating) and not np.all(np.isfinite(out)):
        raise Hint(f"{what} contains nan or inf: an exponential probably overflowed "
                   "(subtract the maximum before np.exp)")
    return out


def expect_tuple(out, n, names):
    """The learner's tuple of n results; None or a tuple of Nones means "not done yet"."""
    if out is None or (isinstance(out, tuple) and all(o is None for o in out)):
        raise NotImplementedError
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise Hint(f"return a tuple of {n} arrays ({', '.join(names)}), got {type(out).__name__}")
    return out


def expect_number(out, where):
    """The learner's return value as one float, or a Hint saying what came back instead."""
    if out is None:
        raise NotImplementedError
    try:
        return float(np.asarray(out, dtype=np.float64).item())
    except (TypeError, ValueError):
        raise Hint(f"return one number; {where} you returned {type(out).__name__} {out!r}") from None


def expect_whole(out, what):
    """The learner's count as an int; a Hint for anything but a whole number (None: not done yet)."""
    if out is None:
        raise NotImplementedError
    if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, np.integer, float, np.floating)):
        raise Hint(f"{what} should be a number, got {type(out).__name__}")
    if float(out) != int(out):
        raise Hint(f"{what} should be a whole number, got {out}")
    return int(out)


def expect_close(out, expected, what="the result", rtol=1e-5, atol=1e-8, hint=""):
    """Hint unless out matches expected (same shape, values within tolerance)."""
    out = expect_array(out, np.shape(expected), what)
    if not np.allclose(out, expected, rtol=rtol, atol=atol):
        err = np.max(np.abs(out - expected))
        raise Hint(f"{what} differs from the expected values (largest difference {err:.3g}). {hint}".strip())
    return out


def check(name, fn, cases, success="all hidden cases pass."):
    """Run cases(fn), which raises Hint on the first problem; return a CheckResult.

    A function still raising NotImplementedError, or returning None, is reported as not done yet.
    """
    if not callable(fn):
        return CheckResult(name, False, f"pass your function itself (e.g. check(my_function)), got "
                                        f"{type(fn).__name__}")
    try:
        cases(fn)
    except NotImplementedError:
        return CheckResult(name, False, "not done yet: fill in the function body (it returned None or "
                                        "raised NotImplementedError).")
    except Hint as h:
        return CheckResult(name, False, str(h))
    return CheckResult(name, True, success)


# ----------------------------------------------------------------------------
# for the tests of a checker: the reference passes, each typical mistake fails with its hint

def assert_passes(result):
    """The checker accepted the answer."""
    assert result.passed, repr(result)


def assert_fails_with(result, text):
    """The checker rejected the answer, and its hint contains text."""
    assert not result.passed, f"expected a failure, got {result!r}"
    assert text in result.message, f"expected hint containing {text!r}, got {result.message!r}"
