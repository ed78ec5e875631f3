"""Attributions of a classifier (attnkit.attribution): rollout on hand-built maps, the attention
attributions against the model's weights, gradient x input against finite differences, occlusion
against one forward per blanked token, Spearman against scipy."""
import numpy as np
import pytest
from scipy.stats import spearmanr

from attnkit.attribution import (attention_attributions, gradient_x_input, occlusion,
                                 rank_correlations, rollout, spearman)
from attnkit.functional import softmax
from attnkit.gradcheck import perturb
from attnkit.inference import pooling_weights, predict_proba
from attnkit.models import ClassifierConfig, TransformerClassifier
from attnkit.seeding import make_rng


def _model(dtype=np.float64, pooling="attention", layers=2):
    m = TransformerClassifier(ClassifierConfig(
        vocab_size=40, num_classes=3, d_model=16, num_heads=2, num_layers=layers, d_ff=24,
        max_len=16, dropout=0.3, pooling=pooling, seed=3, dtype=dtype))
    perturb(m, seed=2, scale=0.3)          # away from the initialization: no accidental symmetry
    return m


def _inputs(n=7, seed=0, low=2, high=10):
    rng = make_rng(seed)
    return [list(rng.integers(2, 40, size=rng.integers(low, high))) for _ in range(n)]


def test_rollout_of_hand_built_maps():
    # layer 1: both positions attend to position 1; layer 2: both to position 0
    W1 = np.array([[0.0, 1.0], [0.0, 1.0]])
    W2 = np.array([[1.0, 0.0], [1.0, 0.0]])
    A1 = np.array([[0.5, 0.5], [0.0, 1.0]])        # (W1 + I), rows renormalized
    A2 = np.array([[1.0, 0.0], [0.5, 0.5]])
    maps = np.stack([W1, W2])[:, None]                 # (L=2, h=1, T, T)
    assert np.allclose(rollout(maps), A2 @ A1)
    assert np.allclose(rollout(maps), [[0.5, 0.5], [0.25, 0.75]])
    # without the residual term: the plain product of the weights
    assert np.allclose(rollout(maps, add_residual=False), W2 @ W1)
    # heads are averaged first: two heads whose mean is W1 give the same rollout
    heads1 = np.stack([np.array([[0.0, 1.0], [0.0, 1.0]]), W1])
    heads2 = np.stack([np.eye(2)[[0, 0]], W2])
    assert np.allclose(rollout([heads1, heads2]), A2 @ A1)
    # one layer of uniform attention: (J/T + I) / 2
    T = 4
    one = rollout(np.full((1, 3, T, T), 1 / T))
    assert np.allclose(one, (np.full((T, T), 1 / T) + np.eye(T)) / 2)


def test_rollout_batched_rows_sum_to_one_and_match_per_sequence():
    rng = make_rng(0)
    maps = softmax(rng.standard_normal((3, 5, 2, 6, 6)), axis=-1)      # (L, B, h, T, T)
    R = rollout(maps)                                                  # (B, T, T)
    assert R.shape == (5, 6, 6) and np.allclose(R.sum(-1), 1)
    assert np.allclose(R[2], rollout(maps[:, 2]))
    with pytest.raises(ValueError, match="L, ..., h, T, T"):
        rollout(maps[0, 0])                                            # no layer axis


def test_attention_attributions_read_the_models_weights():
    m = _model()
    X = _inputs()
    att = attention_attributions(m, X, batch_size=3)
    assert m.training                                                  # the mode is restored
    for a, w in zip(att["pooling"], pooling_weights(m, X)):
        assert np.allclose(a, w)
    for i in (0, 4):
        m.eval()
        m.forward(np.array([X[i]]))
        w = m.pool_weights[0]                                          # (n,)
        maps = [A[0] for A in m.attention_weights()]                   # L x (h, n, n)
        assert np.allclose(att["last layer"][i], w @ maps[-1].mean(0))
        assert np.allclose(att["rollout"][i], w @ rollout(maps))
        m.train()
    for k in att:
        assert all(np.isclose(a.sum(), 1) and a.shape == (len(x),) for a, x in zip(att[k], X))


