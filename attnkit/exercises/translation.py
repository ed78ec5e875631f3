"""Checkers for chapters 16 and 17, machine translation: teacher-forcing targets, the GNMT length
penalty, BLEU's clipped n-gram precision and its brevity penalty.

    from attnkit.exercises.translation import check_shift_targets
    check_shift_targets(my_shift)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises.
"""
import math
from collections import Counter

import numpy as np

from ..decoding import gnmt_length_penalty
from ..metrics import ngram_counts
from .core import Hint, call, cases_rng, check, expect_number

__all__ = ["check_shift_targets", "check_length_penalty", "check_ngram_precision",
           "check_brevity_penalty"]


_number = expect_number


def _safe(fn, args):
    """fn(*args) as a float, nan where it fails (a wrong version may divide by zero)."""
    try:
        with np.errstate(all="ignore"):
            return float(fn(*args))
    except (ArithmeticError, TypeError, ValueError):
        return math.nan


def _match_mistakes(outs, args, ref, mistakes, rtol=1e-6):
    """Hint with the first mistake whose values equal the learner's on every case (else None)."""
    outs = np.asarray(outs, dtype=np.float64)
    refs = np.array([ref(*a) for a in args], dtype=np.float64)
    if np.allclose(outs, refs, rtol=rtol, atol=1e-12):
        return None
    for wrong, hint in mistakes:
        vals = np.array([_safe(wrong, a) for a in args], dtype=np.float64)
        if np.allclose(outs, vals, rtol=rtol, atol=1e-12, equal_nan=True):
            raise Hint(hint)
    return int(np.argmax(~np.isclose(outs, refs, rtol=rtol, atol=1e-12)))


# ----------------------------------------------------------------------------
# chapter 16: teacher forcing, decoder input and target from a padded target batch

def _shift(tgt, bos, eos, pad):
    B, T = tgt.shape
    lengths = (tgt != pad).sum(axis=1)
    dec_in = np.full((B, T + 1), pad, dtype=tgt.dtype)
    dec_in[:, 0] = bos
    dec_in[:, 1:] = tgt
    dec_out = np.full((B, T + 1), pad, dtype=tgt.dtype)
    dec_out[:, :T] = tgt
    dec_out[np.arange(B), lengths] = eos
    return dec_in, dec_out


def _target_batch(rng, lengths, pad, specials):
    """(B, T) ids of real tokens (never a special id), right-padded with pad."""
    T = max(lengths)
    words = np.array([i for i in range(4, 40) if i not in specials])
    tgt = np.full((len(lengths), T), pad, dtype=np.int64)
    for b, n in enumerate(lengths):
        tgt[b, :n] = rng.choice(words, size=n)
    return tgt


def _shift_cases(fn):
    rng = cases_rng(1617)
    settings = [((4, 2, 5, 1), (0, 2, 3)),      # the book's ids: <pad> 0, <bos> 2, <eos> 3
                ((3, 6, 6, 1, 2), (1, 38, 39))]  # other ids: use the arguments, not constants
    for lengths, (pad, bos, eos) in settings:
        tgt = _target_batch(rng, lengths, pad, {pad, bos, eos})
        B, T = tgt.shape
        ref_in, ref_out = _shift(tgt, bos, eos, pad)
        out = call(fn, tgt, bos, eos, pad)
        if out is None:
            raise NotImplementedError
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Hint("return two arrays, (decoder_input, decoder_target), e.g. "
                       f"return dec_in, dec_out; you returned {type(out).__name__}.")
        dec_in, dec_out = (np.asarray(x) for x in out)
        for what, arr in (("the decoder input", dec_in), ("the decoder target", dec_out)):
            if arr.shape != (B, T + 1):
                raise Hint(f"{what} has shape {arr.shape}; for a target batch of shape {(B, T)} "
                           f"both arrays have shape {(B, T + 1)}: one column more, for <bos> at the "
                           "start of the input and <eos> after the last word of the target.")
            if not np.issubdtype(arr.dtype, np.integer):
                raise Hint(f"{what} has dtype {arr.dtype}: token ids are integers (they index the "
                           "embedding table); build the arrays with the dtype of tgt_ids.")
        if np.array_equal(dec_in, ref_in) and np.array_equal(dec_out, ref_out):
            continue
        if np.array_equal(dec_in, ref_out) and np.array_equal(dec_out, ref_in):
            raise Hint("you shifted the wrong way: the decoder reads <bos> y_1 ... y_n (the target "
                       "shifted right) and must predict y_1 ... y_n <eos> (the target itself, then "
                       "<eos>). Swap the two arrays.")
        if not np.all(dec_in[:, 0] == bos):
            raise Hint("the decoder input must start with <bos> in every row: at position 0 the "
                       "decoder has no word yet, so it reads bos_id (use the argument, not a "
                       "constant).")
        if np.all(dec_out[:, 0] == bos):
            raise Hint("the decoder target still contains <bos>: nothing ever has to predict <bos>. "
                       "The target is y_1 ... y_n <eos>, the input shifted left by one.")
        if not np.array_equal(dec_in, ref_in):
            raise Hint("the decoder input should be <bos> followed by the target row as given "
                       "(its padding included): dec_in[:, 0] = bos_id, dec_in[:, 1:] = tgt_ids.")
        if not np.any(dec_out == eos):
            raise Hint("the decoder target has no <eos>: the decoder must learn to stop, so put "
                       "eos_id right after the last word of every row.")
        end_column = np.concatenate([tgt, np.full((B, 1), eos, dtype=tgt.dtype)], axis=1)
        if np.array_equal(dec_out, end_column):
            raise Hint("padding misaligned: you put <eos> in the last column of every row, after "
                       "the padding. In a short row <eos> goes right after its last real token "
                       "(at index len(row), counting the tokens that are not pad_id), and padding "
                       "follows it.")
        b = int(np.argmax(np.any(dec_out != ref_out, axis=1)))
        raise Hint(f"row {b} of the decoder target is {dec_out[b].tolist()}, expected "
                   f"{ref_out[b].tolist()}: the row's real tokens, then <eos> ({eos}), then padding "
                   f"({pad}) to the end.")


