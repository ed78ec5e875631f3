"""What attention heads do: previous-token and induction heads (Elhage et al. 2021; Olsson et al. 2022).

Shapes: B batch, T sequence length, h heads, L layers, V vocabulary size. ``half`` is the length
of the random segment that a sequence repeats: an int (the same for every row) or a (B,) array.

  repeated_tokens        random segments followed by their repeat (and random filler, and a
                         beginning-of-sequence token if asked): (ids, start, half)
  repeat_batches         an endless stream of (x, y) training batches of such sequences (the
                         segment length drawn per row, or per batch with rows of exactly 2n)
  previous_token_scores  mean attention from position t to t - 1, per head
  induction_scores       mean attention from a repeated token to the position after its first
                         occurrence, per head
  token_losses           next-token cross-entropy at every position
  repeated_half_loss     the mean of token_losses over the predictable part of the repeat
  head_scores            the two scores of every head of a GPT and its repeated-half loss
  ablated                a context manager that zeroes chosen heads (MultiHeadAttention.head_gate)
  phase_change_step      the first checkpoint where a loss curve has made half of its drop
"""
from dataclasses import dataclass

import numpy as np

from ._checks import check_int
from .functional import log_softmax
from .heads import pruned
from .seeding import make_rng

__all__ = ["RepeatedTokens", "repeated_tokens", "repeat_batches", "previous_token_scores",
           "induction_scores", "induction_targets", "token_losses", "repeated_half_mask",
           "repeated_half_loss", "HeadScores", "head_scores", "ablated", "phase_change_step"]


# ----------------------------------------------------------------------------
# the data: a random segment, then the same segment again

@dataclass
class RepeatedTokens:
    """A batch of random sequences in which positions start + half .. start + 2 half - 1 repeat
    positions start .. start + half - 1 (a random segment, then the same segment again)."""
    ids: np.ndarray                     # (B, T) token ids
    start: np.ndarray                   # (B,) where each row's segment begins
    half: np.ndarray                    # (B,) length of each row's segment


def repeated_tokens(batch_size, max_half, vocab_size, seed=0, min_half=None, length=None, bos=None):
    """Random token sequences of length T in which a random segment of half[b] tokens is followed
    by its repeat; the tokens before and after (if any) are random too.

    Default (min_half and length None): T = 2 max_half, every segment starts at 0 and has
    max_half tokens: the first half of each row is random, the second half repeats it.
    min_half: the segment length of each row is then drawn uniformly from [min_half, max_half];
    length: T (at least 2 max_half), each segment then starting at a random place. Varying both
    keeps a model from finding the repeat by position alone (a head attending a fixed distance,
    or a fixed fraction of the way, back would do it otherwise).
    bos: None, or a beginning-of-sequence id put before every row (rows of T + 1 tokens, start
    counted from it). It must not be one of the random ids: use vocab_size, and give the model
    vocab_size + 1 tokens. Heads that have nothing to do attend to it (a "sink").
    seed: an int or a Generator (make_rng). Returns a RepeatedTokens: ids (B, T), start, half (B,).
    """
    B = check_int(batch_size, "batch_size", minimum=1)
    H = check_int(max_half, "max_half", minimum=2)
    V = check_int(vocab_size, "vocab_size", minimum=2)
    lo = H if min_half is None else check_int(min_half, "min_half", minimum=2)
    T = 2 * H if length is None else check_int(length, "length", minimum=2 * H,
                                               hint=" (room for the segment and its repeat)")
    if lo > H:
        raise ValueError(f"min_half={lo} must not exceed max_half={H}")
    if bos is not None and check_int(bos, "bos", minimum=0) < V:
        raise ValueError(f"bos={bos} is one of the random token ids 0..{V - 1}: use bos=vocab_size={V} "
                         f"(and a model with vocab_size + 1 = {V + 1} tokens)")
    rng = make_rng(seed)
    ids = rng.integers(0, V, size=(B, T))                                 # (B, T)
    half = rng.integers(lo, H + 1, size=B)                                # (B,)
    start = np.floor(rng.random(B) * (T - 2 * half + 1)).astype(np.int64)  # (B,) in [0, T - 2 half]
    t = np.arange(T)                                                      # (T,)
    rep = (t >= (start + half)[:, None]) & (t < (start + 2 * half)[:, None])  # (B, T)
    source = np.where(rep, t - half[:, None], t)                          # (B, T) where each id comes from
    ids = np.take_along_axis(ids, source, axis=1)                         # (B, T)
    if bos is not None:
        ids = np.concatenate([np.full((B, 1), bos, dtype=ids.dtype), ids], axis=1)  # (B, T + 1)
        start = start + 1
    return RepeatedTokens(ids, start, half)


