"""Linear attention (Katharopoulos et al. 2020, phi = elu + 1): parallel and recurrent forms agree,
the backward is gradient-checked, and a decoding step costs the same at any position."""
import numpy as np
import pytest

from attnkit.functional import (elu_feature_map, linear_attention, linear_attention_backward,
                                linear_attention_forward, linear_attention_recurrent,
                                linear_attention_step)
from attnkit.gradcheck import numerical_gradient, rel_error
from attnkit.seeding import make_rng


def qkv(T_q, T_k, lead=(2, 3), d_k=8, d_v=5, seed=0):
    rng = make_rng(seed)
    return (rng.standard_normal((*lead, T_q, d_k)), rng.standard_normal((*lead, T_k, d_k)),
            rng.standard_normal((*lead, T_k, d_v)), rng.standard_normal((*lead, T_q, d_v)))


def quadratic_form(q, k, v, causal):
    """The definition, with the (T_q, T_k) similarity matrix written out."""
    a = elu_feature_map(q) @ np.swapaxes(elu_feature_map(k), -1, -2)      # (..., T_q, T_k) > 0
    if causal:
        a = a * np.tri(a.shape[-1])
    return (a @ v) / a.sum(-1, keepdims=True)                              # (..., T_q, d_v)


def test_feature_map_is_elu_plus_one_and_positive():
    x = np.array([-30.0, -1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(elu_feature_map(x), [np.exp(-30), np.exp(-1), 1.0, 1.5, 3.0])
    assert np.all(elu_feature_map(make_rng(1).standard_normal(100) * 10) > 0)


@pytest.mark.parametrize("chunk", [1, 4, 7, 64])
def test_causal_parallel_recurrent_and_quadratic_forms_agree(chunk):
    q, k, v, _ = qkv(37, 37)
    ref = quadratic_form(q, k, v, causal=True)
    np.testing.assert_allclose(linear_attention(q, k, v, causal=True, chunk=chunk), ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(linear_attention_recurrent(q, k, v), ref, rtol=0, atol=1e-10)


def test_noncausal_form_with_different_lengths():
    q, k, v, _ = qkv(11, 23)
    np.testing.assert_allclose(linear_attention(q, k, v), quadratic_form(q, k, v, False), rtol=0, atol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_gradient_check(causal):
    q, k, v, dout = qkv(7, 7, lead=(2,), d_k=3, d_v=2, seed=2)
    q[0, 0] = [-2.0, 0.5, 1e-3]                                            # both branches of elu
    _, cache = linear_attention_forward(q, k, v, causal, chunk=3)
    for x, g in zip((q, k, v), linear_attention_backward(dout, cache)):
        num = numerical_gradient(lambda: np.sum(linear_attention(q, k, v, causal, 3) * dout), x)
        assert rel_error(g, num) < 1e-7


def test_backward_does_not_depend_on_chunk():
    q, k, v, dout = qkv(20, 20)
    grads = [linear_attention_backward(dout, linear_attention_forward(q, k, v, True, c)[1]) for c in (1, 6, 32)]
    for g in grads[1:]:
        for a, b in zip(g, grads[0]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_step_state_has_a_fixed_size_and_extends_the_prefix():
    q, k, v, _ = qkv(30, 30)
    state, outs = None, []
    for t in range(30):
        out_t, state = linear_attention_step(q[..., t, :], k[..., t, :], v[..., t, :], state)
        assert state[0].shape == (2, 3, 8, 5) and state[1].shape == (2, 3, 8)   # never grows with t
        outs.append(out_t)
    np.testing.assert_allclose(np.stack(outs, axis=-2), linear_attention(q, k, v, causal=True), atol=1e-10)


def test_float32_keeps_its_dtype():
    q, k, v, dout = (x.astype(np.float32) for x in qkv(16, 16))
    for causal in (False, True):
        out, cache = linear_attention_forward(q, k, v, causal, chunk=5)
        assert out.dtype == np.float32
        assert all(g.dtype == np.float32 for g in linear_attention_backward(dout, cache))
    assert linear_attention_recurrent(q, k, v).dtype == np.float32


def test_bad_arguments():
    q, k, v, dout = qkv(6, 8)
    with pytest.raises(ValueError, match="as many queries as keys"):
        linear_attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        linear_attention(q, k, v, chunk=0)
    with pytest.raises(ValueError, match="same length T_k"):
        linear_attention(q, k, v[..., :7, :])
    with pytest.raises(ValueError, match="q_t and k_t must have one shape"):
        linear_attention_step(q[..., 0, :], k[..., 0, :3], v[..., 0, :])
    _, cache = linear_attention_forward(q, k, v)
    with pytest.raises(ValueError, match="shape of the attention output"):
        linear_attention_backward(dout[..., :2], cache)
