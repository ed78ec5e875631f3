"""Head importance and pruning (Michel et al. 2019) through the per-head gates of MultiHeadAttention.

M = number of attention layers, h = heads per layer, K = number of heads pruned.

Every MultiHeadAttention multiplies head i's output by ``head_gate[i]`` (1 by default) and its
backward sets ``head_gate_grad``, dL/dgate for the batch. Michel et al. define the importance
of a head as the expected |dL/dgate| over data: a first-order estimate of how much the loss
changes when the head is removed (gate 1 -> 0). Here the absolute value is taken per batch,
then averaged over the batches (per example would be closer to the definition, and slower).

  attention_layers     the (name, MultiHeadAttention) pairs of a model, in forward order
  head_importance      (M, h) mean |dL/dgate| over batches
  pruning_order        heads (layer, head) from least to most important (or random)
  pruned               a context manager that zeros a list of heads and restores the gates
"""
from contextlib import contextmanager

import numpy as np

from .nn import MultiHeadAttention
from .seeding import make_rng
from .train import _split_batch

__all__ = ["attention_layers", "layer_kinds", "head_importance", "pruning_order", "pruned"]


def attention_layers(model):
    """The attention layers of a Transformer, TransformerClassifier or GPT as a list of
    (name, MultiHeadAttention): "encoder 1 self", ..., "decoder 1 self", "decoder 1 cross", ...
    (a GPT's: "block 1 self", ...)."""
    layers = []
    encoder, prefix = getattr(model, "encoder", None), "encoder"
    if encoder is None:
        encoder, prefix = getattr(model, "blocks", None), "block"            # GPT: its blocks
    if encoder is not None and hasattr(encoder, "layers"):
        for i, layer in enumerate(encoder.layers, start=1):
            layers.append((f"{prefix} {i} self", layer.self_attn))
    decoder = getattr(model, "decoder", None)
    if decoder is not None:
        for i, layer in enumerate(decoder.layers, start=1):
            layers.append((f"decoder {i} self", layer.self_attn))
            layers.append((f"decoder {i} cross", layer.cross_attn))
    if not layers or not all(isinstance(m, MultiHeadAttention) for _, m in layers):
        raise TypeError(f"found no MultiHeadAttention layers in {type(model).__name__}: attention_layers "
                        "reads model.encoder.layers[i].self_attn and model.decoder.layers[i].self_attn / "
                        ".cross_attn")
    return layers


def layer_kinds(names):
    """The kind of each attention layer name: "encoder self", "decoder self" or "cross" (a GPT's
    layers: "block self")."""
    return ["cross" if n.endswith("cross") else n.split()[0] + " self" for n in names]


def head_importance(model, loss_fn, batches):
    """Head importance (M, h) float64: the mean over batches of |dL/dgate| of every head.

    batches: an iterable of (inputs, targets) as attnkit.train.train takes them (finite: e.g.
    validation batches). Computed in evaluation mode (no dropout); the model's mode is restored
    and its parameter gradients are zeroed afterwards.
    """
    layers = [m for _, m in attention_layers(model)]
    total = np.zeros((len(layers), layers[0].h))                               # (M, h)
    n = 0
    was_training = model.training
    model.eval()
    try:
        for i, batch in enumerate(batches):
            inputs, targets = _split_batch(batch, i)
            loss_fn.forward(model.forward(*inputs), targets)
            model.backward(loss_fn.backward())
            total += np.abs(np.stack([m.head_gate_grad for m in layers]))      # (M, h)
            n += 1
    finally:
        model.train(was_training)
        model.zero_grad()
    if n == 0:
        raise ValueError("head_importance got no batches: pass a finite iterable of (inputs, targets)")
    return total / n                                                           # (M, h)


def pruning_order(importance, rng=None, normalize=False):
    """All M h heads as (layer, head) pairs, the first to prune first: (K, 2) int array, K = M h.

    importance: (M, h). Least important first (ties: the first layer and head first); or, with
    rng (a seed or Generator), a random order, whatever the importance. normalize: divide each
    layer's importances by their L2 norm first, so that every layer weighs the same in the ranking.
    """
    importance = np.asarray(importance, dtype=np.float64)
    if importance.ndim != 2:
        raise ValueError(f"importance must have shape (layers, heads), got {importance.shape}")
    M, h = importance.shape
    if rng is not None:
        flat = make_rng(rng).permutation(M * h)                                # (K,)
    else:
        if normalize:
            norm = np.linalg.norm(importance, axis=1, keepdims=True)           # (M, 1)
            importance = importance / np.where(norm > 0, norm, 1.0)
        flat = np.argsort(importance.reshape(-1), kind="stable")               # (K,)
    return np.stack([flat // h, flat % h], axis=1)                             # (K, 2)


@contextmanager
def pruned(model, heads):
    """Inside the block, the given heads of model have gate 0; afterwards every gate is as before.

    heads: (K, 2) (layer, head) pairs as pruning_order returns them (layers numbered as
    attention_layers lists them). Yields the model.
    """
    layers = [m for _, m in attention_layers(model)]
    heads = np.asarray(heads, dtype=np.int64).reshape(-1, 2)                  # (K, 2)
    if heads.size and (heads[:, 0].max() >= len(layers) or heads[:, 1].max() >= layers[0].h
                       or heads.min() < 0):
        raise ValueError(f"heads must be (layer, head) pairs with layer < {len(layers)} and head < "
                         f"{layers[0].h}, got {heads[:5].tolist()}")
    saved = [m.head_gate.copy() for m in layers]
    try:
        for layer, head in heads:
            layers[layer].head_gate[head] = 0
        yield model
    finally:
        for m, g in zip(layers, saved):
            m.head_gate[:] = g
