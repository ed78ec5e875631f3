"""Checkers for chapter 13, training strategy: the warmup schedule and gradient clipping.

    from attnkit.exercises.training import check_noam_schedule
    check_noam_schedule(my_noam)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import math

import numpy as np

from ..optim import NoamSchedule, global_grad_norm
from .core import Hint, call, cases_rng, check

__all__ = ["check_noam_schedule", "check_clip_grad_norm"]


# ----------------------------------------------------------------------------
# the warmup schedule of "Attention Is All You Need"

def _noam(step, d_model, warmup):
    return NoamSchedule(d_model, warmup)(step)             # the reference is the library's


# (wrong version, hint): if the learner's values match a wrong version at every step, that is the hint
_NOAM_MISTAKES = [
    (lambda s, d, w: _noam(s + 1, d, w),
     "your values are those of the next step: steps are counted from 1 (the first optimizer step is "
     "step 1, where lr = d_model^-0.5 * warmup^-1.5), so use step itself, not step + 1."),
    (lambda s, d, w: _noam(s, d, w) * d ** 0.5,
     "the factor d_model^-0.5 is missing: multiply by d_model ** -0.5 (wider models take smaller steps)."),
    (lambda s, d, w: _noam(s, d, w) * d,
     "you multiplied by d_model^0.5 instead of d_model^-0.5: the factor is d_model ** -0.5."),
    (lambda s, d, w: _noam(s, d, w) / d ** 0.5,
     "you used d_model^-1 instead of d_model^-0.5: the factor is d_model ** -0.5."),
    (lambda s, d, w: d ** -0.5 * max(s ** -0.5, s * w ** -1.5),
     "you took the max of the two terms: the schedule is the min, so the linear term s * warmup^-1.5 "
     "rules during warmup and s^-0.5 after it."),
    (lambda s, d, w: d ** -0.5 * min(s ** -0.5, s * w ** -0.5),
     "the warmup term has the wrong exponent: it is step * warmup ** -1.5, so that the two terms "
     "meet at step == warmup."),
    (lambda s, d, w: d ** -0.5 * min(s ** -0.5, s / w),
     "the warmup term is step * warmup ** -1.5, not step / warmup: with -1.5 the two terms meet at "
     "step == warmup."),
    (lambda s, d, w: d ** -0.5 * min(1 / s, s * w ** -1.5),
     "the decay term has the wrong exponent: after warmup the rate falls as step ** -0.5 (an inverse "
     "square root), not 1 / step."),
]


def _noam_cases(fn):
    settings = [(64, 100, [1, 2, 10, 50, 99, 100, 101, 400, 3000]),
                (512, 4000, [1, 1000, 4000, 4001, 20000])]
    outs, refs, args = [], [], []
    for d, w, steps in settings:
        for s in steps:
            out = call(fn, s, d, w)
            if out is None:
                raise NotImplementedError
            try:
                out = float(np.asarray(out).item())
            except (TypeError, ValueError):
                raise Hint(f"return one number, the learning rate at that step; at step={s} you returned "
                           f"{type(out).__name__} {out!r}") from None
            if not math.isfinite(out):
                raise Hint(f"your learning rate at step={s} (d_model={d}, warmup={w}) is {out}: steps start "
                           "at 1, so step ** -0.5 is finite; check for a division by zero.")
            outs.append(out)
            refs.append(_noam(s, d, w))
            args.append((s, d, w))
    outs, refs = np.array(outs), np.array(refs)
    if np.allclose(outs, refs, rtol=1e-6, atol=0):
        return
    for wrong, hint in _NOAM_MISTAKES:
        if np.allclose(outs, [wrong(*a) for a in args], rtol=1e-6, atol=0):
            raise Hint(hint)
    i = int(np.argmax(~np.isclose(outs, refs, rtol=1e-6, atol=0)))
    s, d, w = args[i]
    raise Hint(f"at step={s}, d_model={d}, warmup={w} you give {outs[i]:.6g}, expected {refs[i]:.6g}. "
               "lr = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5); its peak, at step == warmup, "
               "is (d_model * warmup)^-0.5.")


def check_noam_schedule(fn):
    """Check fn(step, d_model, warmup) -> learning rate of "Attention Is All You Need" (steps from 1)."""
    return check("noam_schedule", fn, _noam_cases)


# ----------------------------------------------------------------------------
# gradient clipping by global norm

def _grads(rng, scale):
    """Three gradient arrays of different shapes, as a model's would be."""
    return [rng.normal(0.0, scale, size=shape) for shape in ((4, 3), (3,), (2, 2, 5))]


