"""Evaluation metrics for generated sequences: BLEU (corpus and sentence) and exact match.

For classifiers (at the end): per-class and macro-F1, and a bootstrap over clusters.

BLEU (Papineni et al., 2002) compares a system's hypotheses with reference translations:

    BLEU = BP * exp( (1/N) * sum_{n=1..N} log p_n ),        reported as 100 * BLEU

- p_n, the modified n-gram precision, is computed over the whole corpus: each hypothesis n-gram
  counts as correct at most as many times as it occurs in the reference (with several
  references, in the reference where it occurs most), summed over sentences, divided by the
  total number of hypothesis n-grams. Clipping stops "the the the" from scoring.
- BP, the brevity penalty, punishes a corpus of hypotheses shorter than its references (the
  precisions alone would reward saying little): BP = exp(1 - r/c) when c < r, else 1, with c the
  total hypothesis length and r the total reference length (for each sentence, the reference
  whose length is closest to the hypothesis, the shorter one on ties).

A zero precision makes the geometric mean zero. Smoothing (Chen & Cherry, 2014) decides what
happens then; the names and values follow sacrebleu so the scores can be compared:

- ``"none"``: no smoothing; any p_n = 0 gives BLEU 0.
- ``"exp"`` (sacrebleu's default, NIST mteval-v13a's method): the k-th order with no match
  gets precision 1 / (2^k * total_n), so each further empty order halves it again.
- ``"floor"``: an order with no match gets precision ``smooth_value`` / total_n (default 0.1).
- ``"add-k"``: orders n >= 2 get (correct_n + k) / (total_n + k) (default k = 1).

If no n-gram of some order exists at all (every hypothesis is shorter than n), BLEU is 0, unless
``effective_order=True``, which averages only over the orders that exist: sacrebleu does that for
sentence BLEU, where short sentences are common. Inputs are token lists, already tokenized;
matching sacrebleu means calling it with ``tokenize='none'`` on the space-joined tokens.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ._checks import check_int

__all__ = ["BleuScore", "ngram_counts", "bleu_statistics", "bleu_from_statistics", "bleu_score",
           "corpus_bleu", "sentence_bleu", "exact_match"]

SMOOTH_DEFAULTS = {"none": None, "exp": None, "floor": 0.1, "add-k": 1.0}


@dataclass
class BleuScore:
    """A BLEU score (0-100) with the numbers it was computed from."""
    score: float              # 100 * BP * geometric mean of the precisions
    precisions: list[float]   # p_1..p_N in percent, after smoothing
    brevity_penalty: float    # BP in [0, 1]
    hyp_len: int              # c: total hypothesis tokens
    ref_len: int              # r: total (closest) reference tokens
    correct: list[int]        # clipped matching n-grams per order
    total: list[int]          # hypothesis n-grams per order

    def __str__(self) -> str:
        p = "/".join(f"{x:.1f}" for x in self.precisions)
        return (f"BLEU = {self.score:.2f} {p} (BP = {self.brevity_penalty:.3f}, "
                f"hyp_len = {self.hyp_len}, ref_len = {self.ref_len})")


def ngram_counts(tokens: Sequence[str], max_n: int = 4) -> Counter:
    """Counts of every n-gram (as a tuple of tokens) of orders 1..max_n in ``tokens``."""
    tokens = tuple(tokens)
    return Counter(tokens[i: i + n] for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1))


def _as_reference_list(refs, i):
    """One reference (a token list) or several (a list of token lists) -> list of token lists."""
    if isinstance(refs, str):
        raise TypeError(f"reference {i} is a str; pass token lists, e.g. ref.split()")
    refs = list(refs)
    if refs and not isinstance(refs[0], str):        # several references
        refs = [list(r) for r in refs]
        if any(isinstance(r, str) or (r and not isinstance(r[0], str)) for r in refs):
            raise TypeError(f"references for hypothesis {i} must be token lists")
        return refs
    return [refs]


def bleu_statistics(hypotheses: Sequence[Sequence[str]], references: Sequence, max_n: int = 4):
    """BLEU's sufficient statistics summed over a corpus.

    ``hypotheses``: N token lists. ``references``: N items, each one reference token list or a
    list of several. Returns ``(correct, total, hyp_len, ref_len)``: clipped matches and
    hypothesis n-gram counts per order (lists of length ``max_n``) and the two lengths.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: "
                         "pass one reference (or one list of references) per hypothesis")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    correct, total = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        if isinstance(hyp, str):
            raise TypeError(f"hypothesis {i} is a str; pass token lists, e.g. hyp.split()")
        refs = _as_reference_list(refs, i)
        hyp = list(hyp)
        hyp_len += len(hyp)
        # closest reference length, the shorter one on ties (as sacrebleu and mteval do)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        max_ref = Counter()
        for r in refs:
            max_ref |= ngram_counts(r, max_n)      # | keeps the maximum count of each n-gram
        for gram, count in ngram_counts(hyp, max_n).items():
            n = len(gram)
            total[n - 1] += count
            correct[n - 1] += min(count, max_ref[gram])
    return correct, total, hyp_len, ref_len


