"""BLEU and exact match: hand-computed cases, and agreement with sacrebleu on random corpora."""
import math

import numpy as np
import pytest

from attnkit.metrics import (bleu_score, bleu_statistics, corpus_bleu, exact_match, ngram_counts,
                             sentence_bleu)

sacrebleu = pytest.importorskip("sacrebleu")


def test_ngram_counts():
    c = ngram_counts("a b a b".split(), 2)
    assert c[("a",)] == 2 and c[("a", "b")] == 2 and c[("b", "a")] == 1
    assert sum(c.values()) == 4 + 3


def test_identical_corpus_scores_100():
    hyps = [["the", "cat", "sat", "on", "the", "mat"], list("abcdefg")]
    assert corpus_bleu(hyps, hyps, smooth="none") == pytest.approx(100.0)


def test_clipping_by_hand():
    # Papineni et al.'s example: "the the the the the the the" against "the cat is on the mat":
    # 'the' counts at most twice, so p_1 = 2/7.
    hyp, ref = ["the"] * 7, "the cat is on the mat".split()
    correct, total, hyp_len, ref_len = bleu_statistics([hyp], [ref], max_n=1)
    assert (correct, total, hyp_len, ref_len) == ([2], [7], 7, 6)
    assert corpus_bleu([hyp], [ref], max_n=1, smooth="none") == pytest.approx(100 * 2 / 7)


def test_hand_computed_bleu_with_brevity_penalty():
    hyp = "the cat sat on mat".split()            # 5 tokens
    ref = "the cat sat on the mat".split()        # 6 tokens
    # matches: 1-grams 5/5, 2-grams 3/4 (the cat, cat sat, sat on), 3-grams 2/3, 4-grams 1/2
    p = [5 / 5, 3 / 4, 2 / 3, 1 / 2]
    bp = math.exp(1 - 6 / 5)
    expected = 100 * bp * math.exp(sum(math.log(x) for x in p) / 4)
    s = bleu_score([hyp], [ref], smooth="none")
    assert s.correct == [5, 3, 2, 1] and s.total == [5, 4, 3, 2]
    assert s.brevity_penalty == pytest.approx(bp)
    assert s.score == pytest.approx(expected)


def test_no_smoothing_zero_order_gives_zero_and_exp_does_not():
    hyp, ref = "a b c d".split(), "a b x d".split()        # no 3-gram or 4-gram match
    assert corpus_bleu([hyp], [ref], smooth="none") == 0.0
    # exp smoothing: p_3 = 1/(2*2), p_4 = 1/(4*1); p_1 = 3/4, p_2 = 1/3
    expected = 100 * math.exp((math.log(3 / 4) + math.log(1 / 3) + math.log(1 / 4) + math.log(1 / 4)) / 4)
    assert corpus_bleu([hyp], [ref], smooth="exp") == pytest.approx(expected)


def test_multiple_references_clip_by_max_and_use_closest_length():
    hyp = "a a b".split()
    refs = ["a b".split(), "a a c d".split()]
    correct, total, hyp_len, ref_len = bleu_statistics([hyp], [refs], max_n=2)
    assert correct == [3, 2] and total == [3, 2]     # 'a' twice (2nd ref), 'b' once; 'a b', 'a a'
    assert ref_len == 2                                # |3-2| = |3-4|: the shorter wins


def test_sentence_bleu_short_hypothesis_uses_effective_order():
    hyp, ref = ["hello", "world"], ["hello", "world"]
    assert sentence_bleu(hyp, ref) == pytest.approx(100.0)
    assert corpus_bleu([hyp], [ref], smooth="none") == 0.0   # no 3-grams: plain BLEU is 0


def _random_corpus(rng, n, vocab, max_len, min_len=0):
    words = [f"w{i}" for i in range(vocab)]
    return [list(rng.choice(words, size=rng.integers(min_len, max_len + 1))) for _ in range(n)]