def check_shift_targets(fn):
    """Check fn(tgt_ids, bos_id, eos_id, pad_id) -> (decoder input, decoder target), both (B, T+1)."""
    return check("shift_targets", fn, _shift_cases)


# ----------------------------------------------------------------------------
# chapter 16: the GNMT length penalty and the normalized score

def _lp_score(logp, length, alpha):
    return logp / float(gnmt_length_penalty(length, alpha))   # the library's penalty


_LP_MISTAKES = [
    (lambda p, n, a: p * ((5.0 + n) / 6.0) ** a,
     "you multiplied log P by the penalty: divide by it. log P is negative and lp(|y|) >= 1 grows "
     "with the length, so dividing brings a long hypothesis's score closer to 0; with alpha > 0 "
     "longer hypotheses must be favoured, not punished further."),
    (lambda p, n, a: p / ((5.0 + n) / 5.0) ** a,
     "the penalty is ((5 + |y|) / 6) ** alpha, with 6 below, not 5: then lp = 1 for a one-token "
     "output."),
    (lambda p, n, a: p / ((5.0 + n) ** a / 6.0),
     "alpha applies to the wrong thing: raise the whole fraction to the power alpha, "
     "((5 + length) / 6) ** alpha, not only 5 + length."),
    (lambda p, n, a: p / ((5.0 + n) / 6.0 * a) if a else p,
     "alpha is an exponent, not a factor: lp = ((5 + length) / 6) ** alpha (alpha = 0 gives 1, "
     "no penalty)."),
    (lambda p, n, a: p / (5.0 + n / 6.0) ** a,
     "mind the parentheses: the penalty is ((5 + length) / 6) ** alpha; 5 + length / 6 divides "
     "only the length."),
    (lambda p, n, a: p / n ** a,
     "that is plain length normalization, log P / |y| ** alpha; GNMT's penalty is "
     "((5 + |y|) / 6) ** alpha, which treats short outputs more gently."),
    (lambda p, n, a: -abs(p) ** a / ((5.0 + n) / 6.0),
     "alpha applies to the wrong thing: it is the exponent of the length penalty, "
     "((5 + length) / 6) ** alpha, not of log P."),
    (lambda p, n, a: p / ((5.0 + n) / 6.0) ** (1.0 / a) if a else p,
     "the exponent is alpha itself, not 1 / alpha: lp = ((5 + length) / 6) ** alpha."),
    (lambda p, n, a: p,
     "you returned log P unchanged: divide it by the length penalty ((5 + length) / 6) ** alpha."),
]


def _lp_cases(fn):
    args = [(logp, n, a) for a in (0.0, 0.6, 1.0)
            for logp, n in ((-0.5, 1), (-2.3, 4), (-3.1, 8), (-7.9, 17), (-12.4, 30))]
    outs = []
    for logp, n, a in args:
        out = call(fn, logp, n, a)
        if np.iscomplexobj(out):
            outs.append(math.nan)
            continue
        outs.append(_number(out, f"for log_prob={logp}, length={n}, alpha={a}"))
    if any(math.isnan(o) for o in outs):
        raise Hint("your score is nan or complex: alpha applies to the wrong thing. It is the "
                   "exponent of the length penalty ((5 + length) / 6) ** alpha, not of log P (a "
                   "negative number to a fractional power is not a real number).")
    i = _match_mistakes(outs, args, _lp_score, _LP_MISTAKES)
    if i is None:
        return
    logp, n, a = args[i]
    raise Hint(f"for log_prob={logp}, length={n}, alpha={a} you give {outs[i]:.6g}, expected "
               f"{_lp_score(logp, n, a):.6g}: score = log_prob / ((5 + length) / 6) ** alpha.")


