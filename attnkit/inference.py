"""Running a trained classifier: evaluation mode, class probabilities, pooling weights.

N = number of sequences, B = batch, T = padded length, C = classes.

Chapters 14 and 15 ask the same three things of a trained :class:`~attnkit.models.TransformerClassifier`:
switch dropout off for a while and then put the model back as it was (:func:`eval_mode`), the
class probabilities of many id lists (:func:`predict_proba`), and how much weight the pooling
gave each real token (:func:`pooling_weights`). All three batch the inputs with
:func:`~attnkit.data.text.iterate_batches` (in order, no shuffling) and return one result per
input, in the order given.
"""
from contextlib import contextmanager

import numpy as np

from ._checks import check_int
from .data.text import iterate_batches
from .functional import softmax

__all__ = ["eval_mode", "predict_proba", "pooling_weights"]


@contextmanager
def eval_mode(model):
    """Inside the block the model is in evaluation mode (no dropout); afterwards its previous mode is back.

    The previous mode is restored even when the block raises. Yields the model.
    """
    if not hasattr(model, "training") or not callable(getattr(model, "train", None)):
        raise TypeError(f"eval_mode needs an attnkit Module (with .training and .train()), "
                        f"got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _check_inputs(X, batch_size):
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype != object:
        raise ValueError(f"X looks like one sequence of shape {X.shape}; pass a list of id lists, "
                         "e.g. [ids]")
    if len(X) == 0:
        raise ValueError("X is empty: pass at least one id list")
    check_int(batch_size, "batch_size", 1)


def predict_proba(model, X, batch_size=256):
    """Class probabilities (N, C), float64, of the N id lists in X, computed in evaluation mode.

    X: a sequence of N id lists (any lengths; each batch is padded with id 0 and the model is
    told the lengths). The model's mode (training or not) is the same afterwards.
    """
    _check_inputs(X, batch_size)
    proba = None
    with eval_mode(model):
        for b in iterate_batches(X, batch_size, shuffle=False):
            logits = model.forward(b.x, b.x_lengths).astype(np.float64)      # (B, C)
            if proba is None:
                proba = np.empty((len(X), logits.shape[1]))                  # (N, C)
            proba[b.index] = softmax(logits, axis=-1)                        # (B, C)
    return proba


def pooling_weights(model, X, batch_size=256):
    """The pooling weight of every real token: a list of N arrays, the i-th of shape (len(X[i]),).

    Each array sums to 1 (the model's pooling is a weighted mean over the real tokens; for mean
    pooling every weight is 1/len). Computed in evaluation mode; the model's mode is restored.
    """
    _check_inputs(X, batch_size)
    if not hasattr(model, "pool_weights"):
        raise TypeError(f"{type(model).__name__} has no pool_weights: pooling_weights needs a "
                        "TransformerClassifier (or a model exposing its pooling weights)")
    out = [None] * len(X)
    with eval_mode(model):
        for b in iterate_batches(X, batch_size, shuffle=False):
            model.forward(b.x, b.x_lengths)
            W = np.asarray(model.pool_weights, dtype=np.float64)              # (B, T)
            for row, i in enumerate(b.index):
                out[i] = W[row, : b.x_lengths[row]].copy()                    # (len_i,)
    return out