def test_gradient_x_input_against_finite_differences():
    m = _model().eval()
    ids = [5, 9, 2, 17, 30, 11]                       # distinct tokens: one embedding row each
    got = gradient_x_input(m, [ids])[0]               # (n,)
    W = m.embed.embed.params["W"]
    c = int(np.argmax(predict_proba(m, [ids])[0]))
    eps = 1e-6

    def log_p(row, s):
        old = W[row].copy()
        W[row] *= 1 + s                               # scale the token's embedding
        logits = m.forward(np.array([ids]))[0]
        W[row] = old
        return np.log(softmax(logits)[c])

    numeric = np.array([(log_p(r, eps) - log_p(r, -eps)) / (2 * eps) for r in ids])
    assert np.allclose(got, numeric, rtol=1e-6, atol=1e-9), (got, numeric)
    assert all(np.all(g == 0) for _, _, g in m.named_parameters())   # gradients zeroed


def test_gradient_x_input_batched_equals_alone_and_float32_works():
    X = _inputs(seed=1)
    m = _model()
    together = gradient_x_input(m, X, batch_size=4)
    alone = [gradient_x_input(m, [x])[0] for x in X]
    assert all(np.allclose(a, b, atol=1e-10) for a, b in zip(together, alone))
    g32 = gradient_x_input(_model(np.float32), X)
    assert all(a.dtype == np.float64 and np.all(np.isfinite(a)) for a in g32)


@pytest.mark.parametrize("batch_size", [1, 5, 256])
def test_occlusion_equals_one_forward_per_blanked_token(batch_size):
    m = _model()
    X = _inputs(seed=2)
    got = occlusion(m, X, batch_size=batch_size)
    m.eval()
    for x, o in zip(X, got):
        p = softmax(m.forward(np.array([x]))[0])                       # (C,)
        c = int(np.argmax(p))
        for t in range(len(x)):
            blank = np.array([x[:t] + [0] + x[t + 1:]])                # pad id 0: masked out
            q = softmax(m.forward(blank)[0])
            assert np.isclose(o[t], p[c] - q[c], atol=1e-10)


def test_occlusion_with_pad_is_deletion_when_positions_do_not_matter():
    # a model whose positions are zeroed: blanking token t equals removing it
    m = _model(pooling="mean").eval()
    m.embed.pos.table[:] = 0
    x = [4, 8, 15, 16, 23]
    o = occlusion(m, [x])[0]
    p = softmax(m.forward(np.array([x]))[0])
    c = int(np.argmax(p))
    for t in range(len(x)):
        q = softmax(m.forward(np.array([x[:t] + x[t + 1:]]))[0])
        assert np.isclose(o[t], p[c] - q[c], atol=1e-10)


def test_occlusion_with_unk_and_single_tokens():
    m = _model()
    X = _inputs(seed=3)
    with_unk = occlusion(m, X + [[7]], fill_id=1)
    assert len(with_unk) == len(X) + 1 and with_unk[-1].shape == (1,)
    assert not all(np.allclose(a, b) for a, b in zip(with_unk, occlusion(m, X)))
    with pytest.raises(ValueError, match="one token"):
        occlusion(m, X + [[7]])


def test_spearman_matches_scipy_with_ties_and_constant_is_nan():
    rng = make_rng(4)
    for n in (3, 8, 20):
        a = rng.integers(0, 4, n).astype(float)          # many ties
        b = rng.standard_normal(n)
        assert np.isclose(spearman(a, b), spearmanr(a, b).statistic)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1)
    with pytest.raises(ValueError, match="1-D arrays"):
        spearman([1, 2], [1, 2, 3])


def test_rank_correlations_signed_and_absolute():
    ref = [np.array([-3.0, 1.0, 2.0]), np.array([0.5, -0.1, 0.2, 0.0])]
    att = {"same": [np.array([-3.0, 1.0, 2.0]), np.array([0.5, -0.1, 0.2, 0.0])],
           "size": [np.array([3.0, 1.0, 2.0]), np.array([0.5, 0.1, 0.2, 0.0])]}
    signed = rank_correlations(att, ref)
    absolute = rank_correlations(att, ref, absolute=True)
    assert np.allclose(signed["same"], 1) and np.allclose(absolute["size"], 1)
    assert signed["size"][0] < 1
    with pytest.raises(ValueError, match="sequences"):
        rank_correlations({"x": ref[:1]}, ref)
