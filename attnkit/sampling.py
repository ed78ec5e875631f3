"""Sampling text from a language model: temperature, top-k, top-p (nucleus) and a generate loop.

Shapes: N sequences generated together, V vocabulary size, T tokens so far, C the model's
context length.

One step of generation turns the logits of the last position, (N, V), into a distribution
and draws the next token from it:

    temperature   logits / tau: tau < 1 sharpens, tau > 1 flattens; tau = 0 is greedy (argmax)
    top-k         keep the k largest logits, the rest get probability 0
    top-p         keep the smallest set of most likely tokens whose probability reaches p
                  ("The Curious Case of Neural Text Degeneration", Holtzman et al. 2020)

applied in that order (temperature first, as Hugging Face's generate does), then renormalized.
Draws use a Generator made by ``attnkit.seeding.make_rng(seed)``: the same seed gives the same
text. ``generate`` runs the model through its key/value cache (``use_cache=True``): each step
feeds only the new token. ``use_cache=False`` recomputes the whole prefix at every step, the
reference the cached path must equal.

When a sequence fills the context, the oldest half is dropped and generation goes on from
the newest half (both paths do the same, so they stay equal).
"""
import numpy as np

from ._checks import check_int
from .functional import softmax
from .seeding import make_rng

__all__ = ["check_temperature", "apply_temperature", "top_k_filter", "top_p_filter",
           "next_token_probs", "sample_next", "generate", "generate_text"]


def check_temperature(temperature):
    """A temperature as a float >= 0 (0 means greedy), else ValueError."""
    t = float(temperature)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy, 1 = the model's "
                         f"distribution), got {temperature!r}")
    return t


def _check_logits(logits):
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] < 1 or not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(f"logits must be a float array of shape (N, V), got shape {logits.shape}, "
                         f"dtype {logits.dtype}")
    return logits


def apply_temperature(logits, temperature):
    """logits (N, V) / temperature; temperature 0 keeps only the argmax of each row (greedy)."""
    logits = _check_logits(logits)
    t = check_temperature(temperature)
    if t == 0:
        out = np.full_like(logits, -np.inf)                               # (N, V)
        rows = np.arange(logits.shape[0])
        out[rows, logits.argmax(axis=1)] = 0.0                            # one token per row, prob 1
        return out
    return logits / logits.dtype.type(t)                                  # (N, V)


def top_k_filter(logits, k):
    """Keep the k largest logits of each row, set the others to -inf: (N, V) -> (N, V).

    Exactly k survive also when logits tie (ties are broken by position); k >= V keeps all.
    """
    logits = _check_logits(logits)
    check_int(k, "top_k", 1, " (1 is greedy)")
    V = logits.shape[1]
    if k >= V:
        return logits.copy()
    # a stable sort by -logit: among equal logits the earlier token wins, deterministically
    order = np.argsort(-logits, axis=1, kind="stable")[:, :int(k)]        # (N, k)
    out = np.full_like(logits, -np.inf)                                   # (N, V)
    np.put_along_axis(out, order, np.take_along_axis(logits, order, axis=1), axis=1)
    return out


