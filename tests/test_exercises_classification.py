"""The checkers of chapters 14 and 15 (classification) pass the reference solutions and fail typical
wrong answers with their specific hint."""
import numpy as np
import pytest

from attnkit.data.surnames import char_ngrams
from attnkit.exercises.classification import (check_char_ngrams, check_cluster_interval,
                                              check_macro_f1, check_masked_mean)
from attnkit.metrics import macro_f1

from attnkit.exercises.core import assert_fails_with as fails_with, assert_passes as passes


def todo(*args):
    ...


@pytest.mark.parametrize("checker", [check_masked_mean, check_cluster_interval,
                                     check_char_ngrams, check_macro_f1])
def test_not_done(checker):
    fails_with(checker(todo), "not done yet")


# ---------------------------------------------------------------- masked mean pooling

def masked_mean_ref(h, mask):
    m = mask[..., None].astype(h.dtype)                                    # (B, T, 1)
    return (h * m).sum(axis=1) / m.sum(axis=1)                             # (B, d)


def test_masked_mean_reference_passes():
    passes(check_masked_mean(masked_mean_ref))


@pytest.mark.parametrize("wrong, hint", [
    (lambda h, mask: h.mean(axis=1), "padding included"),
    (lambda h, mask: (h * mask[..., None]).sum(axis=1) / h.shape[1], "divided by T"),
    (lambda h, mask: (h * mask[..., None]).sum(axis=1), "that is the sum"),
    (lambda h, mask: (h * mask[..., None]).mean(axis=2), "shape"),
    (lambda h, mask: np.median(np.where(mask[..., None], h, 0), axis=1), "differ from the mean"),
    (lambda h, mask: 1 / 0, "ZeroDivisionError"),
])
def test_masked_mean_mistakes(wrong, hint):
    fails_with(check_masked_mean(wrong), hint)


# ---------------------------------------------------------------- cluster bootstrap

def cluster_interval_ref(values, clusters, n_boot, rng):
    ids = np.unique(clusters)
    sums = np.array([values[clusters == g].sum() for g in ids])
    sizes = np.array([np.sum(clusters == g) for g in ids])
    draw = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    means = sums[draw].sum(axis=1) / sizes[draw].sum(axis=1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_cluster_interval_reference_passes():
    passes(check_cluster_interval(cluster_interval_ref))


def test_cluster_interval_other_random_draws_pass():
    # another generator draws other replicates: the interval moves a little, still accepted
    passes(check_cluster_interval(
        lambda v, c, n, rng: cluster_interval_ref(v, c, n, np.random.default_rng(123))))


def snippet_bootstrap(values, clusters, n_boot, rng):
    draw = rng.integers(0, values.size, size=(n_boot, values.size))
    return tuple(np.percentile(values[draw].mean(axis=1), [2.5, 97.5]))


def mean_of_cluster_means(values, clusters, n_boot, rng):
    ids = np.unique(clusters)
    means = np.array([values[clusters == g].mean() for g in ids])
    draw = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    return tuple(np.percentile(means[draw].mean(axis=1), [2.5, 97.5]))


@pytest.mark.parametrize("wrong, hint", [
    (snippet_bootstrap, "resample single examples"),
    (mean_of_cluster_means, "mean of the cluster means"),
    (lambda v, c, n, rng: cluster_interval_ref(v, c, n, rng)[::-1], "should be below"),
    (lambda v, c, n, rng: cluster_interval_ref(v, c, n, rng)[0], "two numbers"),
    (lambda v, c, n, rng: tuple(np.array(cluster_interval_ref(v, c, n, rng)) + 0.3),
     "does not contain the mean"),
    (lambda v, c, n, rng: tuple(np.percentile(
        cluster_interval_ref_means(v, c, n, rng), [0.5, 99.5])), "far from"),
])
def test_cluster_interval_mistakes(wrong, hint):
    fails_with(check_cluster_interval(wrong), hint)


def cluster_interval_ref_means(values, clusters, n_boot, rng):
    ids = np.unique(clusters)
    sums = np.array([values[clusters == g].sum() for g in ids])
    sizes = np.array([np.sum(clusters == g) for g in ids])
    draw = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    return sums[draw].sum(axis=1) / sizes[draw].sum(axis=1)


# ---------------------------------------------------------------- character n-grams

def ngrams_ref(name, n):
    grams = []
    for word in name.split():
        w = " " + word + " "
        grams += [w[i: i + n] for i in range(len(w) - n + 1)]
    return grams


def test_char_ngrams_reference_and_library_pass():
    passes(check_char_ngrams(ngrams_ref))
    passes(check_char_ngrams(char_ngrams))
    passes(check_char_ngrams(lambda name, n: tuple(reversed(ngrams_ref(name, n)))))


@pytest.mark.parametrize("wrong, hint", [
    (lambda name, n: [w[i: i + n] for w in name.split() for i in range(len(w) - n + 1)],
     "no boundary markers"),
    (lambda name, n: [(" " + name + " ")[i: i + n] for i in range(len(name) + 3 - n)],
     "split the name into words"),
    (lambda name, n: ngrams_ref(name.lower(), n), "keep the case"),
    (lambda name, n: sorted(set(ngrams_ref(name, n))), "repeats included"),
    (lambda name, n: ngrams_ref(name, n + 1), "n characters"),
    (lambda name, n: " ".join(ngrams_ref(name, n)), "list of strings"),
])
def test_char_ngrams_mistakes(wrong, hint):
    fails_with(check_char_ngrams(wrong), hint)


# ---------------------------------------------------------------- macro-F1

def macro_f1_ref(y_true, y_pred, num_classes):
    scores = []
    for c in range(num_classes):
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def test_macro_f1_reference_and_library_pass():
    passes(check_macro_f1(macro_f1_ref))
    passes(check_macro_f1(macro_f1))


def weighted_f1(y_true, y_pred, num_classes):
    from sklearn.metrics import f1_score
    return f1_score(y_true, y_pred, average="weighted", zero_division=0)


def present_only(y_true, y_pred, num_classes):
    from sklearn.metrics import f1_score
    return f1_score(y_true, y_pred, average="macro", zero_division=0)


def nan_for_empty(y_true, y_pred, num_classes):
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.mean([2 * np.sum((y_true == c) & (y_pred == c))
                              / (np.sum(y_true == c) + np.sum(y_pred == c))
                              for c in range(num_classes)]))


@pytest.mark.parametrize("wrong, hint", [
    (lambda t, p, c: np.mean(t == p), "that is the accuracy"),
    (weighted_f1, "weighted each class"),
    (present_only, "still counts"),
    (nan_for_empty, "0/0"),
    (lambda t, p, c: macro_f1_ref(t, p, c) / 2, "expected"),
    (lambda t, p, c: [0.5, 0.5], "one number"),
])
def test_macro_f1_mistakes(wrong, hint):
    fails_with(check_macro_f1(wrong), hint)
