"""Decoding an encoder-decoder Transformer: greedy search and beam search.

The searches call the model's own ``decode``, with a cache (``model.make_cache``, a
models.DecoderCache of one nn.KVCache per attention layer) or on the whole prefix; this module
holds only the search algorithms.

Shapes: B sentences, k beams per sentence, N rows decoded together (B, or B * k in beam
search: rows b*k .. b*k + k-1 are the beams of sentence b), S source length, t positions
decoded so far, h heads, d_k head size, d_model model width, V target vocabulary size.

Decoding generates one token per step. The decoder's input at step t is BOS followed by the
t - 1 tokens generated so far; the logits of its last position give the next token.

Why a key/value cache. Without one, step t runs the whole decoder on the t-token prefix again:
the projections and feed-forward layers redo O(t) positions and self-attention builds a
(t, t) score matrix, O(t^2) work, although only the last row is new. Every earlier position's
keys and values are exactly what they were at the previous step (the causal mask means position
i never sees the positions after it), so we keep them: with a DecoderCache, step t projects
*one* new position, appends its key and value to each layer's cache and lets that one query
attend over the t cached keys, O(t) work. Summed over T steps: O(T^2) instead of O(T^3) in
attention and O(T) instead of O(T^2) position-wise work. The cross-attention keys and values
are projections of the encoder output (memory), the same at every step: computed once.

Conventions of greedy_decode and beam_search:
  - dropout is off while decoding (the model is put in eval mode, then its mode is restored);
  - a generated sequence includes its EOS; positions after it hold pad_id (config.pad_id, or
    eos_id if the model has no padding id); without EOS a sequence stops at max_len tokens;
  - the padding id and the BOS id are never generated (their log-probabilities are set to
    -inf; the others are *not* renormalized, so scores are the model's log-probabilities);
  - eos_id=None never stops early: every sequence gets exactly max_len tokens (benchmarks).
"""
from contextlib import contextmanager

import numpy as np

from ._checks import check_int, is_int
from .functional import log_softmax
from .models import DecoderCache, LayerCache, Transformer  # noqa: F401 (the caches live with the model)

__all__ = ["DecoderCache", "LayerCache", "decoder_step", "greedy_decode", "beam_search",
           "gnmt_length_penalty",
           "sequence_log_probs", "trim_at_eos"]


# ----------------------------------------------------------------------------
# one decoder step: the model's own decode with its cache

def decoder_step(model, cache, new_token_ids):
    """Run the decoder on one new position per row and return that position's logits.

    model: a Transformer, in eval mode (dropout off) for deterministic output.
    cache: a DecoderCache holding the keys and values of positions 0 .. t-1 (t = cache.length).
    new_token_ids: (N,) integer ids of the tokens at position t (BOS at t = 0).
    Returns logits (N, V) for the token at position t + 1, equal (up to rounding) to
    model.decode(prefix, ...)[:, -1] on the whole (N, t + 1) prefix. Extends the cache by one.

    Work per step: O(layers * N * d_model^2) for the projections and feed-forward of one
    position, O(layers * N * (t + S) * d_model) for attention over t + 1 cached keys and S source
    keys: linear in t, where recomputing the prefix costs O(t d_model^2 + t^2 d_model).
    """
    if not isinstance(cache, DecoderCache):
        raise TypeError(f"cache must be a DecoderCache, got {type(cache).__name__}")
    ids = np.asarray(new_token_ids)
    if ids.shape != (cache.num_rows,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"new_token_ids must hold one integer id per cache row, shape ({cache.num_rows},); "
                         f"got shape {ids.shape}, dtype {ids.dtype}")
    return model.decode(ids[:, None], cache.memory, cache.src_mask, cache=cache)[:, 0]   # (N, V)


# ----------------------------------------------------------------------------
# shared pieces of the searches

