"""Checkers for chapters 14 and 15, classifying text: pooling, honest intervals, n-grams, macro-F1.

    from attnkit.exercises.classification import check_masked_mean
    check_masked_mean(my_masked_mean)   # -> PASSED ... or NOT YET ... with a hint

Each checker knows the usual mistakes for its exercise and names the one it recognises. The
references are attnkit's own functions (``attnkit.metrics``, ``attnkit.data.surnames``).
"""
import numpy as np

from ..data.surnames import char_ngrams
from ..metrics import cluster_bootstrap_interval, f1_per_class, macro_f1
from .core import Hint, call, cases_rng, check, expect_array, expect_number

__all__ = ["check_masked_mean", "check_cluster_interval", "check_char_ngrams", "check_macro_f1"]


# ----------------------------------------------------------------------------
# chapter 14: mean pooling that ignores padding

def _masked_mean_cases(fn):
    rng = cases_rng(1415)
    B, T, d = 4, 6, 3
    h = rng.normal(size=(B, T, d))                                          # (B, T, d)
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(T) < lengths[:, None]                                  # (B, T)
    h[~mask] = rng.normal(50.0, 10.0, size=(int((~mask).sum()), d))         # loud padding
    out = expect_array(call(fn, h, mask), (B, d), "the pooled vectors")
    expected = (h * mask[..., None]).sum(axis=1) / lengths[:, None]         # (B, d)
    if np.allclose(out, expected):
        pass
    elif np.allclose(out, h.mean(axis=1)):
        raise Hint("you averaged over all T positions, padding included: multiply by the mask "
                   "before summing, and divide by the number of real tokens.")
    elif np.allclose(out, (h * mask[..., None]).sum(axis=1) / T):
        raise Hint("the padding is zeroed, but you divided by T: divide each row by its own number "
                   "of real tokens, mask.sum(axis=1, keepdims=True).")
    elif np.allclose(out, (h * mask[..., None]).sum(axis=1)):
        raise Hint("that is the sum over the real tokens: divide it by their number, "
                   "mask.sum(axis=1, keepdims=True), to get the mean.")
    else:
        raise Hint("the pooled vectors differ from the mean of each row's real tokens: "
                   "sum(h * mask[..., None], axis=1) / mask.sum(axis=1, keepdims=True).")
    # the padding must not matter at all: the same row alone, without its padding
    short = call(fn, h[1:2, :3], mask[1:2, :3])
    if not np.allclose(expect_array(short, (1, d), "the pooled vector of a row without padding"),
                       out[1:2]):
        raise Hint("a row gives a different vector when its padding is cut off: the output must "
                   "ignore padding entirely.")
    if not np.issubdtype(np.asarray(call(fn, h.astype(np.float32), mask)).dtype, np.floating):
        raise Hint("the result should be floating point")


def check_masked_mean(fn):
    """Check fn(h, mask) -> (B, d): mean of h (B, T, d) over the positions where mask (B, T) is True."""
    return check("masked_mean", fn, _masked_mean_cases)


# ----------------------------------------------------------------------------
# chapter 14: a bootstrap interval that resamples movies, not snippets

def _clustered_data(rng):
    # 40 clusters of uneven size; a cluster's examples share most of their value, and small
    # clusters are mostly 1s, large ones mostly 0s (so the cluster size matters)
    sizes = rng.integers(5, 60, size=40)
    level = rng.random(40) < np.where(sizes < 30, 0.8, 0.25)                # (40,)
    clusters = np.repeat(np.arange(40), sizes)                              # (N,)
    flip = rng.random(clusters.size) < 0.1
    values = (level[clusters] ^ flip).astype(np.float64)                    # (N,)
    order = rng.permutation(values.size)            # clusters not stored contiguously
    return values[order], clusters[order], sizes


def _cluster_cases(fn):
    rng = cases_rng(1415)
    values, clusters, sizes = _clustered_data(rng)
    out = call(fn, values, clusters, 4000, cases_rng(7))
    if out is None:
        raise NotImplementedError
    try:
        lo, hi = (float(x) for x in out)
    except (TypeError, ValueError):
        raise Hint(f"return the interval as two numbers (low, high), got {out!r}") from None
    ref_lo, ref_hi = cluster_bootstrap_interval(values, clusters, n_boot=4000,
                                                seed=cases_rng(7))
    ref_width, width = ref_hi - ref_lo, hi - lo
    if not lo < hi:
        raise Hint(f"low ({lo:.4f}) should be below high ({hi:.4f}): take the 2.5th and 97.5th "
                   "percentiles of the bootstrap means, in that order.")
    if not (lo < values.mean() < hi):
        raise Hint(f"the interval [{lo:.4f}, {hi:.4f}] does not contain the mean {values.mean():.4f} "
                   "of the data: each bootstrap mean should be the mean over all the examples "
                   "of the drawn clusters.")
    if width < 0.5 * ref_width:
        raise Hint(f"your interval is {width:.4f} wide, the cluster bootstrap's about "
                   f"{ref_width:.4f}: you seem to resample single examples. Draw whole clusters "
                   "(as many as there are, with replacement) and pool their examples.")
    cluster_mean = np.array([values[clusters == g].mean() for g in range(len(sizes))])
    unweighted = cluster_mean.mean()
    centre, ref_centre = (lo + hi) / 2, (ref_lo + ref_hi) / 2
    if abs(centre - ref_centre) > 0.25 * ref_width and abs(centre - unweighted) < abs(
            centre - ref_centre):
        raise Hint("your interval is centred on the mean of the cluster means, which weighs a "
                   "cluster of 5 examples like one of 50: average over the examples of the drawn "
                   "clusters (sum of their values / number of their examples).")
    if abs(width - ref_width) > 0.2 * ref_width or abs(centre - ref_centre) > 0.2 * ref_width:
        raise Hint(f"your interval [{lo:.4f}, {hi:.4f}] is far from the cluster bootstrap's "
                   f"[{ref_lo:.4f}, {ref_hi:.4f}]: draw cluster ids with replacement, pool the "
                   "examples of the drawn clusters, take their mean, repeat n_boot times, and "
                   "return the 2.5th and 97.5th percentiles.")


