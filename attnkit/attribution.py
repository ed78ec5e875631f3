"""Token attributions of a trained classifier: attention, attention rollout, gradient x input, occlusion.

N = number of sequences, B = batch, L = layers, h = heads, T = padded length, d = d_model,
C = classes, n = length of one sequence.

Each attribution gives every real token of a sequence one number, "how much this token counts
for the prediction", by a different route:

  pooling weights     the classifier's own attention over the top layer's states (attention
                      pooling; uniform for mean pooling)
  last-layer attention  the pooling weights read through the last self-attention layer
                      (heads averaged): how much of the pooled vector the last attention
                      layer took from each input position
  rollout             Abnar & Zuidema (2020): average the heads, add the identity for the
                      residual connection, renormalize the rows, multiply the layers
  gradient x input    sum over d of dlog p(predicted class)/d embedding times the token embedding
  occlusion           p(predicted class) minus the same with the token blanked out (the reference)

Every function runs the model in evaluation mode (restoring its mode) and returns a list of N
float64 arrays, the i-th of shape (len(X[i]),), in the order of X. Sequences are batched with
:func:`~attnkit.data.text.iterate_batches` (in order, padded with id 0).
"""
import numpy as np

from .data.text import iterate_batches, pad_batch
from .functional import softmax
from .inference import _check_inputs, eval_mode, predict_proba

__all__ = ["rollout", "attention_attributions", "gradient_x_input", "occlusion",
           "rank_correlations", "spearman"]


def rollout(maps, add_residual=True):
    """Attention rollout of a stack of attention maps (Abnar & Zuidema 2020).

    maps: (L, ..., h, T, T) array, or a list of L arrays (..., h, T, T), the first layer first;
    rows are queries and sum to 1. Each layer's heads are averaged, A = mean_h(W) (+ I when
    add_residual, for the residual connection), the rows renormalized, and the layers
    multiplied: R = A_L ... A_2 A_1. Returns R (..., T, T) float64: row t says how much
    position t of the top layer draws from each input position, through every path.
    """
    maps = np.asarray(maps, dtype=np.float64)                                 # (L, ..., h, T, T)
    if maps.ndim < 4 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"maps must have shape (L, ..., h, T, T) (layers first, square maps), got "
                         f"{maps.shape}; stack the layers' (B, h, T, T) weights with np.stack")
    A = maps.mean(axis=-3)                                                    # (L, ..., T, T)
    if add_residual:
        A = A + np.eye(A.shape[-1])                                           # (L, ..., T, T)
    A = A / A.sum(axis=-1, keepdims=True)                                     # (L, ..., T, T)
    R = A[0]                                                                  # (..., T, T)
    for layer in A[1:]:                # a product over layers, not over batch or heads
        R = layer @ R                                                         # (..., T, T)
    return R


def _rows(W, lengths, index, out):
    """Scatter the rows of W (B, T) cut to their lengths into out[index]."""
    for row, i in enumerate(index):
        out[i] = W[row, : lengths[row]].copy()                                # (n_i,)


def attention_attributions(model, X, batch_size=256, add_residual=True):
    """The three attention-based attributions of a TransformerClassifier on the id lists X.

    Returns {"pooling": ..., "last layer": ..., "rollout": ...}, each a list of N arrays
    (len(X[i]),): the pooling weights w (B, T); w @ mean_h(A_L), the pooling read through the last
    self-attention layer; and w @ rollout(A_1 .. A_L). Each array sums to 1.
    """
    _check_inputs(X, batch_size)
    out = {k: [None] * len(X) for k in ("pooling", "last layer", "rollout")}
    with eval_mode(model):
        for b in iterate_batches(X, batch_size, shuffle=False):
            model.forward(b.x, b.x_lengths)
            w = np.asarray(model.pool_weights, dtype=np.float64)             # (B, T)
            maps = np.stack(model.attention_weights())                        # (L, B, h, T, T)
            last = maps[-1].mean(axis=1)                                      # (B, T, T)
            R = rollout(maps, add_residual)                                   # (B, T, T)
            _rows(w, b.x_lengths, b.index, out["pooling"])
            _rows(np.einsum("bt,bts->bs", w, last), b.x_lengths, b.index, out["last layer"])
            _rows(np.einsum("bt,bts->bs", w, R), b.x_lengths, b.index, out["rollout"])
    return out


