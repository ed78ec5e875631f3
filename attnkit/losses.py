"""Loss functions with hand-written backward passes.

Shapes: ``...`` any leading dimensions (B, or B and T), V number of classes (vocabulary size),
N the number of positions, the product of the leading dimensions.

A loss is used like a layer, forward then backward:

    loss = loss_fn.forward(logits, targets)   # a Python float
    dlogits = loss_fn.backward()              # same shape and dtype as logits

After a forward, ``loss_fn.num_items`` holds how many positions the mean was taken over (the
non-ignored ones), so averages over several batches can be weighted correctly.
"""
import numpy as np

from ._checks import is_int
from .functional import log_softmax, require_float

__all__ = ["CrossEntropyLoss", "MSELoss"]


class CrossEntropyLoss:
    """Mean cross-entropy between softmax(logits) and integer targets, with ignore_index and label
    smoothing."""

    def __init__(self, ignore_index=None, label_smoothing=0.0):
        """ignore_index: a target value (such as the padding id) whose positions add nothing to the
        loss or the gradient; None ignores nothing.
        label_smoothing: eps in [0, 1]. The target distribution becomes (1 - eps) one-hot + eps / V
        uniform ("Rethinking the Inception Architecture for Computer Vision", Szegedy et al. 2016,
        used with eps = 0.1 in "Attention Is All You Need"), the same definition as PyTorch's.
        """
        if ignore_index is not None and not is_int(ignore_index):
            raise TypeError(f"ignore_index must be an int (such as the padding id) or None, got "
                            f"{ignore_index!r}")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}; 0.1 is the usual "
                             f"value")
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        self.cache = None
        self.num_items = 0

    def __repr__(self):
        return f"CrossEntropyLoss(ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing})"

    def __call__(self, logits, targets):
        return self.forward(logits, targets)

    def forward(self, logits, targets):
        """logits: (..., V) floats; targets: (...) integers in [0, V) or ignore_index -> float loss.

        With p = softmax(logits) at one position, target class y and eps = label_smoothing,

            loss_position = -(1 - eps) log p_y - (eps / V) sum_v log p_v

        and the loss is the mean of loss_position over the positions whose target is not
        ignore_index. log p comes from a stable log_softmax (x - logsumexp(x)), so large logits
        never overflow, and the smoothing term is a sum of finite log-probabilities, never the
        0 * log(0) = nan of implementations that build the target distribution and take its log.

        Edge cases, by design:
          - every position ignored: the loss is 0.0 and backward returns zeros (there is nothing
            to learn from this batch; a mean over zero items would be nan);
          - a logit of -inf (a class masked out) is fine without smoothing unless it is the
            target's, but with label_smoothing > 0 it makes the true loss infinite (the target
            distribution gives that class eps / V > 0): that raises ValueError rather than
            returning inf, as does a -inf target logit, a +inf or a nan logit at a counted position.
        """
        logits = require_float(logits, "logits")
        if logits.ndim < 1 or logits.shape[-1] < 1:
            raise ValueError(f"logits must have shape (..., V) with V >= 1 classes, got {logits.shape}")
        targets = np.asarray(targets)
        if not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}; "
                            "pass targets.astype(np.int64) if they hold whole numbers")
        if targets.shape != logits.shape[:-1]:
            raise ValueError(f"targets of shape {targets.shape} do not match logits of shape {logits.shape}: "
                             f"targets need shape logits.shape[:-1] = {logits.shape[:-1]}")
        V = logits.shape[-1]
        x = logits.reshape(-1, V)                                         # (N, V)
        t = targets.reshape(-1)                                           # (N,)
        N = t.shape[0]
        if self.ignore_index is None:
            valid = np.ones(N, dtype=bool)                                # (N,)
        else:
            valid = t != self.ignore_index                                # (N,)
        out_of_range = valid & ((t < 0) | (t >= V))                       # (N,)
        if out_of_range.any():
            bad = t[out_of_range]
            raise ValueError(
                f"targets must lie in [0, V={V}) (the number of logits per position)"
                + ("" if self.ignore_index is None else f" or equal ignore_index={self.ignore_index}")
                + f"; found {bad[:5].tolist()}" + (f" and {bad.size - 5} more" if bad.size > 5 else ""))
        n = int(valid.sum())
        t_safe = np.where(valid, t, 0)                                    # (N,) ignored -> any valid class
        logp = log_softmax(x)                                             # (N, V)
        nll = -logp[np.arange(N), t_safe]                                 # (N,)
        eps = self.label_smoothing
        with np.errstate(invalid="ignore"):  # rows of nan or inf are diagnosed just below
            if eps > 0:
                per = (1.0 - eps) * nll - eps * logp.mean(axis=-1)        # (N,)
            else:
                per = nll                                                 # (N,)
        per = np.where(valid, per, 0)                                     # (N,) ignored positions add 0
        if not np.all(np.isfinite(per)):
            self._explain_non_finite(x, t_safe, valid, per, targets.shape)
        self.cache = (logp, t_safe, valid, n, logits.shape)
        self.num_items = n
        return float(per.sum(dtype=np.float64) / n) if n else 0.0

    def backward(self):
        """Gradient of the mean loss with respect to the logits: (..., V), the logits' dtype.

        d loss / d logits = (softmax(logits) - q) / n at every counted position, where
        q = (1 - eps) one-hot(y) + eps / V is the target distribution and n the number of counted
        positions; ignored positions get exactly zero. Call it once per forward.
        """
        if self.cache is None:
            raise RuntimeError("call forward(logits, targets) before each backward()")
        logp, t_safe, valid, n, shape = self.cache
        if n == 0:
            return np.zeros(shape, dtype=logp.dtype)
        self.cache = None                                                 # consumed: one backward per forward
        eps = self.label_smoothing
        V = logp.shape[-1]
        # the softmax overwrites the cached log-probabilities: saves one (N, V) array, the largest
        # in a language model
        d = np.exp(logp, out=logp)                                        # (N, V) softmax
        if eps > 0:
            d -= d.dtype.type(eps / V)
        d[np.arange(d.shape[0]), t_safe] -= d.dtype.type(1.0 - eps)
        d *= d.dtype.type(1.0 / n)
        d[~valid] = 0                                                     # also clears nan rows never counted
        return d.reshape(shape)                                           # (..., V)

    def _explain_non_finite(self, x, t_safe, valid, per, target_shape):
        """Raise a ValueError saying why a counted position has an infinite or nan loss."""
        i = int(np.flatnonzero(valid & ~np.isfinite(per))[0])
        where = tuple(int(j) for j in np.unravel_index(i, target_shape))  # () for a single position
        row = x[i]                                                        # (V,)
        if np.isnan(row).any():
            raise ValueError(f"logits contain nan at position {where}: the model has diverged "
                             "(try a lower learning rate, warmup or gradient clipping)")
        if np.isposinf(row).any():
            raise ValueError(f"logits contain +inf at position {where}; the softmax is undefined there "
                             "(the model has diverged: try a lower learning rate or gradient clipping)")
        if np.isneginf(row[t_safe[i]]):
            raise ValueError(f"the logit of the target class {int(t_safe[i])} is -inf at position {where}: "
                             "the model gives the target probability 0 and the loss is infinite. "
                             "Is a mask hiding the target class?")
        raise ValueError(
            f"label_smoothing={self.label_smoothing} gives every class probability eps / V > 0 in the "
            f"target distribution, so the logit of -inf at position {where} makes the loss infinite. "
            "Leave masked-out classes out of the logits, or use label_smoothing=0 with masks of -inf.")


class MSELoss:
    """Mean squared error, mean((pred - target)^2) over every element."""

    def __init__(self):
        self.cache = None
        self.num_items = 0

    def __repr__(self):
        return "MSELoss()"

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        """pred, target: float arrays of one shape (...) -> float loss."""
        pred = require_float(pred, "pred")
        target = require_float(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred of shape {pred.shape} and target of shape {target.shape} must have the "
                             "same shape (no broadcasting: it would silently compare every pair)")
        if pred.size == 0:
            raise ValueError("MSELoss got empty arrays; there is no mean of zero elements")
        diff = pred - target.astype(pred.dtype, copy=False)               # (...)
        self.cache = diff
        self.num_items = diff.size
        return float(np.mean(diff * diff, dtype=np.float64))

    def backward(self):
        """d loss / d pred = 2 (pred - target) / size, shape and dtype of pred."""
        if self.cache is None:
            raise RuntimeError("call forward(pred, target) before backward()")
        diff = self.cache
        return diff * diff.dtype.type(2.0 / diff.size)                    # (...)
