"""Checkers for chapters 3 and 4 (multi-head attention): counting, and splitting/merging heads.

    from attnkit.exercises.multi_head import check_mha_param_count
    check_mha_param_count(my_count)   # my_count(d_model, num_heads, bias) -> int
    check_mha_flops(my_flops)         # my_flops(T, d_model, num_heads) -> int
    check_cross_attention_flops(f)    # f(T_q, T_k, d_model, num_heads) -> int
    check_split_heads(my_split)       # my_split(x (B, T, d_model), num_heads) -> (B, h, T, d_k)
    check_merge_heads(my_merge)       # my_merge(x (B, h, T, d_k)) -> (B, T, d_model)
    check_split_fused_qkv(f)          # f(qkv (B, T, 3 d_model), num_heads) -> q, k, v (B, h, T, d_k)
    check_einsum_attention(f)         # f(x, W_q, W_k, W_v, W_o), per-head weights -> (B, T, d_model)

Chapter 3 asks for the cross-attention count and chapter 4 for the fused layout and the einsum
form: transfer tasks, which the chapters' own code does not answer line by line. The split,
merge and self-attention FLOP checkers stay for readers who want to retype the basics.
"""
import numpy as np

from ..nn import split_heads
from .core import Hint, call, cases_rng, check, expect_array, expect_tuple, expect_whole

__all__ = ["check_mha_param_count", "check_mha_flops", "check_cross_attention_flops", "check_split_heads",
           "check_merge_heads", "check_split_fused_qkv", "check_einsum_attention"]


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


def _param_cases(fn):
    for d_model, h, bias in ((8, 2, True), (12, 3, False), (64, 8, True), (64, 1, True)):
        got = expect_whole(call(fn, d_model, h, bias), f"the count for d_model={d_model}, h={h}, bias={bias}")
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
        got = expect_whole(call(fn, T, d_model, h), f"the FLOP count for T={T}, d_model={d_model}, h={h}")
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


# ----------------------------------------------------------------------------
# transfer tasks: cross-attention's cost, a fused per-head layout, an einsum formulation

def _cross_flops(T_q, T_k, d_model):
    """Q and output projections on T_q rows, K and V on T_k rows, scores and weighted sum T_q x T_k."""
    return 4 * T_q * d_model ** 2 + 4 * T_k * d_model ** 2 + 4 * T_q * T_k * d_model


def _cross_flop_cases(fn):
    for T_q, T_k, d_model, h in ((3, 10, 8, 2), (50, 200, 64, 8), (7, 5, 12, 3), (1, 1000, 64, 4)):
        got = expect_whole(call(fn, T_q, T_k, d_model, h),
                      f"the FLOP count for T_q={T_q}, T_k={T_k}, d_model={d_model}, h={h}")
        want = _cross_flops(T_q, T_k, d_model)
        if got == want:
            continue
        where = f"for T_q={T_q}, T_k={T_k}, d_model={d_model}, num_heads={h} you count {got:,}"
        if got == 8 * T_q * d_model ** 2 + 4 * T_q * T_k * d_model:
            raise Hint(f"{where}: the keys and values are projections of the T_k memory rows, not of "
                       "the T_q queries: 2 T_k d_model^2 FLOPs each.")
        if got == 8 * T_k * d_model ** 2 + 4 * T_q * T_k * d_model:
            raise Hint(f"{where}: the query and output projections work on the T_q query rows only.")
        if got in (_mha_flops(T_q, d_model, h), _mha_flops(T_k, d_model, h)):
            raise Hint(f"{where}, the self-attention count for one length: with T_q queries over T_k "
                       "keys the score matrix is (T_q, T_k), and each projection has its own length.")
        if got == 4 * T_q * d_model ** 2 + 4 * T_k * d_model ** 2 + 4 * h * T_q * T_k * d_model:
            raise Hint(f"{where}: each head works in d_k = d_model / h dimensions, so the heads' "
                       "scores together cost 2 T_q T_k d_model, not h times that.")
        if got * 2 == want:
            raise Hint(f"{where}, half of the expected {want:,}: an (m, n) @ (n, p) product is "
                       "2 m n p FLOPs (a multiplication and an addition each).")
        raise Hint(f"{where}, expected {want:,}. Count the four projections, each on its own rows, "
                   "and the (T_q, T_k) scores and weighted sum.")


def check_cross_attention_flops(fn):
    """Check fn(T_q, T_k, d_model, num_heads) -> FLOPs of multi-head cross-attention's matrix products."""
    return check("FLOPs of cross-attention", fn, _cross_flop_cases,
                 "4 T_q d^2 + 4 T_k d^2 + 4 T_q T_k d: the memory's K and V projections do not "
                 "depend on the queries, so a decoder computes them once per sentence, not per step.")


def _fused_reference(qkv, h):
    """Per-head fused layout: features [q_0 k_0 v_0 | q_1 k_1 v_1 | ...], d_k columns each."""
    B, T, three_d = qkv.shape
    d_k = three_d // (3 * h)
    x = qkv.reshape(B, T, h, 3, d_k).transpose(3, 0, 2, 1, 4)            # (3, B, h, T, d_k)
    return x[0], x[1], x[2]