def bleu_from_statistics(correct, total, hyp_len: int, ref_len: int, smooth: str = "exp",
                         smooth_value: float | None = None, effective_order: bool = False) -> BleuScore:
    """BLEU from its statistics with the given smoothing (see the module docstring)."""
    if smooth not in SMOOTH_DEFAULTS:
        raise ValueError(f"unknown smoothing {smooth!r}: choose one of {list(SMOOTH_DEFAULTS)}")
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth]
    counts = ([int(c) for c in correct], [int(t) for t in total])     # reported unsmoothed
    correct, total = [float(c) for c in correct], [float(t) for t in total]
    max_n = len(correct)
    bp = 1.0
    if hyp_len < ref_len:
        bp = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    precisions = [0.0] * max_n
    result = lambda s: BleuScore(s, precisions, bp, hyp_len, ref_len, *counts)   # noqa: E731
    if not any(correct):
        return result(0.0)
    halvings, orders = 1.0, max_n
    for n in range(1, max_n + 1):
        if smooth == "add-k" and n > 1:
            correct[n - 1] += smooth_value
            total[n - 1] += smooth_value
        if total[n - 1] == 0:           # no n-grams of this order anywhere: stop here
            break
        if effective_order:
            orders = n
        if correct[n - 1] == 0:
            if smooth == "exp":
                halvings *= 2
                precisions[n - 1] = 100.0 / (halvings * total[n - 1])
            elif smooth == "floor":
                precisions[n - 1] = 100.0 * smooth_value / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    if any(p == 0.0 for p in precisions[:orders]):
        return result(0.0)              # log 0: the geometric mean is zero
    # precisions are in percent, so the mean of their logs is log(100 * geometric mean)
    return result(bp * math.exp(sum(math.log(p) for p in precisions[:orders]) / orders))


def bleu_score(hypotheses: Sequence[Sequence[str]], references: Sequence, max_n: int = 4,
               smooth: str = "exp", smooth_value: float | None = None,
               effective_order: bool = False) -> BleuScore:
    """Corpus BLEU with its details (precisions, brevity penalty, lengths); see :func:`corpus_bleu`."""
    correct, total, hyp_len, ref_len = bleu_statistics(hypotheses, references, max_n)
    return bleu_from_statistics(correct, total, hyp_len, ref_len, smooth, smooth_value, effective_order)


def corpus_bleu(hypotheses: Sequence[Sequence[str]], references: Sequence, max_n: int = 4,
                smooth: str = "exp", smooth_value: float | None = None) -> float:
    """Corpus BLEU on a 0-100 scale over pre-tokenized text.

    ``hypotheses``: N token lists. ``references``: N items, each a token list (one reference)
    or a list of token lists (several). Statistics are summed over the corpus before the
    precisions are taken (not an average of sentence scores). Smoothing ``"exp"`` (default),
    ``"none"``, ``"floor"`` or ``"add-k"`` as in sacrebleu: the result equals
    ``sacrebleu.corpus_bleu([" ".join(h) ...], [[" ".join(r) ...]], tokenize="none",
    smooth_method=smooth).score``.
    """
    return bleu_score(hypotheses, references, max_n, smooth, smooth_value).score


def sentence_bleu(hypothesis: Sequence[str], references: Sequence, max_n: int = 4,
                  smooth: str = "exp", smooth_value: float | None = None,
                  effective_order: bool = True) -> float:
    """BLEU of one hypothesis (token list) against one reference or a list of references.

    Defaults follow ``sacrebleu.sentence_bleu``: 'exp' smoothing and effective order, since a
    single short sentence often has no 4-gram. Sentence scores are noisy; prefer corpus BLEU
    for evaluating a system.
    """
    correct, total, hyp_len, ref_len = bleu_statistics([hypothesis], [references], max_n)
    return bleu_from_statistics(correct, total, hyp_len, ref_len, smooth, smooth_value,
                                effective_order).score