@contextmanager
def _eval_mode(model):
    """Switch dropout off for the duration, then restore the model's previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _check_id(value, name, V, allow_none=False):
    if value is None and allow_none:
        return None
    if not is_int(value):
        raise TypeError(f"{name} must be an integer token id, got {value!r}")
    if not 0 <= value < V:
        raise ValueError(f"{name}={value} is not in the target vocabulary [0, {V}); "
                         "pass the id your tokenizer gives the special token")
    return int(value)


def _check_args(model, bos_id, eos_id, max_len):
    if not isinstance(model, Transformer):
        raise TypeError(f"decoding needs an attnkit.models.Transformer, got {type(model).__name__}")
    c = model.config
    bos_id = _check_id(bos_id, "bos_id", c.tgt_vocab_size)
    eos_id = _check_id(eos_id, "eos_id", c.tgt_vocab_size, allow_none=True)
    max_len = check_int(max_len, "max_len", 1, " (the most tokens to generate)")
    if max_len > c.max_len:
        raise ValueError(f"max_len={max_len} exceeds the model's max_len={c.max_len} (its position table); "
                         f"pass max_len <= {c.max_len}")
    return bos_id, eos_id, max_len


def _filler(model, eos_id):
    """The id written after a sequence's end: the padding id, or EOS if the model has none."""
    pad = model.config.pad_id
    return pad if pad is not None else (eos_id if eos_id is not None else 0)


def _banned(model, bos_id, eos_id):
    """Ids never generated: padding and BOS (unless one of them is also EOS)."""
    return sorted({i for i in (model.config.pad_id, bos_id) if i is not None and i != eos_id})


def _next_log_probs(model, prefix, memory, src_mask, cache, banned):
    """Log-probabilities (N, V) float64 of the token after each row of prefix (N, t).

    With a cache only the last token is fed (decoder_step); without one, the whole prefix is
    decoded again and the last position kept. tgt_lengths marks every prefix token as real, so a
    generated id equal to pad_id is never masked out: both paths see the same inputs.
    """
    if cache is not None:
        logits = decoder_step(model, cache, prefix[:, -1])               # (N, V)
    else:
        N, t = prefix.shape
        logits = model.decode(prefix, memory, src_mask,
                              tgt_lengths=np.full(N, t))[:, -1]          # (N, V)
    logp = log_softmax(logits.astype(np.float64))                        # (N, V) scores add up in float64
    logp[:, banned] = -np.inf
    return logp


def _top_n(scores, n):
    """Indices (B, n) of the n largest entries of each row of scores (B, M), largest first, ties
    by lower index (as a stable argsort). np.partition finds the n-th largest score in O(M), then
    only the n kept are sorted: a full argsort of the k * V candidates, O(M log M), costs more
    than a decoder step for a large vocabulary."""
    B, M = scores.shape
    cut = -np.partition(-scores, n - 1, axis=1)[:, n - 1:n]              # (B, 1) the n-th largest
    above = scores > cut                                                 # (B, M)
    at_cut = scores == cut                                               # (B, M) ties: lowest indices first
    room = n - above.sum(axis=1, keepdims=True)                          # (B, 1)
    keep = above | (at_cut & (np.cumsum(at_cut, axis=1) <= room))        # (B, M), n True per row
    top = np.nonzero(keep)[1].reshape(B, n)                              # (B, n) in index order
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")  # (B, n)
    return np.take_along_axis(top, order, axis=1)                        # (B, n)


def gnmt_length_penalty(length, alpha):
    """GNMT length penalty lp = ((5 + length) / 6) ** alpha (Wu et al., 2016); alpha = 0 gives 1.

    Beam search ranks a finished hypothesis by log P(y | x) / lp(|y|). A sum of log-probabilities
    only falls as a sequence grows, so unnormalized search favours short outputs; alpha in
    [0.6, 1] (GNMT used 0.2-0.6 with coverage) evens this out. length counts EOS.
    """
    return ((5.0 + np.asarray(length, dtype=np.float64)) / 6.0) ** alpha


def trim_at_eos(tokens, eos_id):
    """(B, L) generated ids -> list of B lists, each cut before its first EOS (padding removed)."""
    out = []
    for row in np.asarray(tokens).tolist():
        out.append(row[:row.index(eos_id)] if eos_id in row else row)
    return out


# ----------------------------------------------------------------------------
# greedy search