def repeat_batches(batch_size, max_half, vocab_size, seed=0, min_half=None, length=None, bos=None,
                   per_batch=False):
    """An endless stream of (x, y) batches for attnkit.train.train: x (B, T - 1), y (B, T - 1) = the
    next ids, from fresh repeated_tokens at every step (no sequence is ever seen twice).

    per_batch: draw the segment length n uniformly from [min_half, max_half] once per batch, not
    per row: every row of a batch is then exactly [bos] + n random tokens + the same n again
    (T = 2n, plus 1 with bos), with no filler, and T changes from batch to batch. No position
    tells where the repeat starts, and the data is the textbook's "second half repeats the first".
    The other arguments are repeated_tokens'.
    """
    if per_batch:
        if min_half is None or length is not None:
            raise ValueError("per_batch draws each batch's segment length from [min_half, max_half] and "
                             "makes rows of exactly 2 n tokens: give min_half, and no length")
        check_int(min_half, "min_half", minimum=2)
        if min_half > check_int(max_half, "max_half", minimum=2):
            raise ValueError(f"min_half={min_half} must not exceed max_half={max_half}")
    rng = make_rng(seed)
    while True:
        if per_batch:
            n = int(rng.integers(min_half, max_half + 1))
            ids = repeated_tokens(batch_size, n, vocab_size, rng, bos=bos).ids   # (B, 2 n (+ 1))
        else:
            ids = repeated_tokens(batch_size, max_half, vocab_size, rng, min_half, length, bos).ids  # (B, T)
        yield ids[:, :-1], ids[:, 1:]                                     # (B, T - 1) each


def _per_row(value, B, name, minimum):
    value = np.asarray(value)
    if value.ndim == 0:
        value = np.full(B, value)
    if value.shape != (B,) or not np.issubdtype(value.dtype, np.integer) or np.any(value < minimum):
        raise ValueError(f"{name} must be an int >= {minimum} or one such int per row, shape ({B},), "
                         f"got {value!r}")
    return value.astype(np.int64)                                         # (B,)


def _rows(half, start, B=None):
    """half and start as two (B,) arrays; B (if not given) from whichever is an array (1 if neither)."""
    B = max(np.asarray(half).size, np.asarray(start).size) if B is None else B
    return _per_row(half, B, "half", 1), _per_row(start, B, "start", 0)


# ----------------------------------------------------------------------------
# the scores, from attention weights (B, h, T, T) of one layer

def _check_weights(weights):
    weights = np.asarray(weights)
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[-1] < 2:
        raise ValueError(f"weights must be one layer's self-attention weights (B, h, T, T) with T >= 2, "
                         f"got shape {weights.shape}; for a list of layers, score each layer")
    return weights


def previous_token_scores(weights):
    """weights (B, h, T, T) -> (h,): the mean of weights[b, i, t, t - 1] over b and t = 1 .. T - 1.

    1 for a head that always reads the token just before; about 1 / (t + 1) at position t for a
    head spreading its weight evenly over the causal past."""
    weights = _check_weights(weights)
    t = np.arange(1, weights.shape[-1])                                   # (T - 1,)
    return weights[:, :, t, t - 1].mean(axis=(0, 2))                      # (h,)


def induction_targets(T, half, start=0):
    """Which query rows the induction score reads, and where: (queries (B, T) bool, keys (B, T) int).

    Row t is a query when position t holds a repeated token, start + half <= t < start + 2 half
    (and t < T); its first occurrence is at t - half, so an induction head reads key
    t - half + 1, the token that came next last time (the one to predict now)."""
    half, start = _rows(half, start)                                      # (B,) each
    t = np.arange(T)                                                      # (T,)
    rep0 = (start + half)[:, None]                                        # (B, 1) first repeated position
    queries = (t >= rep0) & (t < rep0 + half[:, None])                    # (B, T)
    keys = np.where(queries, t - half[:, None] + 1, 0)                    # (B, T)
    return queries, keys


def induction_scores(weights, half, start=0):
    """weights (B, h, T, T); half, start: ints or (B,) arrays -> (h,): the mean attention from a
    token of the repeat (position t, start + half <= t < start + 2 half) to the position right
    after its first occurrence (t - half + 1), over every such t of every row.

    1 for a perfect induction head; a head reading its own earlier occurrence (t - half) or the
    previous token (t - 1) scores about 0."""
    weights = _check_weights(weights)
    B, h, T, _ = weights.shape
    half, start = _rows(half, start, B)
    queries, keys = induction_targets(T, half, start)                     # (B, T) each
    if not queries.any():
        raise ValueError(f"no query row: every repeat starts at or after T={T}; pass the segment length "
                         "(and start) of the sequences the weights were computed on")
    picked = np.take_along_axis(weights, keys[:, None, :, None], axis=-1)[..., 0]  # (B, h, T)
    return (picked * queries[:, None]).sum(axis=(0, 2)) / queries.sum()   # (h,)


# ----------------------------------------------------------------------------
# the loss on the repeated half