def check_length_penalty(fn):
    """Check fn(log_prob, length, alpha) -> GNMT-normalized score log_prob / ((5 + length) / 6)**alpha."""
    return check("length_penalty", fn, _lp_cases)


# ----------------------------------------------------------------------------
# chapter 17: BLEU's clipped (modified) n-gram precision for one order n

def _grams(tokens, n):
    """Counts of the n-grams of order n alone (metrics.ngram_counts counts orders 1..n)."""
    return Counter({g: c for g, c in ngram_counts(tokens, n).items() if len(g) == n})


def _precision(hyps, refs, n):
    correct = total = 0
    for h, r in zip(hyps, refs):
        rc = _grams(r, n)
        for g, c in _grams(h, n).items():
            correct += min(c, rc[g])
            total += c
    return correct / total


def _concat(sents):
    return [t for s in sents for t in s]


_PREC_MISTAKES = [
    (lambda H, R, n: sum(c for h, r in zip(H, R) for g, c in _grams(h, n).items() if g in _grams(r, n))
     / sum(sum(_grams(h, n).values()) for h in H),
     "counts not clipped: an n-gram of the output is credited at most as many times as it occurs in "
     "its reference, min(count in output, count in reference). Without clipping, "
     "'the the the' scores perfectly against 'the cat'."),
    (lambda H, R, n: sum(c for h, r in zip(H, R) for g, c in _grams(h, n).items() if g in _grams(r, n))
     / sum(sum(_grams(r, n).values()) for r in R),
     "counts not clipped, and the denominator is the reference's n-grams: clip each count by the "
     "reference's, min(count in output, count in reference), and divide by the number of n-grams "
     "in the outputs."),
    (lambda H, R, n: _precision([_concat(H)], [_concat(R)], n),
     "n-grams crossing sentences: you joined the sentences into one long list, which makes n-grams "
     "from the end of one sentence and the start of the next, and clips against the whole corpus. "
     "Count n-grams within each sentence (against its own reference), then sum over sentences."),
    (lambda H, R, n: sum(min(c, sum((_grams(r, n) for r in R), Counter())[g])
                         for h in H for g, c in _grams(h, n).items())
     / sum(sum(_grams(h, n).values()) for h in H),
     "you clipped against the n-gram counts of all references together: clip each sentence's "
     "counts by its own reference only."),
    (lambda H, R, n: sum(min(c, _grams(r, n)[g]) for h, r in zip(H, R) for g, c in _grams(h, n).items())
     / sum(sum(_grams(r, n).values()) for r in R),
     "wrong denominator: divide by the number of n-grams in the outputs (precision), not in the "
     "references."),
    (lambda H, R, n: sum(min(c, _grams(r, n)[g]) for h, r in zip(H, R) for g, c in _grams(h, n).items())
     / sum(len(h) for h in H),
     "wrong denominator: a sentence of L tokens has L - n + 1 n-grams (none if L < n), not L. "
     "Divide by the number of n-grams in the outputs."),
    (lambda H, R, n: np.mean([_precision([h], [r], n) for h, r in zip(H, R) if len(h) >= n]),
     "wrong denominator: you averaged the precisions of the sentences. BLEU sums the clipped "
     "matches and the n-gram counts over the corpus first, then divides once."),
    (lambda H, R, n: sum(_precision([h], [r], n) for h, r in zip(H, R) if len(h) >= n) / len(H),
     "wrong denominator: you averaged the precisions of the sentences. BLEU sums the clipped "
     "matches and the n-gram counts over the corpus first, then divides once."),
    (lambda H, R, n: sum(min(c, r[g]) for h, r in
                         zip((_grams_upto(h, n) for h in H), (_grams_upto(r, n) for r in R))
                         for g, c in h.items())
     / sum(sum(_grams_upto(h, n).values()) for h in H),
     "count n-grams of order n only (n consecutive tokens), not every order from 1 to n."),
]


def _grams_upto(tokens, n):
    """Counts of the n-grams of every order 1..n (a typical mix-up with order n only)."""
    return ngram_counts(tokens, n)


def _corpus(rng, words, n_sents):
    hyps, refs = [], []
    for _ in range(n_sents):
        ref = list(rng.choice(words, size=int(rng.integers(1, 8))))
        hyp = list(ref)
        for _ in range(int(rng.integers(0, 4))):     # a few edits: replace, repeat, drop
            kind = rng.integers(3)
            i = int(rng.integers(len(hyp))) if hyp else 0
            if kind == 0 and hyp:
                hyp[i] = str(rng.choice(words))
            elif kind == 1 and hyp:
                hyp.insert(i, hyp[i])
            elif len(hyp) > 1:
                del hyp[i]
        hyps.append([str(t) for t in hyp])
        refs.append([str(t) for t in ref])
    return hyps, refs