def _global_norm(grads):
    return global_grad_norm([(g, g) for g in grads])       # the library's, on (param, grad) pairs


def _clip_cases(fn):
    rng = cases_rng(1313)

    # 1. a large gradient, global norm well above max_norm
    grads = _grads(rng, 2.0)
    originals = [g.copy() for g in grads]
    given = list(grads)          # the list handed to the learner; `grads` keeps the original arrays
    max_norm = 1.0
    total = _global_norm(originals)
    out = call(fn, given, max_norm)
    changed = any(not np.array_equal(g, o) for g, o in zip(grads, originals))
    if out is None and not changed and all(a is b for a, b in zip(given, grads)):
        raise NotImplementedError
    replaced = any(a is not b for a, b in zip(given, grads))
    if not changed:
        if replaced or isinstance(out, (list, tuple)):
            raise Hint("the arrays you were given are unchanged: you made new, scaled arrays. The "
                       "optimizer holds the original arrays, so scale them in place (g *= scale); "
                       "g = g * scale only rebinds a name.")
        raise Hint(f"the gradients are unchanged, but their global norm ({total:.3f}) is above "
                   f"max_norm={max_norm}: scale every array in place by max_norm / norm (g *= scale; "
                   "g = g * scale inside a loop only makes a new array).")
    expected = [o * (max_norm / total) for o in originals]
    per_tensor = [o * min(1.0, max_norm / float(np.linalg.norm(o))) for o in originals]
    if all(np.allclose(g, e) for g, e in zip(grads, per_tensor)):
        raise Hint("you clipped each array to max_norm on its own: clipping by global norm computes one "
                   "norm over all arrays, sqrt(sum of every squared entry), and scales all of them by the "
                   "same factor, which keeps the direction of the whole update.")
    for g, e in zip(grads, expected):
        if not np.allclose(g, e):
            new_norm = _global_norm(grads)
            raise Hint(f"after clipping, the global norm should be exactly max_norm={max_norm}, with every "
                       f"array scaled by the same factor max_norm / norm; yours has global norm "
                       f"{new_norm:.4g}.")
    if out is None:
        raise Hint("the gradients are clipped correctly, but you returned None: return the global norm "
                   "measured before clipping (training loops log it).")
    try:
        out = float(np.asarray(out).item())
    except (TypeError, ValueError):
        raise Hint(f"return the global norm before clipping as one number, got "
                   f"{type(out).__name__}") from None
    if math.isclose(out, max_norm, rel_tol=1e-6) and not math.isclose(total, max_norm, rel_tol=1e-6):
        raise Hint(f"you returned the norm after clipping ({out:.4g}): return the norm measured before "
                   f"clipping ({total:.4g}), which shows how large the gradient really was.")
    if not math.isclose(out, total, rel_tol=1e-6):
        raise Hint(f"you returned {out:.6g}; the global norm before clipping is {total:.6g}, "
                   "sqrt(sum over all arrays of the sum of their squared entries).")

    # 2. a small gradient: below max_norm nothing changes
    grads = _grads(rng, 0.05)
    originals = [g.copy() for g in grads]
    total = _global_norm(originals)
    max_norm = 1.0
    out = call(fn, grads, max_norm)
    if not all(np.array_equal(g, o) for g, o in zip(grads, originals)):
        if math.isclose(_global_norm(grads), max_norm, rel_tol=1e-6):
            raise Hint(f"you scaled a gradient of norm {total:.3f} up to max_norm={max_norm}: clipping only "
                       "ever shrinks. When the norm is at most max_norm, leave the gradients alone.")
        raise Hint(f"the gradients changed although their global norm ({total:.3f}) is below "
                   f"max_norm={max_norm}: leave them alone in that case.")
    if out is None or not math.isclose(float(np.asarray(out).item()), total, rel_tol=1e-6):
        raise Hint(f"below the threshold too, return the global norm ({total:.6g}), got {out!r}.")


def check_clip_grad_norm(fn):
    """Check fn(grads, max_norm): scale the list of arrays in place to global norm <= max_norm, return the
    norm before."""
    return check("clip_grad_norm", fn, _clip_cases)