def greedy_decode(model, src_ids, bos_id, eos_id, max_len, src_lengths=None, use_cache=True):
    """Greedy decoding: at every step append the most probable next token.

    model: a Transformer. src_ids: (B, S) source ids (padding from config.pad_id or
    src_lengths (B,)). bos_id: the first decoder input. eos_id: the id that ends a sequence
    (None: never stop, every sequence gets max_len tokens). max_len: the most tokens generated
    per sentence, EOS included (at most model.config.max_len).
    use_cache: True feeds one token per step through decoder_step (O(t) work at step t);
    False decodes the whole prefix again at every step (O(t^2) in attention), same tokens.

    All B sentences are decoded together; a sentence that has produced EOS keeps receiving the
    padding id (its score no longer changes), and the loop ends as soon as every sentence is done.
    Returns tokens (B, L) int64, L <= max_len the number of steps run (each row: its tokens,
    EOS, then padding), and scores (B,) float64, the sum of the chosen tokens' log-probabilities.
    """
    bos_id, eos_id, max_len = _check_args(model, bos_id, eos_id, max_len)
    filler, banned = _filler(model, eos_id), _banned(model, bos_id, eos_id)
    with _eval_mode(model):
        memory, src_mask = model.encode(src_ids, src_lengths)            # (B, S, d_model), (B, 1, 1, S)
        B = memory.shape[0]
        cache = DecoderCache(model, memory, src_mask, capacity=max_len) if use_cache else None
        prefix = np.full((B, 1), bos_id, dtype=np.int64)                 # (B, 1) decoder inputs
        scores = np.zeros(B)                                             # (B,)
        finished = np.zeros(B, dtype=bool)                               # (B,)
        rows = np.arange(B)
        for _ in range(max_len):
            logp = _next_log_probs(model, prefix, memory, src_mask, cache, banned)  # (B, V)
            token = np.where(finished, filler, np.argmax(logp, axis=1))  # (B,)
            scores += np.where(finished, 0.0, logp[rows, token])         # (B,)
            prefix = np.concatenate([prefix, token[:, None]], axis=1)    # (B, t + 1)
            if eos_id is not None:
                finished |= token == eos_id
            if finished.all():
                break
    return prefix[:, 1:], scores                                         # (B, L), (B,)


# ----------------------------------------------------------------------------
# beam search

