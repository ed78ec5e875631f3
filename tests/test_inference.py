"""attnkit.inference: evaluation mode restored, probabilities and pooling weights per input."""
import numpy as np
import pytest

from attnkit.functional import softmax
from attnkit.inference import eval_mode, pooling_weights, predict_proba
from attnkit.models import ClassifierConfig, TransformerClassifier


def _model(pooling="attention", dropout=0.3, classes=3):
    return TransformerClassifier(ClassifierConfig(
        vocab_size=20, num_classes=classes, d_model=16, num_heads=2, num_layers=1, d_ff=32,
        max_len=12, dropout=dropout, pooling=pooling, seed=0, dtype=np.float64))


def _inputs(n=9, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(1, 20, size=rng.integers(1, 11))) for _ in range(n)]


@pytest.mark.parametrize("start", [True, False])
def test_eval_mode_restores_the_previous_mode(start):
    model = _model().train(start)
    with eval_mode(model) as m:
        assert m is model and not model.training
        assert not any(child.training for _, child in model.children())
    assert model.training is start
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert model.training is start                 # restored after an exception too


def test_eval_mode_rejects_non_modules():
    with pytest.raises(TypeError, match="Module"):
        with eval_mode(object()):
            pass


def test_predict_proba_equals_one_at_a_time_softmax_and_ignores_padding():
    model = _model().train()                       # dropout on: predict_proba must turn it off
    X = _inputs()
    proba = predict_proba(model, X, batch_size=4)                          # (9, 3)
    assert proba.shape == (9, 3) and proba.dtype == np.float64
    assert model.training                          # mode restored
    model.eval()
    alone = np.concatenate([softmax(model.forward(np.array([x])), axis=-1) for x in X])
    assert np.allclose(proba, alone, atol=1e-10)   # batched with padding == alone
    assert np.allclose(proba.sum(axis=1), 1)


def test_predict_proba_is_deterministic_in_training_mode_models():
    model = _model(dropout=0.5).train()
    X = _inputs()
    assert np.array_equal(predict_proba(model, X), predict_proba(model, X))


def test_pooling_weights_one_array_per_input():
    model = _model("attention").train()
    X = _inputs()
    weights = pooling_weights(model, X, batch_size=4)
    assert model.training
    assert [w.shape for w in weights] == [(len(x),) for x in X]
    assert all(np.isclose(w.sum(), 1) and np.all(w > 0) for w in weights)
    model.eval()
    for x, w in zip(X, weights):
        model.forward(np.array([x]))
        assert np.allclose(model.pool_weights[0], w)


def test_mean_pooling_weights_are_uniform():
    weights = pooling_weights(_model("mean"), _inputs())
    assert all(np.allclose(w, 1 / len(w)) for w in weights)


def test_bad_inputs_raise_value_errors():
    model = _model()
    with pytest.raises(ValueError, match="list of id lists"):
        predict_proba(model, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="empty"):
        pooling_weights(model, [])
    with pytest.raises(ValueError, match="batch_size"):
        predict_proba(model, _inputs(), batch_size=0)
