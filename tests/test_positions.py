"""RoPE, ALiBi and learned positions (attnkit.positions): the math, the gradients, the errors."""
import numpy as np
import pytest

from attnkit.gradcheck import numerical_gradient, rel_error
from attnkit.positions import (LearnedPositions, RotaryEmbedding, alibi_bias, alibi_slopes, apply_rope,
                               apply_rope_backward, rope_angles, rope_frequencies)
from attnkit.seeding import fixed_rng


def _rng(seed=0):
    return fixed_rng(seed)


# ----------------------------------------------------------------------------
# RoPE

def test_rope_pairs_rotate_by_position_times_frequency():
    # one pair (2i, 2i+1) written out: the 2x2 rotation of the RoFormer paper
    rng = _rng(1)
    d, T = 8, 5
    x = rng.standard_normal((T, d))
    pos = np.array([0, 3, 7, 12, 40])
    out = apply_rope(x, pos, base=100.0)
    theta = 100.0 ** (-np.arange(0, d, 2) / d)
    for t in range(T):
        for i in range(d // 2):
            a = pos[t] * theta[i]
            R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            assert np.allclose(out[t, 2 * i:2 * i + 2], R @ x[t, 2 * i:2 * i + 2], atol=1e-13)


def test_rope_position_zero_is_identity_and_norms_are_kept():
    rng = _rng(2)
    x = rng.standard_normal((2, 3, 6, 16))
    assert np.array_equal(apply_rope(x, np.zeros(6, dtype=int)), x)
    out = apply_rope(x, np.arange(100, 106))
    assert np.allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-13)
    assert not np.allclose(out, x)


@pytest.mark.parametrize("base, scale", [(10000.0, 1.0), (100.0, 1.0), (10000.0, 0.125)])
def test_rope_scores_depend_on_the_offset_only(base, scale):
    rng = _rng(3)
    d = 32
    q, k = rng.standard_normal((1, d)), rng.standard_normal((1, d))

    def score(m, n):
        return float(apply_rope(q, [m], base, scale)[0] @ apply_rope(k, [n], base, scale)[0])

    for m, n in [(5, 2), (40, 0), (300, 17)]:
        for shift in (1, 13, 1000):
            assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-12
    # and it does depend on the offset (else the test could not fail)
    assert abs(score(5, 2) - score(5, 4)) > 1e-3


def test_rope_scale_is_position_interpolation():
    rng = _rng(4)
    x = rng.standard_normal((4, 8))
    # scale 1/4 at positions 0, 4, 8, 12 equals scale 1 at 0, 1, 2, 3
    assert np.allclose(apply_rope(x, [0, 4, 8, 12], scale=0.25), apply_rope(x, [0, 1, 2, 3]), atol=1e-13)


def test_rope_backward_is_the_transpose_rotation_and_matches_finite_differences():
    rng = _rng(5)
    x = rng.standard_normal((2, 2, 5, 8))
    pos = np.array([3, 4, 5, 6, 9])
    dout = rng.standard_normal(x.shape)
    analytic = apply_rope_backward(dout, pos, 50.0, 0.5)
    numeric = numerical_gradient(lambda: np.sum(apply_rope(x, pos, 50.0, 0.5) * dout), x)
    assert rel_error(analytic, numeric) < 1e-8
    # the inverse rotation: backward(forward(x)) = x
    assert np.allclose(apply_rope_backward(apply_rope(x, pos), pos), x, atol=1e-13)


def test_rope_float32_stays_float32_and_agrees_with_float64():
    rng = _rng(6)
    x = rng.standard_normal((3, 7, 16))
    pos = np.arange(500, 507)
    out32 = apply_rope(x.astype(np.float32), pos)
    assert out32.dtype == np.float32
    assert np.allclose(out32, apply_rope(x, pos), atol=1e-5)
    assert apply_rope_backward(x.astype(np.float32), pos).dtype == np.float32


def test_rope_angles_and_frequencies():
    theta = rope_frequencies(8, 10000.0)
    assert np.allclose(theta, [1.0, 0.1, 0.01, 0.001])
    cos, sin = rope_angles([0, 2], 8, scale=0.5)
    assert cos.shape == sin.shape == (2, 4)
    assert np.allclose(cos[1], np.cos(theta)) and np.allclose(sin[1], np.sin(theta))