def top_p_filter(logits, p):
    """Keep, in each row, the smallest set of most likely tokens whose probability reaches p: (N, V) -> (N, V).

    Sorting the probabilities in decreasing order, token j (in that order) is kept when the
    mass of the tokens before it is below p; the first token is always kept and p = 1 keeps
    every token. Removed tokens get -inf.
    """
    logits = _check_logits(logits)
    p = float(p)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"top_p must lie in (0, 1] (1 keeps every token; 0.9 is usual), got {p!r}")
    if p == 1.0:
        return logits.copy()
    probs = softmax(logits.astype(np.float64), axis=1)                    # (N, V) in float64: the sums matter
    order = np.argsort(-probs, axis=1, kind="stable")                     # (N, V) most likely first
    sorted_p = np.take_along_axis(probs, order, axis=1)                   # (N, V)
    before = np.cumsum(sorted_p, axis=1) - sorted_p                       # (N, V) mass of the tokens before
    keep_sorted = before < p                                              # (N, V) a prefix of each row
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)                   # (N, V) back in vocabulary order
    return np.where(keep, logits, -np.inf).astype(logits.dtype, copy=False)


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution the next token is drawn from: (N, V) logits -> (N, V) probabilities, rows summing to 1."""
    x = apply_temperature(logits, temperature)                            # (N, V)
    if top_k is not None:
        x = top_k_filter(x, top_k)
    if top_p is not None:
        x = top_p_filter(x, top_p)
    return softmax(x.astype(np.float64), axis=1)                          # (N, V)


def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
    """Draw one token per row: logits (N, V) -> ids (N,) int64, using the Generator rng."""
    probs = next_token_probs(logits, temperature, top_k, top_p)          # (N, V)
    cdf = np.cumsum(probs, axis=1)                                        # (N, V)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]                     # (N, 1) in [0, total)
    ids = (cdf <= u).sum(axis=1)                                          # (N,) first index with cdf > u
    return np.minimum(ids, probs.shape[1] - 1).astype(np.int64)


def _check_prompt(model, prompt_ids):
    c = model.config
    ids = np.asarray(prompt_ids)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2 or ids.shape[1] < 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"prompt_ids must be a non-empty integer array of shape (T,) or (N, T), got "
                         f"shape {np.shape(prompt_ids)}, dtype {ids.dtype}")
    if ids.shape[1] > c.context_length:
        raise ValueError(f"the prompt has {ids.shape[1]} tokens but the model's context_length is "
                         f"{c.context_length}: shorten it to its last {c.context_length} tokens")
    if ids.min() < 0 or ids.max() >= c.vocab_size:
        raise ValueError(f"prompt ids must lie in [0, {c.vocab_size}), got values in [{ids.min()}, {ids.max()}]")
    return ids.astype(np.int64)


def generate(model, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=0,
             use_cache=True):
    """Continue a prompt: prompt_ids (T,) or (N, T) -> (N, T + max_new_tokens) ids, prompt included.

    Each step draws the next token from next_token_probs(last logits, temperature, top_k,
    top_p) with make_rng(seed). The model is run in eval mode (no dropout) and its mode is
    restored. use_cache=True feeds one new token per step through the model's key/value cache;
    False recomputes the prefix (same tokens, slower). A full cache restarts on the newest half
    of the context when it is full; a rolling (sliding-window) or linear-attention cache never
    fills and decodes on (model.make_cache decides which). Arguments are checked before any work:
    a temperature < 0, top_k < 1, top_p outside (0, 1] or a prompt longer than the context
    raise ValueError.
    """
    ids = _check_prompt(model, prompt_ids)                                # (N, T0)
    check_temperature(temperature)
    if top_k is not None:
        check_int(top_k, "top_k", 1, " or None")
    if top_p is not None and not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p!r}")
    check_int(max_new_tokens, "max_new_tokens", 0)
    rng = make_rng(seed)
    C = model.config.context_length
    N = ids.shape[0]
    out = np.empty((N, ids.shape[1] + int(max_new_tokens)), dtype=np.int64)  # (N, T0 + new)
    out[:, :ids.shape[1]] = ids
    t, start = ids.shape[1], 0                                            # tokens so far, window start
    was_training = model.training
    model.eval()
    try:
        if use_cache:
            cache = model.make_cache(N)
            logits = model.forward(out[:, :t], cache=cache)[:, -1]        # (N, V) prefill the prompt
        for _ in range(int(max_new_tokens)):
            if not use_cache:
                logits = model.forward(out[:, start:t])[:, -1]            # (N, V) the whole window again
            out[:, t] = sample_next(logits, rng, temperature, top_k, top_p)
            t += 1
            if t - start >= C and not (use_cache and not cache.bounded):  # context full: keep the newest half
                # (a rolling window or a linear-attention state never fills: it decodes on)
                start = t - C // 2
                if use_cache:
                    cache = model.make_cache(N)
                    logits = model.forward(out[:, start:t], cache=cache)[:, -1]
            elif use_cache:
                logits = model.forward(out[:, t - 1:t], cache=cache)[:, -1]  # (N, V) one new position
    finally:
        model.train(was_training)
    return out


def generate_text(model, vocab, prompt, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                  seed=0, num_samples=1, use_cache=True):
    """Continue a str prompt with a character vocabulary (attnkit.data.chars.CharVocab): a list of
    num_samples strings, prompt included. A prompt character outside the vocabulary raises ValueError."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty str, got {prompt!r}")
    ids = vocab.encode_text(prompt, strict=True)                          # (T0,)
    ids = np.repeat(ids[None, :], int(num_samples), axis=0)               # (num_samples, T0)
    out = generate(model, ids, max_new_tokens, temperature, top_k, top_p, seed, use_cache)
    return [vocab.decode_text(row) for row in out]