def token_losses(logits, ids):
    """logits (B, T, V) from a model reading ids[:, :T] (logits[:, t] predict ids[:, t + 1]),
    ids (B, T + 1) -> (B, T) cross-entropy of each next token, in nats."""
    logits = np.asarray(logits)
    ids = np.asarray(ids)
    if logits.ndim != 3 or ids.shape != (logits.shape[0], logits.shape[1] + 1):
        raise ValueError(f"ids must be (B, T + 1) for logits (B, T, V): the inputs and the one token "
                         f"after them; got ids {ids.shape} and logits {logits.shape}")
    logp = log_softmax(logits.astype(np.float64), axis=-1)                # (B, T, V)
    return -np.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]   # (B, T)


def repeated_half_mask(T, half, start=0):
    """(B, T) bool: the rows t whose next token (t + 1) is a repeat that an induction head can
    predict, start + half <= t <= start + 2 half - 2. (The first token of the repeat cannot be
    known in advance: it is predicted from the last position of the segment.)"""
    half, start = _rows(half, start)                                      # (B,) each
    t = np.arange(T)                                                      # (T,)
    rep0 = (start + half)[:, None]                                        # (B, 1)
    return (t >= rep0) & (t <= rep0 + half[:, None] - 2)                  # (B, T)


def repeated_half_loss(logits, ids, half, start=0):
    """The mean of token_losses(logits, ids) over repeated_half_mask: logits (B, T, V), ids
    (B, T + 1), half and start ints or (B,) -> float, nats. A model that only guesses scores
    about ln V; one that copies from the first occurrence scores about 0."""
    losses = token_losses(logits, ids)                                    # (B, T)
    mask = repeated_half_mask(losses.shape[1], *_rows(half, start, losses.shape[0]))  # (B, T)
    if not mask.any():
        raise ValueError("no position of the repeat lies inside the logits: check half and start")
    return float(losses[mask].mean())


# ----------------------------------------------------------------------------
# a model's heads

@dataclass
class HeadScores:
    """Scores of every head of a model on one batch of repeated tokens."""
    previous: np.ndarray                # (L, h) previous-token score of each head
    induction: np.ndarray               # (L, h) induction score of each head
    repeat_loss: float                  # loss on the repeated half (nats)
    other_loss: float                   # loss on the random tokens (nats), about ln V at best


def head_scores(model, data):
    """Run a GPT (eval mode, no gradient kept) on a RepeatedTokens batch and score its heads.

    model reads data.ids[:, :-1]; returns a HeadScores. data may also be a list of batches (of
    different lengths, as repeat_batches(per_batch=True) makes them): the scores and losses are
    then the means of the batches' ones. The model's train/eval mode is restored."""
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("head_scores needs at least one RepeatedTokens batch, got an empty list")
        scores = [head_scores(model, d) for d in data]
        return HeadScores(previous=np.mean([s.previous for s in scores], axis=0),
                          induction=np.mean([s.induction for s in scores], axis=0),
                          repeat_loss=float(np.mean([s.repeat_loss for s in scores])),
                          other_loss=float(np.mean([s.other_loss for s in scores])))
    ids, half, start = data.ids, data.half, data.start                    # (B, T), (B,), (B,)
    was_training = model.training
    model.eval()
    try:
        logits = model.forward(ids[:, :-1])                               # (B, T - 1, V)
        weights = model.attention_weights()                               # L x (B, h, T - 1, T - 1)
    finally:
        model.train(was_training)
    losses = token_losses(logits, ids)                                    # (B, T - 1)
    T = losses.shape[1]
    rep = repeated_half_mask(T, half, start)                              # (B, T - 1)
    return HeadScores(previous=np.stack([previous_token_scores(w) for w in weights]),
                      induction=np.stack([induction_scores(w, half, start) for w in weights]),
                      repeat_loss=float(losses[rep].mean()), other_loss=float(losses[~rep].mean()))


def ablated(model, heads):
    """Inside the ``with`` block, the given heads of a GPT output zero (head_gate 0).

    heads: (layer, head) pairs, layers numbered from 0. The gates are restored on exit, also
    after an error. The same context manager as attnkit.heads.pruned, under this chapter's name."""
    return pruned(model, heads)


# ----------------------------------------------------------------------------
# when the loss drops

def phase_change_step(steps, losses):
    """The first step at which losses has made at least half of its total drop: the first
    s with loss(s) <= (loss at the first checkpoint + lowest loss) / 2. steps, losses: (n,)."""
    steps, losses = np.asarray(steps), np.asarray(losses, dtype=np.float64)
    if steps.ndim != 1 or steps.shape != losses.shape or steps.size < 2:
        raise ValueError(f"steps and losses must be two 1-d arrays of the same length >= 2, got shapes "
                         f"{steps.shape} and {losses.shape}")
    level = (losses[0] + losses.min()) / 2
    return int(steps[np.argmax(losses <= level)])
