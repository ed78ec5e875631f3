"""Checkers for chapters 3 and 4 (multi-head attention): counting, and splitting/merging heads.

    from attnkit.exercises.multi_head import (check_mha_param_count, check_mha_flops,
                                              check_split_heads, check_merge_heads)
    check_mha_param_count(my_count)   # my_count(d_model, num_heads, bias) -> int
    check_mha_flops(my_flops)         # my_flops(T, d_model, num_heads) -> int
    check_split_heads(my_split)       # my_split(x (B, T, d_model), num_heads) -> (B, h, T, d_k)
    check_merge_heads(my_merge)       # my_merge(x (B, h, T, d_k)) -> (B, T, d_model)
"""
import numpy as np

from ..nn import split_heads
from .core import Hint, call, cases_rng, check, expect_array

__all__ = ["check_mha_param_count", "check_mha_flops", "check_split_heads", "check_merge_heads"]


# the answers stay private: a learner importing them would skip the exercise
def _mha_param_count(d_model, num_heads, bias=True):
    """Parameters of multi-head attention: four (d_model, d_model) matrices and, with bias, four (d_model,)
    vectors."""
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


def _mha_flops(T, d_model, num_heads):
    """FLOPs of multi-head self-attention on one sequence of length T (one multiply-add = 2 FLOPs).

    Counts the matrix products only: Q, K, V and output projections 4 * 2 T d_model^2, scores
    h * 2 T^2 d_k and weighted sums h * 2 T^2 d_k (with h d_k = d_model); softmax and biases are
    O(T^2 h) and O(T d_model) and left out.
    """
    return 8 * T * d_model ** 2 + 4 * T ** 2 * d_model


def _as_int(out, what):
    if out is None:
        raise NotImplementedError
    if isinstance(out, (bool, np.bool_)) or not isinstance(out, (int, np.integer, float, np.floating)):
        raise Hint(f"{what} should be a number, got {type(out).__name__}")
    if float(out) != int(out):
        raise Hint(f"{what} should be a whole number, got {out}")
    return int(out)


def _param_cases(fn):
    for d_model, h, bias in ((8, 2, True), (12, 3, False), (64, 8, True), (64, 1, True)):
        got = _as_int(call(fn, d_model, h, bias), f"the count for d_model={d_model}, h={h}, bias={bias}")
        want = _mha_param_count(d_model, h, bias)
        if got == want:
            continue
        d_k = d_model // h
        where = f"for d_model={d_model}, num_heads={h}, bias={bias} you count {got}"
        if got == h * 4 * d_model * d_model + (h * 4 * d_model if bias else 0) or \
                got == (3 * h * d_model * d_model + d_model * d_model
                        + (3 * h * d_model + d_model if bias else 0)):
            raise Hint(f"{where}: each head's W_i^Q is (d_model, d_k) with d_k = d_model / h = {d_k}, not "
                       "(d_model, d_model), so the h heads together have d_model^2 weights per projection.")
        if got == 3 * d_model * d_model + (3 * d_model if bias else 0):
            raise Hint(f"{where}: you left out the output projection W^O (and its bias) that mixes the "
                       "concatenated heads.")
        if bias and got == 4 * d_model * d_model:
            raise Hint(f"{where}: with bias=True each of the four projections also has a bias vector "
                       "of d_model entries.")
        if not bias and got == 4 * d_model * d_model + 4 * d_model:
            raise Hint(f"{where}: with bias=False there are no bias vectors to count.")
        raise Hint(f"{where}, expected {want}. Count W^Q, W^K, W^V, W^O and, with bias, b^Q, b^K, b^V, b^O.")


def check_mha_param_count(fn):
    """Check fn(d_model, num_heads, bias) -> number of parameters of multi-head attention."""
    return check("parameters of multi-head attention", fn, _param_cases,
                 "4 d_model^2 (+ 4 d_model with bias): the number of heads does not change it.")


