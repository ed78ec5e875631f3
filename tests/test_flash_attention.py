"""Tiled attention with an online softmax (attnkit.functional.flash_attention_*): it must equal
the plain attention_forward / attention_backward, for every tile size and mask, to rounding."""
import numpy as np
import pytest

from attnkit.functional import (attention_backward, attention_forward, causal_mask, flash_attention,
                                flash_attention_backward, flash_attention_forward, flash_tiles,
                                padding_mask)
from attnkit.gradcheck import numerical_gradient, rel_error
from attnkit.seeding import make_rng

TILES = [(8, 8), (16, 7), (5, 13), (64, 64), (1, 3)]


def dense_mask(T_q, T_k, causal, key_mask):
    """The (..., T_q, T_k) mask attention_forward needs for the same problem."""
    mask = np.tril(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q) if causal else None  # (T_q, T_k)
    if key_mask is not None:
        km = key_mask[..., None, :]                                        # (..., 1, T_k)
        mask = km if mask is None else mask & km
    return mask


def problem(T_q, T_k, lead=(2, 3), d_k=8, d_v=5, seed=0):
    rng = make_rng(seed)
    q = rng.standard_normal((*lead, T_q, d_k))                             # (B, h, T_q, d_k)
    k = rng.standard_normal((*lead, T_k, d_k))                             # (B, h, T_k, d_k)
    v = rng.standard_normal((*lead, T_k, d_v))                             # (B, h, T_k, d_v)
    dout = rng.standard_normal((*lead, T_q, d_v))                          # (B, h, T_q, d_v)
    key_mask = rng.random((lead[0], 1, T_k)) > 0.3                         # (B, 1, T_k)
    key_mask[0, 0, :] = False                                              # batch 0: every key masked
    key_mask[1:, 0, 0] = True                                              # the others see key 0
    return q, k, v, dout, key_mask