def exact_match(hypotheses: Sequence, references: Sequence) -> float:
    """Fraction (0 to 1) of hypotheses identical to their reference (token lists or strings)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if len(hypotheses) == 0:
        raise ValueError("exact_match of an empty corpus is undefined")
    norm = lambda x: x if isinstance(x, str) else list(x)                  # noqa: E731
    return sum(norm(h) == norm(r) for h, r in zip(hypotheses, references)) / len(hypotheses)


# ----------------------------------------------------------------------------
# classification: macro-F1, and confidence intervals that respect clusters
#
# N = number of examples, C = number of classes, G = number of clusters, K = statistics

__all__ += ["f1_per_class", "macro_f1", "cluster_bootstrap", "cluster_bootstrap_interval"]


def _labels(y, name):
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer class ids, got shape {y.shape} "
                         f"and dtype {y.dtype}")
    return y


def f1_per_class(y_true, y_pred, num_classes=None) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN) of every class 0..C-1, shape (C,); 0 for a class never true nor predicted.

    ``num_classes`` defaults to 1 + the largest id in either array. Equals scikit-learn's
    ``f1_score(y_true, y_pred, labels=range(C), average=None, zero_division=0)``.
    """
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    if y_true.size == 0:
        raise ValueError("F1 of no examples is undefined")
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("class ids must be >= 0")
    C = int(max(y_true.max(), y_pred.max())) + 1 if num_classes is None else int(num_classes)
    if max(y_true.max(), y_pred.max()) >= C:
        raise ValueError(f"a class id is >= num_classes={C}; pass the number of classes")
    tp = np.bincount(y_true[y_true == y_pred], minlength=C)                 # (C,)
    n_true = np.bincount(y_true, minlength=C)                               # (C,) TP + FN
    n_pred = np.bincount(y_pred, minlength=C)                               # (C,) TP + FP
    denom = n_true + n_pred                                                 # (C,) 2TP + FP + FN
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)          # (C,)


def macro_f1(y_true, y_pred, num_classes=None) -> float:
    """The unweighted mean of the per-class F1 scores: every class counts the same, however small.

    Accuracy is dominated by the large classes; macro-F1 is not. Equals scikit-learn's
    ``f1_score(..., labels=range(C), average="macro", zero_division=0)``.
    """
    return float(np.mean(f1_per_class(y_true, y_pred, num_classes)))


def cluster_bootstrap(values, clusters, n_boot=2000, seed=0) -> np.ndarray:
    """Bootstrap means of ``values`` resampling whole clusters: shape (n_boot,), or (n_boot, K).

    values: (N,) or (N, K) per-example numbers (1/0 for right/wrong, or a difference of two
    models' right/wrong on the same examples). clusters: (N,) labels (movie ids, say); examples
    of one cluster are drawn together. Each replicate draws G clusters with replacement from the
    G clusters and returns the mean over all the examples they hold (a ratio of sums, so large
    clusters weigh more, as in the plain mean). When examples within a cluster are alike, this
    spread is wider than the example-level bootstrap's, and the honest one.
    """
    from .seeding import make_rng

    v = np.asarray(values, dtype=np.float64)
    one = v.ndim == 1
    v = v[:, None] if one else v                                            # (N, K)
    if v.ndim != 2:
        raise ValueError(f"values must have shape (N,) or (N, K), got {np.shape(values)}")
    clusters = np.asarray(clusters)
    if clusters.shape != (v.shape[0],):
        raise ValueError(f"clusters must have shape ({v.shape[0]},), one label per value, "
                         f"got {clusters.shape}")
    check_int(n_boot, "n_boot", 1)
    _, group = np.unique(clusters, return_inverse=True)                    # (N,)
    G = int(group.max()) + 1
    if G < 2:
        raise ValueError("a cluster bootstrap needs at least 2 clusters")
    sums = np.zeros((G, v.shape[1]))                                        # (G, K)
    np.add.at(sums, group, v)
    sizes = np.bincount(group, minlength=G).astype(np.float64)              # (G,)
    draw = make_rng(seed).integers(0, G, size=(int(n_boot), G))             # (n_boot, G)
    means = sums[draw].sum(axis=1) / sizes[draw].sum(axis=1)[:, None]      # (n_boot, K)
    return means[:, 0] if one else means


def cluster_bootstrap_interval(values, clusters, level=0.95, n_boot=2000, seed=0):
    """A percentile interval (low, high) for the mean of ``values``, resampling whole clusters.

    See :func:`cluster_bootstrap`; ``level`` is the coverage (0.95: the 2.5th and 97.5th
    percentiles of the bootstrap means). With (N, K) values, low and high have shape (K,).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    means = cluster_bootstrap(values, clusters, n_boot, seed)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return (float(lo), float(hi)) if np.ndim(lo) == 0 else (lo, hi)