def gradient_x_input(model, X, batch_size=256):
    """Gradient x input of the predicted class's log-probability, per token.

    For token t with embedding e_t (the scaled token embedding, without the position):
    sum_d (d log p_yhat / d x_t)_d (e_t)_d, where x_t = e_t + position_t is the encoder's
    input, so the gradient is the same for e_t. Positive: the token pushes toward the
    prediction. The model's parameter gradients are zeroed afterwards.
    """
    _check_inputs(X, batch_size)
    out = [None] * len(X)
    E, scale = model.embed.embed.params["W"], model.embed.scale               # (V, d)
    with eval_mode(model):
        for b in iterate_batches(X, batch_size, shuffle=False):
            logits = model.forward(b.x, b.x_lengths)                          # (B, C)
            p = softmax(logits.astype(np.float64), axis=-1)                   # (B, C)
            onehot = np.eye(p.shape[1])[p.argmax(axis=1)]                     # (B, C)
            model.backward((onehot - p).astype(logits.dtype))  # d log p_yhat / d logits
            g = model.input_grad.astype(np.float64)                           # (B, T, d)
            e = E[b.x].astype(np.float64) * scale                             # (B, T, d)
            _rows(np.einsum("btd,btd->bt", g, e), b.x_lengths, b.index, out)
    model.zero_grad()
    return out


def occlusion(model, X, fill_id=None, batch_size=256):
    """The drop of the predicted class's probability when one token at a time is blanked out.

    out[i][t] = p_yhat(X[i]) - p_yhat(X[i] with token t replaced by fill_id), where yhat is the
    class predicted for the whole sequence. fill_id None: the model's pad_id, so that the token
    leaves attention and pooling altogether (the other tokens keep their positions); or e.g.
    the <unk> id, which keeps a token there that says nothing. Every occluded copy is a row of
    one batched forward per group of sequences (about batch_size rows each).
    """
    _check_inputs(X, batch_size)
    pad = model.config.pad_id
    fill = pad if fill_id is None else int(fill_id)
    if fill == pad and min(len(x) for x in X) < 2:
        short = [i for i, x in enumerate(X) if len(x) < 2][:5]
        raise ValueError(f"sequences {short} have one token: blanking it out leaves nothing to "
                         "classify; drop them or pass fill_id (e.g. the <unk> id)")
    base = predict_proba(model, X, batch_size)                                # (N, C)
    yhat = base.argmax(axis=1)                                                # (N,)
    out = [None] * len(X)
    start = 0
    with eval_mode(model):
        while start < len(X):
            # a group of sequences whose occluded copies make about batch_size rows
            stop, rows = start, 0
            while stop < len(X) and (rows == 0 or rows + len(X[stop]) <= batch_size):
                rows += len(X[stop])
                stop += 1
            ids, lengths = pad_batch(X[start:stop], pad)                      # (G, T), (G,)
            seq = np.repeat(np.arange(stop - start), lengths)                 # (rows,)
            pos = np.arange(rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # (rows,)
            copies = ids[seq]                                                 # (rows, T)
            copies[np.arange(rows), pos] = fill
            # no lengths: every pad id, the blanked token included, is masked out
            logits = model.forward(copies).astype(np.float64)                 # (rows, C)
            p = softmax(logits, axis=-1)[np.arange(rows), yhat[start + seq]]  # (rows,)
            drop = base[start + seq, yhat[start + seq]] - p                   # (rows,)
            for j, n in enumerate(np.split(drop, np.cumsum(lengths)[:-1])):
                out[start + j] = n
            start = stop
    return out


def spearman(a, b):
    """Spearman's rank correlation of two equal-length 1-D arrays (ties get average ranks);
    nan when either is constant (its ranks carry no order)."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two 1-D arrays of one length, got {a.shape} and {b.shape}")
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2   # (n,), centred
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def rank_correlations(attributions, reference, absolute=False):
    """Per-sequence Spearman correlation of each attribution with the reference.

    attributions: {name: list of N arrays}; reference: a list of N arrays of the same lengths
    (occlusion). absolute: correlate |reference| (how much a token matters, whatever the
    direction) instead. Returns {name: (N,) float64 array}, nan where a sequence's values are
    constant (e.g. a sequence of one token).
    """
    ref = [np.abs(r) if absolute else r for r in reference]
    out = {}
    for name, values in attributions.items():
        if len(values) != len(ref):
            raise ValueError(f"{name}: {len(values)} sequences, but the reference has {len(ref)}")
        out[name] = np.array([spearman(v, r) for v, r in zip(values, ref)])  # (N,)
    return out