def _fused_cases(fn):
    rng = cases_rng(9)
    for B, T, h, d_k in ((2, 5, 3, 4), (1, 4, 2, 2), (3, 6, 4, 3)):
        qkv = rng.standard_normal((B, T, 3 * h * d_k))
        out = expect_tuple(call(fn, qkv, h), 3, ("q", "k", "v"))
        want = _fused_reference(qkv, h)
        for name, got, ref in zip("qkv", out, want):
            got = expect_array(got, what=f"{name} for qkv {qkv.shape} and {h} heads")
            if got.shape != ref.shape:
                raise Hint(f"{name} has shape {got.shape}, expected {ref.shape} = (B, h, T, d_k)")
            if np.array_equal(got, ref):
                continue
            blocked = qkv.reshape(B, T, 3, h, d_k).transpose(2, 0, 3, 1, 4)  # the [Q | K | V] reading
            if np.array_equal(got, blocked["qkv".index(name)]):
                raise Hint("you read the weights as [all queries | all keys | all values]; in this "
                           "layout each head's q, k and v sit side by side: reshape to (B, T, h, 3, d_k), "
                           "not (B, T, 3, h, d_k).")
            if np.array_equal(got, qkv.reshape(B, T, h, 3, d_k)[:, :, :, "qkv".index(name)]
                              .reshape(B, h, T, d_k)):
                raise Hint(f"{name} has the right numbers in the wrong places: after picking it out "
                           "of (B, T, h, 3, d_k), move the head axis in front of T with a transpose; "
                           "a reshape mixes positions.")
            raise Hint(f"{name} has the right shape but wrong values: {name}[b, i, t] should be "
                       f"qkv[b, t, (3 i + {'qkv'.index(name)}) d_k : (3 i + {'qkv'.index(name) + 1}) d_k].")


def check_split_fused_qkv(fn):
    """Check fn(qkv (B, T, 3 h d_k), num_heads) -> q, k, v (B, h, T, d_k) for the per-head fused layout."""
    return check("split a fused per-head qkv", fn, _fused_cases,
                 "the layout decides the reshape; the shapes alone cannot tell you which one is right.")


def _einsum_reference(x, W_q, W_k, W_v, W_o):
    from ..functional import softmax
    d_k = W_q.shape[-1]
    q = np.einsum("btd,hdk->bhtk", x, W_q)
    k = np.einsum("btd,hdk->bhtk", x, W_k)
    v = np.einsum("btd,hdk->bhtk", x, W_v)
    w = softmax(np.einsum("bhtk,bhsk->bhts", q, k) / np.sqrt(d_k), axis=-1)
    heads = np.einsum("bhts,bhsk->bhtk", w, v)
    return np.einsum("bhtk,hkd->btd", heads, W_o)


def _einsum_cases(fn):
    from ..functional import softmax
    rng = cases_rng(10)
    for B, T, d_model, h in ((2, 5, 8, 2), (1, 4, 12, 3), (3, 3, 8, 4)):
        d_k = d_model // h
        x = rng.standard_normal((B, T, d_model))
        W_q, W_k, W_v = (rng.standard_normal((h, d_model, d_k)) for _ in range(3))
        W_o = rng.standard_normal((h, d_k, d_model))
        got = expect_array(call(fn, x, W_q, W_k, W_v, W_o), (B, T, d_model),
                           f"the output for x {x.shape} and {h} heads")
        want = _einsum_reference(x, W_q, W_k, W_v, W_o)
        if np.allclose(got, want, rtol=1e-8, atol=1e-10):
            continue
        q, k, v = (np.einsum("btd,hdk->bhtk", x, W) for W in (W_q, W_k, W_v))
        s = np.einsum("bhtk,bhsk->bhts", q, k)
        unscaled = np.einsum("bhtk,hkd->btd", np.einsum("bhts,bhsk->bhtk", softmax(s), v), W_o)
        if np.allclose(got, unscaled, rtol=1e-8, atol=1e-10):
            raise Hint("divide the scores by sqrt(d_k) before the softmax (d_k = W_q.shape[-1]).")
        wrong_axis = softmax(s / np.sqrt(d_k), axis=-2)
        if np.allclose(got, np.einsum("bhtk,hkd->btd", np.einsum("bhts,bhsk->bhtk", wrong_axis, v), W_o)):
            raise Hint("the softmax runs over the keys, the last axis of the (B, h, T_q, T_k) scores: "
                       "each query's weights sum to 1.")
        raise Hint("the output differs from multi-head attention's. Write each step as one einsum: "
                   "'btd,hdk->bhtk' for the projections, 'bhtk,bhsk->bhts' for the scores, "
                   "'bhts,bhsk->bhtk' for the weighted sum and 'bhtk,hkd->btd' for the output.")


def check_einsum_attention(fn):
    """Check fn(x (B, T, d), W_q, W_k, W_v (h, d, d_k), W_o (h, d_k, d)) -> multi-head self-attention (B, T, d)."""
    return check("multi-head attention with einsum", fn, _einsum_cases,
                 "no reshape and no transpose: the head axis lives in the weights, and the output "
                 "projection's einsum sums over the heads, which is the concatenation followed by W^O.")