@pytest.mark.parametrize("call, words", [
    (lambda: apply_rope(np.zeros((4, 7)), np.arange(4)), ["even", "d_head"]),
    (lambda: apply_rope(np.zeros((4, 8)), np.arange(3)), ["one position per row"]),
    (lambda: apply_rope(np.zeros((4, 8)), np.arange(4.0)), ["integer positions"]),
    (lambda: apply_rope(np.zeros((4, 8)), np.arange(4)[None]), ["1-D"]),
    (lambda: apply_rope(np.zeros((4, 8)), -np.arange(4)), [">= 0"]),
    (lambda: apply_rope(np.zeros((4, 8)), np.arange(4), base=1.0), ["base", "> 1"]),
    (lambda: apply_rope(np.zeros((4, 8)), np.arange(4), scale=0.0), ["scale", "interpolation"]),
    (lambda: apply_rope(np.zeros(8), [0]), ["(..., T, d_head)"]),
    (lambda: RotaryEmbedding(8).forward(np.zeros((1, 1, 3, 6)), np.arange(3)), ["d_head=8"]),
    (lambda: RotaryEmbedding(5), ["even"]),
])
def test_rope_bad_inputs_name_the_fix(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for w in words:
        assert w in str(err.value)


def test_rotary_embedding_object_is_the_hook():
    rng = _rng(7)
    rope = RotaryEmbedding(8, base=500.0, scale=0.5)
    x = rng.standard_normal((2, 3, 4, 8))
    pos = np.arange(10, 14)
    assert np.array_equal(rope.forward(x, pos), apply_rope(x, pos, 500.0, 0.5))
    assert np.array_equal(rope.backward(x, pos), apply_rope_backward(x, pos, 500.0, 0.5))
    assert rope.num_parameters() == 0


# ----------------------------------------------------------------------------
# ALiBi

def test_alibi_slopes_power_of_two_follow_the_formula():
    for h in (1, 2, 4, 8, 16):
        assert np.allclose(alibi_slopes(h), 2.0 ** (-8.0 * np.arange(1, h + 1) / h))
    assert np.allclose(alibi_slopes(8), [1 / 2 ** i for i in range(1, 9)])


def test_alibi_slopes_other_counts_follow_the_papers_code():
    # the reference implementation (github.com/ofirpress/attention_with_linear_biases):
    # get_slopes_power_of_2(closest) + get_slopes(2 * closest)[0::2][:n - closest]
    def reference(n):
        def p2(n):
            start = 2 ** (-2 ** -(np.log2(n) - 3))
            return [start * start ** i for i in range(n)]
        if np.log2(n).is_integer():
            return p2(n)
        closest = 2 ** int(np.floor(np.log2(n)))
        return p2(closest) + reference(2 * closest)[0::2][:n - closest]

    for h in (3, 5, 6, 7, 12, 20):
        assert np.allclose(alibi_slopes(h), reference(h)), h
    assert np.allclose(alibi_slopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3])


def test_alibi_bias_is_minus_slope_times_distance():
    q = np.array([4, 5, 6])
    k = np.arange(7)
    bias = alibi_bias(4, q, k)
    assert bias.shape == (4, 3, 7) and bias.dtype == np.float64
    slopes = alibi_slopes(4)
    for i in range(4):
        for a in range(3):
            for b in range(7):
                assert bias[i, a, b] == -slopes[i] * abs(q[a] - k[b])
    assert np.all(bias[:, np.arange(3), q] == 0)             # each query's own position
    assert alibi_bias(2, [0], [0], dtype=np.float32).dtype == np.float32
    # shifting every position leaves the bias unchanged: it is relative
    assert np.array_equal(alibi_bias(4, q + 100, k + 100), bias)


@pytest.mark.parametrize("call, words", [
    (lambda: alibi_slopes(0), ["h must be an integer >= 1"]),
    (lambda: alibi_slopes(True), ["h must be"]),
    (lambda: alibi_bias(2, [0.5], [0]), ["q_positions", "integer"]),
    (lambda: alibi_bias(2, [0], [[0]]), ["k_positions", "1-D"]),
])
def test_alibi_bad_inputs_name_the_fix(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for w in words:
        assert w in str(err.value)


# ----------------------------------------------------------------------------
# learned positions

def test_learned_positions_past_the_table_name_both_numbers():
    table = LearnedPositions(64, 8, seed=0)
    assert table.forward(np.arange(64)).shape == (64, 8)
    with pytest.raises(ValueError) as err:
        table.forward(np.arange(60, 70))
    assert "position 69" in str(err.value) and "64 positions" in str(err.value)
    # the parameter keeps the name checkpoints store ("W")
    assert [n for n, _, _ in table.named_parameters()] == ["W"]


def test_rope_composes_with_tiled_attention():
    # RoPE acts on q and k before the scores, so the tiled (flash) attention of chapter 19 needs no
    # change: it equals the plain attention, and shifting every position changes nothing
    from attnkit.functional import attention_forward, causal_mask, flash_attention
    rng = _rng(8)
    q, k, v = (rng.standard_normal((2, 3, 40, 8)) for _ in range(3))
    pos = np.arange(40)
    rq, rk = apply_rope(q, pos), apply_rope(k, pos)
    tiled = flash_attention(rq, rk, v, causal=True, block_q=16, block_k=16)
    plain, _ = attention_forward(rq, rk, v, mask=causal_mask(40))
    np.testing.assert_allclose(tiled, plain, rtol=1e-10, atol=1e-12)
    shifted = flash_attention(apply_rope(q, pos + 100), apply_rope(k, pos + 100), v, causal=True,
                              block_q=16, block_k=16)
    np.testing.assert_allclose(shifted, tiled, rtol=1e-10, atol=1e-12)