def _flop_cases(fn):
    for T, d_model, h in ((10, 8, 2), (100, 64, 8), (7, 12, 3), (1000, 64, 4)):
        got = _as_int(call(fn, T, d_model, h), f"the FLOP count for T={T}, d_model={d_model}, h={h}")
        want = _mha_flops(T, d_model, h)
        if got == want:
            continue
        where = f"for T={T}, d_model={d_model}, num_heads={h} you count {got:,}"
        if got * 2 == want:
            raise Hint(f"{where}, half of the expected {want:,}: a product of (m, n) and (n, p) "
                       "matrices takes m p n multiplications and m p n additions, 2 m n p FLOPs.")
        if got == 8 * T * d_model ** 2 + 4 * h * T ** 2 * d_model:
            raise Hint(f"{where}: each head works in d_k = d_model / h dimensions, so the h heads' "
                       "score matrices together cost 2 T^2 d_model, not h times that.")
        if got == 6 * T * d_model ** 2 + 4 * T ** 2 * d_model:
            raise Hint(f"{where}: you left out the output projection (another 2 T d_model^2).")
        if got == 8 * T * d_model ** 2 + 2 * T ** 2 * d_model:
            raise Hint(f"{where}: count both T x T products, the scores Q K^T and the weighted sum "
                       "of the values, 2 T^2 d_k FLOPs each per head.")
        raise Hint(f"{where}, expected {want:,}. Count the four projections and, per head, "
                   "the scores and the weighted sum (2 m n p FLOPs for an (m, n) @ (n, p) product).")


def check_mha_flops(fn):
    """Check fn(T, d_model, num_heads) -> FLOPs of the matrix products of multi-head self-attention."""
    return check("FLOPs of multi-head attention", fn, _flop_cases,
                 "8 T d_model^2 + 4 T^2 d_model: linear in T for the projections, quadratic for attention.")


_split_ref = split_heads   # the library's


def _split_cases(fn):
    rng = cases_rng(7)
    for B, T, d_model, h in ((2, 5, 12, 3), (3, 4, 8, 2), (1, 6, 8, 4)):
        x = rng.standard_normal((B, T, d_model))
        d_k = d_model // h
        out = expect_array(call(fn, x, h), what=f"the split of x {x.shape} into {h} heads")
        want = _split_ref(x, h)
        if out.shape == (B, T, h, d_k):
            raise Hint(f"the result has shape {out.shape} = (B, T, h, d_k): move the head axis in "
                       "front of the positions with .transpose(0, 2, 1, 3) to get (B, h, T, d_k).")
        if out.shape != want.shape:
            raise Hint(f"splitting x {x.shape} into {h} heads gave shape {out.shape}, expected "
                       f"{want.shape} = (B, h, T, d_k) with d_k = d_model / h = {d_k}.")
        if np.array_equal(out, want):
            continue
        if np.array_equal(out, x.reshape(B, h, T, d_k)):
            raise Hint("reshaping (B, T, d_model) straight to (B, h, T, d_k) mixes positions: head 0 "
                       "gets the first T*d_k numbers of the sequence, which belong to several positions. "
                       "Reshape to (B, T, h, d_k) first, then swap the T and h axes.")
        if np.array_equal(out, x.reshape(B, T, d_k, h).transpose(0, 3, 1, 2)):
            raise Hint("your heads take every h-th feature; head i should get the contiguous block "
                       "of features i*d_k:(i+1)*d_k. Reshape to (B, T, h, d_k), not (B, T, d_k, h).")
        raise Hint(f"the split of x {x.shape} has the right shape but wrong values: out[b, i, t] "
                   "should be x[b, t, i*d_k:(i+1)*d_k].")


def check_split_heads(fn):
    """Check fn(x, num_heads): (B, T, d_model) -> (B, h, T, d_k), head i holding features i*d_k:(i+1)*d_k."""
    return check("split heads", fn, _split_cases, "each head gets its block of features, positions intact.")


def _merge_cases(fn):
    rng = cases_rng(8)
    for B, h, T, d_k in ((2, 3, 5, 4), (3, 2, 4, 4), (1, 4, 6, 2)):
        x = rng.standard_normal((B, h, T, d_k))
        out = expect_array(call(fn, x), what=f"the merge of heads {x.shape}")
        want = x.transpose(0, 2, 1, 3).reshape(B, T, h * d_k)
        if out.shape != want.shape:
            raise Hint(f"merging heads {x.shape} = (B, h, T, d_k) gave shape {out.shape}, expected "
                       f"{want.shape} = (B, T, h*d_k)")
        if np.array_equal(out, want):
            continue
        if np.array_equal(out, x.reshape(B, T, h * d_k)):
            raise Hint("reshaping (B, h, T, d_k) straight to (B, T, d_model) mixes positions: move "
                       "the head axis back behind T first, x.transpose(0, 2, 1, 3), then reshape.")
        raise Hint("the merge has the right shape but wrong values: out[b, t, i*d_k:(i+1)*d_k] "
                   "should be x[b, i, t], so that merge(split(x)) == x.")


def check_merge_heads(fn):
    """Check fn(x): (B, h, T, d_k) -> (B, T, h*d_k), the inverse of split_heads."""
    return check("merge heads", fn, _merge_cases, "merge_heads undoes split_heads.")
