"""The checkers of chapters 16 and 17 (translation) pass the reference solutions and fail typical
wrong answers with their specific hint."""
import math
from collections import Counter

import numpy as np
import pytest

from attnkit.decoding import gnmt_length_penalty
from attnkit.exercises.translation import (check_brevity_penalty, check_length_penalty,
                                           check_ngram_precision, check_shift_targets)
from attnkit.metrics import bleu_from_statistics, bleu_statistics

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


def todo(*args):
    ...


@pytest.mark.parametrize("checker", [check_shift_targets, check_length_penalty,
                                     check_ngram_precision, check_brevity_penalty])
def test_not_done(checker):
    fails_with(checker(todo), "not done yet")


@pytest.mark.parametrize("checker", [check_shift_targets, check_length_penalty,
                                     check_ngram_precision, check_brevity_penalty])
def test_raising_is_reported(checker):
    fails_with(checker(lambda *a: 1 / 0), "ZeroDivisionError")


# ---------------------------------------------------------------- teacher-forcing targets

def shift_ref(tgt_ids, bos_id, eos_id, pad_id):
    B, T = tgt_ids.shape
    lengths = (tgt_ids != pad_id).sum(axis=1)
    dec_in = np.full((B, T + 1), pad_id, dtype=tgt_ids.dtype)
    dec_in[:, 0] = bos_id
    dec_in[:, 1:] = tgt_ids
    dec_out = np.full((B, T + 1), pad_id, dtype=tgt_ids.dtype)
    dec_out[:, :T] = tgt_ids
    dec_out[np.arange(B), lengths] = eos_id
    return dec_in, dec_out


def shift_loop(tgt_ids, bos_id, eos_id, pad_id):
    ins, outs = [], []
    width = tgt_ids.shape[1] + 1
    for row in tgt_ids.tolist():
        words = [t for t in row if t != pad_id]
        pad = [pad_id] * (width - len(words) - 1)
        ins.append([bos_id] + words + pad)
        outs.append(words + [eos_id] + pad)
    return np.array(ins), np.array(outs)


def test_shift_reference_passes():
    passes(check_shift_targets(shift_ref))


def test_shift_list_version_passes():
    passes(check_shift_targets(shift_loop))


def swapped(t, b, e, p):
    i, o = shift_ref(t, b, e, p)
    return o, i


def no_bos(t, b, e, p):
    i, o = shift_ref(t, b, e, p)
    return o.copy(), o


def bos_in_target(t, b, e, p):
    i, o = shift_ref(t, b, e, p)
    return i, i.copy()


def eos_last_column(t, b, e, p):
    i, _ = shift_ref(t, b, e, p)
    return i, np.concatenate([t, np.full((t.shape[0], 1), e, t.dtype)], axis=1)


def no_eos(t, b, e, p):
    i, _ = shift_ref(t, b, e, p)
    return i, np.concatenate([t, np.full((t.shape[0], 1), p, t.dtype)], axis=1)


def constants(t, b, e, p):
    return shift_ref(t, 2, 3, 0)


def same_width(t, b, e, p):
    i, o = shift_ref(t, b, e, p)
    return i[:, :-1], o[:, :-1]


@pytest.mark.parametrize("wrong, hint", [
    (swapped, "shifted the wrong way"),
    (no_bos, "must start with <bos>"),
    (bos_in_target, "still contains <bos>"),
    (eos_last_column, "padding misaligned"),
    (no_eos, "has no <eos>"),
    (constants, "use the argument"),
    (same_width, "one column more"),
    (lambda t, b, e, p: tuple(x.astype(float) for x in shift_ref(t, b, e, p)), "integers"),
    (lambda t, b, e, p: shift_ref(t, b, e, p)[0], "return two arrays"),
])
def test_shift_wrong_answers(wrong, hint):
    fails_with(check_shift_targets(wrong), hint)


# ---------------------------------------------------------------- the GNMT length penalty

def lp_ref(log_prob, length, alpha):
    return log_prob / ((5 + length) / 6) ** alpha


def test_lp_reference_passes():
    passes(check_length_penalty(lp_ref))


def test_lp_attnkit_passes():
    passes(check_length_penalty(lambda p, n, a: p / gnmt_length_penalty(n, a)))


@pytest.mark.parametrize("wrong, hint", [
    (lambda p, n, a: p * ((5 + n) / 6) ** a, "longer hypotheses must be favoured"),
    (lambda p, n, a: p / ((5 + n) / 5) ** a, "with 6 below, not 5"),
    (lambda p, n, a: p / ((5 + n) ** a / 6), "alpha applies to the wrong thing"),
    (lambda p, n, a: p ** a / ((5 + n) / 6), "alpha applies to the wrong thing"),
    (lambda p, n, a: p / ((5 + n) / 6 * a) if a else p, "not a factor"),
    (lambda p, n, a: p / (5 + n / 6) ** a, "parentheses"),
    (lambda p, n, a: p / n ** a, "plain length normalization"),
    (lambda p, n, a: p, "log P unchanged"),
    (lambda p, n, a: 2 * lp_ref(p, n, a), "expected"),
    (lambda p, n, a: [lp_ref(p, n, a)] * 2, "return one number"),
])
def test_lp_wrong_answers(wrong, hint):
    fails_with(check_length_penalty(wrong), hint)