def beam_search(model, src_ids, bos_id, eos_id, beam_size, max_len, length_penalty=0.0,
                src_lengths=None, use_cache=True, return_all=False):
    """Beam search: keep the beam_size best partial sequences (beams) of every sentence at each step.

    model, src_ids, bos_id, eos_id, max_len, src_lengths, use_cache: as in greedy_decode.
    beam_size: k >= 1, beams per sentence. length_penalty: alpha >= 0 of the GNMT penalty
    (see gnmt_length_penalty); finished hypotheses are ranked by log P(y | x) / lp(|y|), and alpha = 0
    ranks by the plain sum of log-probabilities.

    Algorithm, for all B sentences at once (B * k rows, beams of sentence b in rows b*k .. b*k+k-1):
      1. Each beam has a score, the sum of its tokens' log-probabilities; at the start beam 0 is
         BOS with score 0 and the other k - 1 copies have -inf, so the first step expands one.
      2. Every beam is extended by every token: k * V candidates per sentence, score = beam
         score + log P(token | beam). The 2k best are kept (at most k of them end in EOS, so at
         least k do not).
      3. A candidate ending in EOS among the k best is set aside as a finished hypothesis
         (as in fairseq: with k = 1 and alpha = 0 this makes beam search exactly greedy search).
         At step max_len the k best candidates, with or without EOS, are finished.
      4. The k best candidates without EOS become the new beams; the cache rows are gathered
         from their parents (DecoderCache.reorder).
      5. A sentence is done when its k-th best finished hypothesis scores at least as high as any
         beam still could: a beam's log-probability can only fall, so with alpha >= 0 no
         extension of a beam with score s can exceed s / lp(max_len). This bound is exact: the
         result is the one running to max_len would give, only faster. The loop ends when every
         sentence is done or after max_len steps.
    Finished hypotheses are kept per sentence as the k best so far, in arrays (B, k, ...).

    Returns, if return_all is False: tokens (B, L) int64 of the best hypothesis per sentence
    (its tokens, EOS if it ended with one, then padding) and scores (B,) float64, its penalized
    score log P / lp. If return_all is True: tokens (B, k, L) and scores (B, k), best first (a
    slot no hypothesis reached has score -inf). L <= max_len is the longest returned hypothesis.
    """
    bos_id, eos_id, max_len = _check_args(model, bos_id, eos_id, max_len)
    k = check_int(beam_size, "beam_size", 1, " (1 is greedy search)")
    if isinstance(length_penalty, (bool, np.bool_)) or not isinstance(length_penalty, (int, float,
                                                                                      np.number)):
        raise TypeError(f"length_penalty must be a number alpha >= 0, got {length_penalty!r}")
    alpha = float(length_penalty)
    if not alpha >= 0:
        raise ValueError(f"length_penalty must be >= 0 (0: plain log-probabilities; 0.6-1 is usual), got "
                         f"{alpha}")
    filler, banned = _filler(model, eos_id), _banned(model, bos_id, eos_id)
    with _eval_mode(model):
        memory, src_mask = model.encode(src_ids, src_lengths)            # (B, S, d_model), (B, 1, 1, S)
        B = memory.shape[0]
        memory = np.repeat(memory, k, axis=0)                            # (B*k, S, d_model)
        src_mask = np.repeat(src_mask, k, axis=0)                        # (B*k, 1, 1, S)
        cache = DecoderCache(model, memory, src_mask, max_len, beam_size=k) if use_cache else None
        prefix = np.full((B * k, 1), bos_id, dtype=np.int64)             # (B*k, 1) decoder inputs
        beam_scores = np.full((B, k), -np.inf)                           # (B, k) log P of each beam
        beam_scores[:, 0] = 0.0
        finished = _Finished(B, k, max_len, filler)
        done = np.zeros(B, dtype=bool)                                   # (B,)
        for t in range(1, max_len + 1):                                  # t = length of the candidates
            logp = _next_log_probs(model, prefix, memory, src_mask, cache, banned)  # (B*k, V)
            top_scores, parent, token = _candidates(beam_scores, logp, k)  # (B, 2k) each, best first
            is_eos = (token == eos_id) if eos_id is not None else np.zeros_like(token, dtype=bool)  # (B, 2k)
            # 3. set finished hypotheses aside (at max_len every candidate ends)
            ends = is_eos if t < max_len else np.ones_like(is_eos)       # (B, 2k)
            finished.add(prefix, top_scores, parent, token, ends & ~done[:, None], t, alpha)
            if t == max_len:
                break
            # 4. the k best candidates without EOS become the beams (a stable sort keeps score order)
            keep = np.argsort(is_eos, axis=1, kind="stable")[:, :k]      # (B, k)
            beam_scores = np.take_along_axis(top_scores, keep, axis=1)   # (B, k)
            # (B*k,)
            rows = (np.arange(B)[:, None] * k + np.take_along_axis(parent, keep, axis=1)).reshape(-1)
            new_tokens = np.take_along_axis(token, keep, axis=1).reshape(-1, 1)  # (B*k, 1)
            prefix = np.concatenate([prefix[rows], new_tokens], axis=1)  # (B*k, t + 1)
            if cache is not None:
                cache.reorder(rows)
            # 5. a sentence is done when no beam can beat its k-th finished hypothesis
            reachable = beam_scores[:, 0] / gnmt_length_penalty(max_len, alpha)  # (B,) beams are sorted
            done |= finished.scores[:, k - 1] >= reachable
            if done.all():
                break
    return finished.result(return_all)


def _candidates(beam_scores, logp, k):
    """Step 2 of beam_search: every beam (B, k) extended by every token, logp (B*k, V); the 2k best
    candidates per sentence -> their scores, parent beams and tokens, each (B, 2k), best first."""
    B, V = beam_scores.shape[0], logp.shape[1]
    cand = (beam_scores[:, :, None] + logp.reshape(B, k, V)).reshape(B, k * V)  # (B, k*V)
    top = _top_n(cand, min(2 * k, k * V))                                # (B, 2k) best first
    return np.take_along_axis(cand, top, axis=1), top // V, top % V      # (B, 2k) each