def _prec_cases(fn):
    rng = cases_rng(1617)
    words = np.array("ein zwei drei und zwanzig hundert tausend".split())
    # a hand-made corpus: a repeated word (clipping) and a bigram across the sentence boundary
    corpora = [([["drei", "hundert", "drei"], ["und", "zwanzig", "zwanzig", "zwanzig"], ["ein"]],
                [["drei", "hundert", "und"], ["drei", "und", "zwanzig"], ["ein", "hundert"]])]
    corpora += [_corpus(rng, words, 8) for _ in range(3)]
    args, outs = [], []
    for hyps, refs in corpora:
        for n in (1, 2, 3):
            if not any(len(h) >= n for h in hyps):
                continue
            given = ([list(h) for h in hyps], [list(r) for r in refs])
            out = call(fn, *given, n)
            if out is None:
                raise NotImplementedError
            if isinstance(out, (tuple, list)) and len(out) == 2:
                raise Hint("return the precision as one number, clipped matches / n-grams in the "
                           f"outputs, not the pair {out!r}.")
            out = _number(out, f"for n={n}")
            outs.append(out)
            args.append((hyps, refs, n))
    i = _match_mistakes(outs, args, _precision, _PREC_MISTAKES)
    if i is None:
        return
    hyps, refs, n = args[i]
    raise Hint(f"for n={n} on the corpus hypotheses={hyps!r}, references={refs!r} you give "
               f"{outs[i]:.6g}, expected {_precision(hyps, refs, n):.6g}: sum over sentences of "
               "min(count in output, count in reference) for each n-gram, divided by the total "
               "number of n-grams in the outputs.")


def check_ngram_precision(fn):
    """Check fn(hypotheses, references, n) -> corpus-level clipped n-gram precision of order n."""
    return check("ngram_precision", fn, _prec_cases)


# ----------------------------------------------------------------------------
# chapter 17: BLEU's brevity penalty

def _bp(c, r):
    return 1.0 if c >= r else math.exp(1 - r / c)


_BP_MISTAKES = [
    (lambda c, r: math.exp(1 - c / r),
     "you penalise outputs longer than the reference, and with the ratio inverted: BP = 1 when "
     "c >= r, and exp(1 - r/c) (reference length over output length) when c < r."),
    (lambda c, r: math.exp(1 - r / c),
     "penalty when the hypothesis is longer: BP = 1 when c >= r. Only outputs shorter than the "
     "references are penalised (precision already punishes extra words)."),
    (lambda c, r: math.exp(1 - r / c) if c > r else 1.0,
     "the condition is the wrong way round: you penalise outputs longer than the reference and "
     "leave short ones alone. BP = exp(1 - r/c) when c < r, else 1."),
    (lambda c, r: math.exp(1 - c / r) if c < r else 1.0,
     "exp(1 - r/c) inverted: the exponent is 1 - r/c (reference length over output length), "
     "not 1 - c/r; with c < r it is negative, and shorter outputs are punished harder."),
    (lambda c, r: math.exp(r / c - 1) if c < r else 1.0,
     "the sign of the exponent is flipped: BP = exp(1 - r/c), at most 1, not exp(r/c - 1), which "
     "rewards short outputs."),
    (lambda c, r: min(1.0, c / r),
     "the penalty is exponential: BP = exp(1 - r/c) when c < r, not the ratio c/r."),
    (lambda c, r: 1 - r / c if c < r else 1.0,
     "you forgot the exponential: BP = exp(1 - r/c) when c < r."),
]


def _bp_cases(fn):
    args = [(10, 10), (8, 10), (12, 10), (1, 5), (30, 29), (29, 30), (100, 140), (50, 20),
            (7, 9)]
    outs = [_number(call(fn, c, r), f"for c={c}, r={r}") for c, r in args]
    if any(math.isnan(o) for o in outs):
        raise Hint("your brevity penalty is nan for some lengths: BP = exp(1 - r/c) when c < r, "
                   "else 1.")
    i = _match_mistakes(outs, args, _bp, _BP_MISTAKES)
    if i is None:
        return
    c, r = args[i]
    raise Hint(f"for c={c}, r={r} you give {outs[i]:.6g}, expected {_bp(c, r):.6g}: BP = 1 when "
               "c >= r, exp(1 - r/c) when c < r.")


def check_brevity_penalty(fn):
    """Check fn(c, r) -> BLEU's brevity penalty for total output length c and reference length r."""
    return check("brevity_penalty", fn, _bp_cases)
