"""Checkers for the chapter on attributions and head pruning: attention rollout of a stack of
attention maps, and occlusion of one token at a time.

    from attnkit.exercises.attribution import check_rollout
    check_rollout(my_rollout)   # -> PASSED ... or NOT YET ... with a hint
"""
import numpy as np

from ..functional import softmax
from .core import Hint, call, cases_rng, check, expect_array

__all__ = ["check_rollout", "check_occlusion"]


def _norm(A):
    return A / A.sum(axis=-1, keepdims=True)


def _chain(As, reverse=False):
    R = As[0]
    for A in As[1:]:
        R = R @ A if reverse else A @ R
    return R


def _rollout_cases(fn):
    rng = cases_rng(0)
    for L, h, T in [(2, 2, 4), (3, 4, 5), (1, 2, 3), (4, 3, 6)]:
        maps = softmax(2 * rng.standard_normal((L, h, T, T)), axis=-1)      # (L, h, T, T)
        eye = np.eye(T)
        mean = maps.mean(axis=1)                                             # (L, T, T)
        ref = _chain(_norm(mean + eye))
        got = expect_array(call(fn, maps), (T, T), "the rollout")
        if np.allclose(got, ref):
            continue
        if np.allclose(got, _chain(mean)):
            raise Hint("add the identity to every layer's (head-averaged) map before multiplying: "
                       "the residual connection carries each position's own vector up unchanged")
        if np.allclose(got, _chain(mean + eye)):
            raise Hint("renormalize the rows after adding the identity (divide by the row sums, "
                       "which are 2): each row must stay a distribution")
        if L > 1 and np.allclose(got, _chain(_norm(mean + eye), reverse=True)):
            raise Hint("multiply later layers on the left: R = A_L ... A_2 A_1, so that R = A_l @ R "
                       "for l = 2 .. L (the first layer acts first on the input)")
        if np.allclose(got, _chain(_norm(maps[:, 0] + eye))):
            raise Hint("average the heads of each layer (axis 1 of the (L, h, T, T) maps), not only "
                       "the first head")
        if np.allclose(got, _chain(_norm(maps.sum(axis=1) + eye))):
            raise Hint("average the heads (mean over axis 1) instead of summing them: with the sum, "
                       "the identity weighs 1/h as much as the attention")
        if L > 1 and np.allclose(got, _norm(mean + eye)[-1]):
            raise Hint("that is the last layer alone: multiply the layers' matrices together")
        raise Hint(f"for maps of shape {maps.shape} the rollout differs from the expected one: "
                   "mean over heads, + identity, renormalize rows, then R = A_L ... A_1")


def check_rollout(fn):
    """Check fn(maps) -> R: maps (L, h, T, T) attention weights (first layer first) -> (T, T) rollout."""
    return check("rollout", fn, _rollout_cases)


class _Model:
    """A hidden classifier: position-weighted sum of token scores, softmax over C classes; counts
    its calls."""

    def __init__(self, rng, V, C, pad_id):
        self.W = 1.5 * rng.standard_normal((V, C))                           # (V, C)
        self.pad_id, self.calls = pad_id, 0

    def __call__(self, ids):
        self.calls += 1
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"proba takes a (rows, T) integer array of token ids, got {ids.dtype} "
                             f"array of shape {ids.shape}")
        pos = 1.0 + 0.5 * np.cos(np.arange(ids.shape[1]))                    # (T,) positions matter
        keep = (ids != self.pad_id) * pos                                    # (R, T)
        return softmax(np.einsum("rt,rtc->rc", keep, self.W[ids]), axis=-1)  # (R, C)


def _occlusion_cases(fn):
    rng = cases_rng(1)
    for n, C, pad_id in [(6, 3, 0), (8, 2, 0), (5, 4, 3)]:
        V = 12
        ids = rng.choice([i for i in range(V) if i != pad_id], size=n)       # (n,)
        model = _Model(rng, V, C, pad_id)
        p = model(ids[None])[0]                                              # (C,)
        c = int(np.argmax(p))
        copies = np.repeat(ids[None], n, axis=0)                             # (n, n)
        copies[np.arange(n), np.arange(n)] = pad_id
        q = model(copies)                                                    # (n, C)
        ref = p[c] - q[:, c]                                                 # (n,)
        model.calls = 0
        got = expect_array(call(fn, model, ids, pad_id), (n,), "the occlusion drops")
        if np.allclose(got, ref):
            if model.calls > 2:
                raise Hint(f"the values are right, but proba was called {model.calls} times: stack "
                           "the n occluded copies into one (n, T) array and call it once for them "
                           "(plus once for the sentence)")
            continue
        if np.allclose(got, -ref):
            raise Hint("the sign is reversed: occlusion is p(original) - p(occluded), positive when "
                       "the token supported the prediction")
        if np.allclose(got, q[:, c]) or np.allclose(got, p[c] * np.ones(n)):
            raise Hint("return the drop p(original) - p(occluded), not one of the probabilities")
        own = q.argmax(axis=1)                                               # (n,)
        if np.allclose(got, p[own] - q[np.arange(n), own]) or np.allclose(got, p.max() - q.max(axis=1)):
            raise Hint("keep one class for every copy: the class predicted for the whole sentence "
                       "(argmax of its probabilities), not each occluded copy's own argmax")
        if any(np.allclose(got, p[k] - q[:, k]) for k in range(C) if k != c):
            raise Hint("use the predicted class (argmax of the sentence's probabilities), not a fixed "
                       "class")
        deleted = np.array([model(np.delete(ids, t)[None])[0, c] for t in range(n)])
        if np.allclose(got, p[c] - deleted):
            raise Hint("replace the token by pad_id instead of deleting it: the other tokens keep "
                       "their positions and the array keeps its length")
        raise Hint(f"for a sentence of {n} tokens the drops differ from the expected ones: blank "
                   "token t (ids[t] = pad_id) in copy t, then p[c] - p_copy[c] with c the "
                   "sentence's predicted class")


def check_occlusion(fn):
    """Check fn(proba, ids, pad_id) -> (n,) drops of the predicted class's probability when each
    token in turn is replaced by pad_id; proba maps (R, T) id arrays to (R, C) probabilities."""
    return check("occlusion", fn, _occlusion_cases)