class _Finished:
    """Beam search's finished hypotheses: the k best per sentence so far, best first."""

    def __init__(self, B, k, max_len, filler):
        self.k, self.max_len, self.filler = k, max_len, filler
        self.scores = np.full((B, k), -np.inf)                           # (B, k) log P / lp
        self.tokens = np.full((B, k, max_len), filler, dtype=np.int64)   # (B, k, max_len)
        self.lengths = np.zeros((B, k), dtype=np.int64)                  # (B, k)

    def add(self, prefix, top_scores, parent, token, ends, t, alpha):
        """Pool the candidates of length t that end (ends (B, 2k), among the k best) with the
        finished ones and keep the k best; ties keep the older hypothesis first."""
        B, n_top = token.shape
        k = self.k
        generated = prefix.reshape(B, k, t)[:, :, 1:]                    # (B, k, t-1) without BOS
        cand_tokens = np.concatenate([np.take_along_axis(generated, parent[:, :, None], axis=1),
                                      token[:, :, None]], axis=2)        # (B, 2k, t)
        ends = ends & (np.arange(n_top)[None, :] < k)                    # (B, 2k) only the k best
        new_scores = np.where(ends, top_scores / gnmt_length_penalty(t, alpha), -np.inf)  # (B, 2k)
        pad = np.full((B, n_top, self.max_len - t), self.filler, dtype=np.int64)
        pool_scores = np.concatenate([self.scores, new_scores], axis=1)  # (B, 3k)
        cand_tokens = np.concatenate([cand_tokens, pad], axis=2)         # (B, 2k, max_len)
        pool_tokens = np.concatenate([self.tokens, cand_tokens], axis=1)  # (B, 3k, max_len)
        pool_lengths = np.concatenate([self.lengths, np.full((B, n_top), t)], axis=1)  # (B, 3k)
        best = np.argsort(-pool_scores, axis=1, kind="stable")[:, :k]    # (B, k)
        self.scores = np.take_along_axis(pool_scores, best, axis=1)      # (B, k)
        self.tokens = np.take_along_axis(pool_tokens, best[:, :, None], axis=1)  # (B, k, max_len)
        self.lengths = np.take_along_axis(pool_lengths, best, axis=1)    # (B, k)

    def result(self, return_all):
        """(tokens (B, k, L), scores (B, k)) if return_all else the best: (B, L), (B,)."""
        reached = np.isfinite(self.scores)                               # (B, k) slots holding a hypothesis
        self.tokens[~reached] = self.filler
        lengths = np.where(reached, self.lengths, 0)                     # (B, k)
        if return_all:
            L = max(int(lengths.max()), 1)
            return self.tokens[:, :, :L], self.scores                    # (B, k, L), (B, k)
        L = max(int(lengths[:, 0].max()), 1)
        return self.tokens[:, 0, :L], self.scores[:, 0]                  # (B, L), (B,)


# ----------------------------------------------------------------------------
# scoring given outputs

def sequence_log_probs(model, src_ids, tokens, bos_id, eos_id, src_lengths=None):
    """log P(y | x) of given outputs under the model, decoding each whole sequence at once.

    tokens: (B, L) generated ids as greedy_decode / beam_search return them; each row counts up
    to and including its first eos_id (all L tokens if it has none; eos_id=None counts all).
    Returns (B,) float64. No search and no banned ids: the reference for testing the searches.
    """
    bos_id, eos_id, _ = _check_args(model, bos_id, eos_id, 1)
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a (B, L) integer array, got shape {tokens.shape}, dtype "
                         f"{tokens.dtype}")
    B, L = tokens.shape
    with _eval_mode(model):
        memory, src_mask = model.encode(src_ids, src_lengths)            # (B, S, d_model)
        inputs = np.concatenate([np.full((B, 1), bos_id), tokens[:, :-1]], axis=1)  # (B, L) shifted right
        logits = model.decode(inputs, memory, src_mask, tgt_lengths=np.full(B, L))  # (B, L, V)
    logp = log_softmax(logits.astype(np.float64))                        # (B, L, V)
    picked = np.take_along_axis(logp, tokens[:, :, None], axis=2)[:, :, 0]  # (B, L)
    if eos_id is None:
        counted = np.ones((B, L), dtype=bool)
    else:
        is_eos = tokens == eos_id                                        # (B, L)
        counted = np.cumsum(is_eos, axis=1) - is_eos == 0                # (B, L) up to the first EOS
    return np.where(counted, picked, 0.0).sum(axis=1)                    # (B,)