# ---------------------------------------------------------------- clipped n-gram precision

def grams(tokens, n):
    return Counter(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))


def prec_ref(hypotheses, references, n):
    correct = total = 0
    for hyp, ref in zip(hypotheses, references):
        ref_counts = grams(ref, n)
        for g, c in grams(hyp, n).items():
            correct += min(c, ref_counts[g])
            total += c
    return correct / total


def test_prec_reference_passes():
    passes(check_ngram_precision(prec_ref))


def test_prec_attnkit_passes():
    def via_attnkit(hyps, refs, n):
        correct, total, _, _ = bleu_statistics(hyps, refs, n)
        return correct[n - 1] / total[n - 1]
    passes(check_ngram_precision(via_attnkit))


def unclipped(H, R, n):
    correct = sum(c for h, r in zip(H, R) for g, c in grams(h, n).items() if g in grams(r, n))
    return correct / sum(sum(grams(h, n).values()) for h in H)


def joined(H, R, n):
    return prec_ref([[t for h in H for t in h]], [[t for r in R for t in r]], n)


def ref_denominator(H, R, n):
    correct = sum(min(c, grams(r, n)[g]) for h, r in zip(H, R) for g, c in grams(h, n).items())
    return correct / sum(sum(grams(r, n).values()) for r in R)


def token_denominator(H, R, n):
    correct = sum(min(c, grams(r, n)[g]) for h, r in zip(H, R) for g, c in grams(h, n).items())
    return correct / sum(len(h) for h in H)


def sentence_mean(H, R, n):
    return np.mean([prec_ref([h], [r], n) for h, r in zip(H, R) if len(h) >= n])


def all_references(H, R, n):
    pooled = sum((grams(r, n) for r in R), Counter())
    correct = sum(min(c, pooled[g]) for h in H for g, c in grams(h, n).items())
    return correct / sum(sum(grams(h, n).values()) for h in H)


def all_orders(H, R, n):
    up = lambda s: sum((grams(s, k) for k in range(1, n + 1)), Counter())  # noqa: E731
    correct = sum(min(c, up(r)[g]) for h, r in zip(H, R) for g, c in up(h).items())
    return correct / sum(sum(up(h).values()) for h in H)


@pytest.mark.parametrize("wrong, hint", [
    (unclipped, "counts not clipped"),
    (joined, "n-grams crossing sentences"),
    (ref_denominator, "wrong denominator"),
    (token_denominator, "L - n + 1"),
    (sentence_mean, "averaged the precisions"),
    (all_references, "its own reference"),
    (all_orders, "order n only"),
    (lambda H, R, n: 1.0 - prec_ref(H, R, n), "expected"),
    (lambda H, R, n: (1, 2), "as one number"),
])
def test_prec_wrong_answers(wrong, hint):
    fails_with(check_ngram_precision(wrong), hint)


def test_prec_hints_are_distinct():
    """No two wrong answers above give the same values on the hidden cases (each hint is reachable)."""
    from attnkit.exercises import translation as tr
    hints = [tr.check_ngram_precision(f).message
             for f in (unclipped, joined, ref_denominator, token_denominator, sentence_mean,
                       all_references, all_orders)]
    assert len(set(hints)) == len(hints)


# ---------------------------------------------------------------- the brevity penalty

def bp_ref(c, r):
    return 1.0 if c >= r else math.exp(1 - r / c)


def test_bp_reference_passes():
    passes(check_brevity_penalty(bp_ref))


def test_bp_attnkit_passes():
    passes(check_brevity_penalty(lambda c, r: bleu_from_statistics([1], [1], c, r).brevity_penalty))


def test_bp_numpy_passes():
    passes(check_brevity_penalty(lambda c, r: np.where(c < r, np.exp(1 - r / max(c, 1)), 1.0)))


@pytest.mark.parametrize("wrong, hint", [
    (lambda c, r: math.exp(1 - r / c), "penalty when the hypothesis is longer"),
    (lambda c, r: math.exp(1 - c / r), "penalise outputs longer"),
    (lambda c, r: math.exp(1 - r / c) if c > r else 1.0, "condition is the wrong way round"),
    (lambda c, r: math.exp(1 - c / r) if c < r else 1.0, "exp(1 - r/c) inverted"),
    (lambda c, r: math.exp(r / c - 1) if c < r else 1.0, "sign of the exponent"),
    (lambda c, r: min(1.0, c / r), "penalty is exponential"),
    (lambda c, r: 1 - r / c if c < r else 1.0, "forgot the exponential"),
    (lambda c, r: 0.5, "expected"),
    (lambda c, r: (c, r), "return one number"),
])
def test_bp_wrong_answers(wrong, hint):
    fails_with(check_brevity_penalty(wrong), hint)