@pytest.mark.parametrize("smooth", ["exp", "none", "floor", "add-k"])
@pytest.mark.parametrize("case", range(8))
def test_corpus_bleu_matches_sacrebleu(smooth, case):
    rng = np.random.default_rng(100 + case)
    # cases vary: tiny vocabularies (many matches), large ones (zero-match orders),
    # hypotheses shorter than 4 tokens (empty orders), empty hypotheses, longer hypotheses
    # two orders with no match (exp halves twice), references shorter than hypotheses (BP = 1)
    vocab, max_len, min_len = [(4, 12, 1), (40, 8, 0), (200, 6, 1), (6, 3, 0), (10, 20, 5),
                               (3, 2, 1), (60, 8, 5), (5, 12, 6)][case]
    n = int(rng.integers(1, 30))
    hyps = _random_corpus(rng, n, vocab, max_len, min_len)
    refs = [h[: len(h) // 2] + r for h, r in zip(hyps, _random_corpus(rng, n, vocab, max_len, 1))]
    if case == 6:
        refs = [r[len(h) // 2:] for h, r in zip(hyps, refs)]    # no copied halves: few matches
    if case == 7:
        refs = [r[:4] for r in refs]
    mine = corpus_bleu(hyps, refs, smooth=smooth)
    theirs = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]],
                                   tokenize="none", smooth_method=smooth).score
    assert mine == pytest.approx(theirs, abs=0.01)


def test_corpus_bleu_matches_sacrebleu_with_two_references():
    rng = np.random.default_rng(7)
    hyps = _random_corpus(rng, 25, 8, 10, 1)
    refs_a, refs_b = _random_corpus(rng, 25, 8, 10, 1), _random_corpus(rng, 25, 8, 14, 1)
    mine = corpus_bleu(hyps, [[a, b] for a, b in zip(refs_a, refs_b)])
    theirs = sacrebleu.corpus_bleu([" ".join(h) for h in hyps],
                                   [[" ".join(r) for r in refs_a], [" ".join(r) for r in refs_b]],
                                   tokenize="none").score
    assert mine > 0 and mine == pytest.approx(theirs, abs=0.01)


@pytest.mark.parametrize("seed", range(5))
def test_sentence_bleu_matches_sacrebleu(seed):
    rng = np.random.default_rng(seed)
    hyp, ref = _random_corpus(rng, 2, 6, 9, 1)
    theirs = sacrebleu.sentence_bleu(" ".join(hyp), [" ".join(ref)], tokenize="none").score
    assert sentence_bleu(hyp, ref) == pytest.approx(theirs, abs=0.01)


def test_bleu_rejects_strings_and_mismatched_lengths():
    with pytest.raises(TypeError, match="split"):
        corpus_bleu(["a b c"], [["a", "b"]])
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        corpus_bleu([["a"], ["b"]], [["a"]])
    with pytest.raises(ValueError, match="unknown smoothing"):
        corpus_bleu([["a"]], [["a"]], smooth="laplace")


def test_exact_match():
    assert exact_match([["a", "b"], ["c"], ["d"]], [["a", "b"], ["c", "x"], ["d"]]) == pytest.approx(2 / 3)
    assert exact_match(["1990-03-08"], ["1990-03-08"]) == 1.0
    with pytest.raises(ValueError):
        exact_match([["a"]], [])


# ----------------------------------------------------------------------------
# classification metrics: macro-F1 and the cluster bootstrap

from attnkit.metrics import (cluster_bootstrap, cluster_bootstrap_interval, f1_per_class,
                             macro_f1)


def test_f1_by_hand():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    # class 0: TP 1, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1, FN 0 -> 4/5; class 2: TP 0 -> 0
    assert f1_per_class(y_true, y_pred) == pytest.approx([0.5, 0.8, 0.0])
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.8) / 3)
    # a class that never occurs nor is predicted counts as 0 when num_classes says it exists
    assert macro_f1(y_true, y_pred, num_classes=4) == pytest.approx((0.5 + 0.8) / 4)


@pytest.mark.parametrize("seed", range(4))
def test_macro_f1_matches_sklearn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    C = int(rng.integers(2, 12))
    y_true = rng.integers(0, C, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, C, size=200))
    theirs = metrics.f1_score(y_true, y_pred, labels=range(C), average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred, C) == pytest.approx(theirs)
    per = metrics.f1_score(y_true, y_pred, labels=range(C), average=None, zero_division=0)
    assert np.allclose(f1_per_class(y_true, y_pred, C), per)


def test_macro_f1_weighs_small_classes_like_large_ones():
    y_true = np.array([0] * 90 + [1] * 10)
    y_pred = np.zeros(100, dtype=int)             # always the majority: 90% accuracy
    assert macro_f1(y_true, y_pred) == pytest.approx((2 * 90 / 190 + 0) / 2)


def test_f1_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        macro_f1(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="integer class ids"):
        macro_f1(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="num_classes"):
        macro_f1(np.array([0, 3]), np.array([0, 1]), num_classes=2)


def test_cluster_bootstrap_of_singletons_is_the_plain_bootstrap():
    # one example per cluster: the replicates are ordinary bootstrap means
    v = np.arange(10.0)
    means = cluster_bootstrap(v, np.arange(10), n_boot=500, seed=3)
    draw = np.random.default_rng(3).integers(0, 10, size=(500, 10))
    assert np.allclose(means, v[draw].mean(axis=1))


def test_cluster_bootstrap_draws_whole_clusters():
    # two clusters, all 1s and all 0s, of sizes 3 and 1: a replicate is one of 0, 3/4, 1
    v = np.array([1.0, 1, 1, 0])
    means = cluster_bootstrap(v, ["a", "a", "a", "b"], n_boot=400, seed=0)
    assert set(np.round(means, 6)) <= {0.0, 0.75, 1.0}
    assert {0.0, 0.75, 1.0} <= set(np.round(means, 6))


def test_cluster_interval_is_wider_when_clusters_are_alike():
    # each cluster of 20 shares one coin flip: 20 times fewer independent draws than examples
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(50), 20)
    v = np.repeat(rng.random(50) < 0.5, 20).astype(float)
    lo_c, hi_c = cluster_bootstrap_interval(v, clusters, seed=1)
    lo_s, hi_s = cluster_bootstrap_interval(v, np.arange(v.size), seed=1)
    assert lo_c < v.mean() < hi_c
    assert (hi_c - lo_c) > 3 * (hi_s - lo_s)
    # the cluster interval is about the binomial one of 50 draws: +-1.96 * sqrt(pq / 50)
    half = 1.96 * np.sqrt(v.mean() * (1 - v.mean()) / 50)
    assert (hi_c - lo_c) / 2 == pytest.approx(half, rel=0.2)


def test_cluster_bootstrap_several_columns_and_errors():
    v = np.stack([np.ones(6), np.zeros(6)], axis=1)                       # (6, 2)
    lo, hi = cluster_bootstrap_interval(v, [0, 0, 1, 1, 2, 2], seed=0)
    assert lo.shape == (2,) and np.allclose(lo, [1, 0]) and np.allclose(hi, [1, 0])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        cluster_bootstrap(np.ones(3), [0, 0, 0])
    with pytest.raises(ValueError, match="one label per value"):
        cluster_bootstrap(np.ones(3), [0, 1])
    with pytest.raises(ValueError, match="level"):
        cluster_bootstrap_interval(np.ones(3), [0, 1, 2], level=95)