@pytest.mark.parametrize("T_q, T_k", [(37, 37), (20, 45), (45, 20), (64, 64), (1, 9)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_tiled_equals_plain_attention_forward_and_backward(T_q, T_k, causal, masked):
    q, k, v, dout, key_mask = problem(T_q, T_k)
    key_mask = key_mask if masked else None
    out, cache = attention_forward(q, k, v, mask=dense_mask(T_q, T_k, causal, key_mask))
    grads = attention_backward(dout, cache)
    for block_q, block_k in TILES:
        out_f, cache_f = flash_attention_forward(q, k, v, causal=causal, key_mask=key_mask,
                                                 block_q=block_q, block_k=block_k)
        np.testing.assert_allclose(out_f, out, rtol=0, atol=1e-10)
        for g_f, g in zip(flash_attention_backward(dout, cache_f), grads):
            np.testing.assert_allclose(g_f, g, rtol=0, atol=1e-10)


def test_fully_masked_query_gets_zero_output_and_gradients():
    q, k, v, dout, key_mask = problem(10, 12)
    out, cache = flash_attention_forward(q, k, v, key_mask=key_mask, block_q=4, block_k=5)
    assert not np.any(key_mask[0])
    assert np.all(out[0] == 0) and np.all(np.isneginf(cache["lse"][0]))
    dq, dk, dv = flash_attention_backward(dout, cache)
    assert np.all(dq[0] == 0) and np.all(dk[0] == 0) and np.all(dv[0] == 0)
    assert np.all(np.isfinite(dq)) and np.all(np.isfinite(dk)) and np.all(np.isfinite(dv))
    # causal with more queries than keys: the first T_q - T_k queries see no key at all
    out, _ = flash_attention_forward(q[..., :12, :], k[..., :4, :], v[..., :4, :], causal=True, block_q=3)
    assert np.all(out[..., :6, :] == 0) and np.all(out[..., 6:, :] != 0)


def test_tiled_attention_gradient_check():
    q, k, v, dout, key_mask = problem(7, 9, lead=(2, 2), d_k=3, d_v=2, seed=3)
    for causal, km in [(False, None), (True, key_mask)]:
        f = lambda: flash_attention(q, k, v, causal, km, block_q=3, block_k=4)   # noqa: E731
        _, cache = flash_attention_forward(q, k, v, causal, km, block_q=3, block_k=4)
        for x, g in zip((q, k, v), flash_attention_backward(dout, cache)):
            assert rel_error(g, numerical_gradient(lambda: np.sum(f() * dout), x)) < 1e-7


def test_padding_mask_shape_is_accepted_and_leading_dims_are_free():
    q, k, v, dout, _ = problem(6, 6, lead=(3, 2))
    pm = padding_mask([6, 2, 4], 6)                                        # (B, 1, 1, T)
    ref = attention_forward(q, k, v, mask=pm & causal_mask(6))[0]
    np.testing.assert_allclose(flash_attention(q, k, v, True, pm, 4, 4), ref, atol=1e-12)
    np.testing.assert_allclose(flash_attention(q, k, v, True, pm[:, :, 0], 4, 4), ref, atol=1e-12)
    for lead in [(), (4,), (2, 2, 2)]:                                     # no batch, one, three dims
        q, k, v, dout, _ = problem(9, 11, lead=lead if lead else (1,))
        if not lead:
            q, k, v = q[0], k[0], v[0]
        np.testing.assert_allclose(flash_attention(q, k, v, block_q=4, block_k=3),
                                   attention_forward(q, k, v)[0], atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_float32_keeps_its_dtype_and_agrees_with_float64(causal):
    q, k, v, dout, key_mask = problem(33, 33)
    q32, k32, v32, d32 = (x.astype(np.float32) for x in (q, k, v, dout))
    out, cache = flash_attention_forward(q32, k32, v32, causal, key_mask, block_q=8, block_k=16)
    grads = flash_attention_backward(d32, cache)
    assert out.dtype == np.float32 and cache["lse"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)
    out64, cache64 = flash_attention_forward(q, k, v, causal, key_mask, block_q=8, block_k=16)
    np.testing.assert_allclose(out, out64, atol=1e-5)
    for g, g64 in zip(grads, flash_attention_backward(dout, cache64)):
        np.testing.assert_allclose(g, g64, atol=1e-4)


def test_cache_holds_only_inputs_output_and_log_sum_exp():
    q, k, v, dout, _ = problem(40, 40)
    out, cache = flash_attention_forward(q, k, v, block_q=8, block_k=8)
    arrays = {name for name, x in cache.items() if isinstance(x, np.ndarray)}
    assert arrays == {"q", "k", "v", "out", "lse"}
    assert cache["lse"].shape == q.shape[:-1]
    ref = attention_forward(q, k, v)[1]["probs"]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    np.testing.assert_allclose(np.exp(scores - cache["lse"][..., None]), ref, atol=1e-12)


def test_causal_tiles_above_the_diagonal_are_skipped():
    tiles = flash_tiles(64, 64, 16, 16, causal=True)
    assert len(tiles) == 10 and len(flash_tiles(64, 64, 16, 16)) == 16    # 4 * 5 / 2 of 4 * 4
    assert sum(diag for _, _, diag in tiles) == 4                         # only the diagonal is masked
    for rows, cols, _ in tiles:
        assert cols.start <= rows.stop - 1                                # some key is visible
    n = 64
    done = len(flash_tiles(n * 64, n * 64, 64, 64, causal=True))
    assert done == n * (n + 1) // 2                                       # about half of n * n
    _, cache = flash_attention_forward(*problem(64, 64)[:3], causal=True, block_q=16, block_k=16)
    assert (cache["tiles"], cache["tiles_total"]) == (10, 16)
    # every visible (query, key) pair is in exactly one tile
    for T_q, T_k, bq, bk in [(37, 37, 8, 5), (20, 45, 7, 8), (45, 20, 6, 6)]:
        seen = np.zeros((T_q, T_k), dtype=int)
        for rows, cols, _ in flash_tiles(T_q, T_k, bq, bk, causal=True):
            seen[rows, cols] += 1
        visible = np.tril(np.ones((T_q, T_k), dtype=bool), k=T_k - T_q)
        assert np.all(seen[visible] == 1) and np.all(seen <= 1)


def test_bad_arguments_raise_clear_errors():
    q, k, v, dout, key_mask = problem(6, 6)
    for bad in [0, -3, 2.5, True, None]:
        with pytest.raises(ValueError, match="block_q must be a positive integer"):
            flash_attention(q, k, v, block_q=bad)
        with pytest.raises(ValueError, match="block_k must be a positive integer"):
            flash_attention(q, k, v, block_k=bad)
    with pytest.raises(ValueError, match=r"same size d_k: q \(2, 3, 6, 8\), k \(2, 3, 6, 7\)"):
        flash_attention(q, k[..., :7], v)
    with pytest.raises(ValueError, match="same length T_k"):
        flash_attention(q, k, v[..., :5, :])
    with pytest.raises(ValueError, match="leading"):
        flash_attention(q, k[:1], v[:1])
    with pytest.raises(ValueError, match="at least one key"):
        flash_attention(q, k[..., :0, :], v[..., :0, :])
    with pytest.raises(TypeError, match="one dtype"):
        flash_attention(q.astype(np.float32), k, v)
    with pytest.raises(TypeError, match="key_mask must be boolean"):
        flash_attention(q, k, v, key_mask=key_mask.astype(int))
    with pytest.raises(ValueError, match=r"key_mask of shape \(2, 1, 5\) does not broadcast"):
        flash_attention(q, k, v, key_mask=key_mask[..., :5])
    with pytest.raises(ValueError, match=r"key_mask of shape \(6, 6\)"):
        flash_attention(q, k, v, key_mask=causal_mask(6))
    with pytest.raises(ValueError, match="causal must be True or False"):
        flash_attention(q, k, v, causal=causal_mask(6))
    _, cache = flash_attention_forward(q, k, v)
    with pytest.raises(ValueError, match=r"shape of the attention output \(2, 3, 6, 5\)"):
        flash_attention_backward(dout[..., :4], cache)


# ---------------------------------------------------------------- ALiBi in the tiled kernel

@pytest.mark.parametrize("T_q, T_k, causal, bq, bk", [(9, 9, True, 4, 3), (9, 9, False, 16, 5),
                                                     (5, 11, True, 2, 4), (3, 7, False, 3, 2)])
def test_alibi_slopes_equal_the_bias_of_plain_attention(T_q, T_k, causal, bq, bk):
    from attnkit.positions import alibi_bias, alibi_slopes
    rng = make_rng(40)
    B, h, d = 2, 3, 4
    q, k, v = (rng.standard_normal((B, h, n, d)) for n in (T_q, T_k, T_k))
    offset = T_k - T_q
    bias = alibi_bias(h, np.arange(offset, T_k), np.arange(T_k))          # (h, T_q, T_k)
    mask = None
    if causal:
        mask = np.arange(T_k)[None, :] <= np.arange(offset, T_k)[:, None]  # (T_q, T_k)
    ref, ref_cache = attention_forward(q, k, v, mask=mask, bias=bias)
    out, cache = flash_attention_forward(q, k, v, causal=causal, block_q=bq, block_k=bk,
                                         alibi_slopes=alibi_slopes(h))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(flash_attention_backward(dout, cache), attention_backward(dout, ref_cache)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_alibi_slopes_keep_float32_and_check_their_shape():
    rng = make_rng(41)
    q, k, v = (rng.standard_normal((1, 2, 6, 4)).astype(np.float32) for _ in range(3))
    out, _ = flash_attention_forward(q, k, v, causal=True, block_q=4, block_k=4,
                                     alibi_slopes=np.array([0.5, 0.25]))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="one slope per head"):
        flash_attention_forward(q, k, v, alibi_slopes=np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        flash_attention_forward(q, k, v, alibi_slopes=np.array([np.inf, 1.0]))


# ---------------------------------------------------------------- threads

def test_threaded_chunks_equal_one_thread(monkeypatch):
    """With 2 BLAS threads the tiled kernel splits the first leading axis over threads (run_chunks):
    the same numbers as with 1 thread, bit for bit, with masks, ALiBi, causal and T_q != T_k."""
    from threadpoolctl import threadpool_limits

    from attnkit import functional
    from attnkit.positions import alibi_slopes
    pools = []
    real_pool = functional.chunk_pool
    monkeypatch.setattr(functional, "chunk_pool", lambda n: pools.append(n) or real_pool(n))
    monkeypatch.setattr(functional, "CHUNK_FLOPS", 0)           # thread even these small cases
    q, k, v, dout, key_mask = problem(37, 45, lead=(5, 3))
    cases = [((q, k, v, dout), {}),
             ((q, k, v, dout), {"causal": True, "key_mask": key_mask}),
             ((q, k, v, dout), {"causal": True, "alibi_slopes": alibi_slopes(3)}),
             ((q[0], k[0], v[0], dout[0]), {"alibi_slopes": alibi_slopes(3)}),   # (h, T, d): chunks of heads
             ((q[:1], k[:1], v[:1], dout[:1]),                                   # B = 1: chunks of heads too
              {"causal": True, "key_mask": key_mask[1:2], "alibi_slopes": alibi_slopes(3)})]
    for dtype in (np.float64, np.float32):
        for arrays, kw in cases:
            qd, kd, vd, dd = (a.astype(dtype) for a in arrays)
            results = []
            for n in (1, 2):
                with threadpool_limits(n):
                    out, cache = flash_attention_forward(qd, kd, vd, block_q=16, block_k=8, **kw)
                    results.append((out, *flash_attention_backward(dd, cache)))
            for one, two in zip(*results):
                assert two.dtype == dtype
                np.testing.assert_array_equal(two, one)
    assert len(pools) == 2 * 2 * len(cases)             # every 2-thread forward and backward used the pool