def check_cluster_interval(fn):
    """Check fn(values, clusters, n_boot, rng) -> (low, high), a 95% bootstrap interval over clusters."""
    return check("cluster_interval", fn, _cluster_cases)


# ----------------------------------------------------------------------------
# chapter 15: character n-grams with boundary markers

_NGRAM_NAMES = ["Kowalski", "Van Dyk", "O Neill", "Li", "de la Cruz", "Papadopoulos", "MacMahon"]


def _as_list(out, name, n):
    if out is None:
        raise NotImplementedError
    if isinstance(out, str) or not all(isinstance(g, str) for g in out):
        raise Hint(f"return a list of strings (the n-grams); for {name!r}, n={n} you returned "
                   f"{out!r}")
    return list(out)


def _ngram_cases(fn):
    for name in _NGRAM_NAMES:
        for n in (1, 2, 3):
            out = _as_list(call(fn, name, n), name, n)
            expected = char_ngrams(name, n)
            if sorted(out) == sorted(expected):
                continue
            if any(len(g) != n for g in out):
                raise Hint(f"every n-gram has n characters; for {name!r}, n={n} you returned "
                           f"{[g for g in out if len(g) != n][:3]}")
            marked = " " + name + " "
            whole = [marked[i: i + n] for i in range(len(marked) - n + 1)]
            plain = [w[i: i + n] for w in name.split() for i in range(len(w) - n + 1)]
            lower = char_ngrams(name.lower(), n)
            if sorted(out) == sorted(plain):
                raise Hint(f"no boundary markers: read each word as ' ' + word + ' ', so that "
                           f"beginnings and endings become n-grams of their own (for {name!r}, "
                           f"n={n}, expected {expected})")
            if sorted(out) == sorted(whole):
                raise Hint(f"you marked the ends of the whole name, but n-grams should not run "
                           f"across a space inside it: split the name into words and mark each "
                           f"(for {name!r}, n={n}, expected {expected})")
            if sorted(out) == sorted(lower):
                raise Hint("keep the case: both models of the chapter see the name as written")
            if sorted(set(out)) == sorted(set(expected)):
                raise Hint(f"return every occurrence, repeats included: the count of an n-gram "
                           f"matters (for {name!r}, n={n}, expected {expected})")
            raise Hint(f"for {name!r}, n={n} you returned {sorted(out)}, expected {sorted(expected)}")


def check_char_ngrams(fn):
    """Check fn(name, n) -> list of the character n-grams of each word marked ' ' + word + ' '."""
    return check("char_ngrams", fn, _ngram_cases)


# ----------------------------------------------------------------------------
# chapter 15: macro-F1

def _f1_cases(fn):
    rng = cases_rng(1415)
    C = 6
    # uneven classes; class 5 is neither true nor predicted anywhere (its F1 counts as 0)
    y_true = rng.choice(5, size=300, p=[0.5, 0.25, 0.15, 0.07, 0.03])
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.choice(5, size=300))
    out = expect_number(call(fn, y_true, y_pred, C), "as macro-F1")
    expected = macro_f1(y_true, y_pred, C)
    per = f1_per_class(y_true, y_pred, C)
    if np.isclose(out, expected):
        return
    if np.isclose(out, np.mean(y_true == y_pred)):
        raise Hint("that is the accuracy: compute the F1 score of every class separately, "
                   "2 TP / (2 TP + FP + FN), and average them with equal weights.")
    support = np.bincount(y_true, minlength=C)
    if np.isclose(out, np.sum(per * support) / support.sum()):
        raise Hint("you weighted each class's F1 by its number of examples: macro-F1 gives every "
                   "class the same weight, np.mean over the C per-class scores.")
    present = np.union1d(y_true, y_pred)
    if np.isclose(out, per[present].mean()):
        raise Hint(f"there are {C} classes (num_classes): a class that is never true nor "
                   "predicted still counts, with F1 = 0.")
    if np.isnan(out):
        raise Hint("a class with no true and no predicted example gives 0/0: count its F1 as 0.")
    raise Hint(f"you give {out:.4f}, expected {expected:.4f}: per class c, TP = #(true c and "
               "predicted c), FP = #(predicted c, true other), FN = #(true c, predicted other); "
               "F1_c = 2 TP / (2 TP + FP + FN), then the mean over c.")


def check_macro_f1(fn):
    """Check fn(y_true, y_pred, num_classes) -> the unweighted mean of the per-class F1 scores."""
    return check("macro_f1", fn, _f1_cases)
