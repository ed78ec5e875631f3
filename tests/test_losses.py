"""Tests for attnkit.losses: values against references, gradients against finite differences, edge cases."""
import math

import numpy as np
import pytest

from attnkit.gradcheck import numerical_gradient, rel_error
from attnkit.losses import CrossEntropyLoss, MSELoss


def reference_ce(logits, targets, eps=0.0, ignore_index=None):
    """Cross-entropy against the explicit target distribution q = (1 - eps) one-hot + eps / V, float64,
    with a log-sum-exp written out (fine for the moderate logits it is used on)."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1, logits.shape[-1])
    t = np.asarray(targets).reshape(-1)
    V = x.shape[1]
    keep = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    x, t = x[keep], t[keep]
    logp = x - np.log(np.sum(np.exp(x), axis=1, keepdims=True))
    q = np.full(x.shape, eps / V)
    q[np.arange(len(t)), t] += 1.0 - eps
    return float(np.mean(-np.sum(q * logp, axis=1)))


def test_value_by_hand():
    # one position, logits (1, 2, 3), target 2: loss = log(e^1 + e^2 + e^3) - 3
    lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    loss = CrossEntropyLoss().forward(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    assert loss == pytest.approx(lse - 3.0, rel=1e-12)
    # smoothing eps = 0.3 over V = 3: (1 - eps)(lse - 3) + (eps / 3) * sum_v (lse - x_v)
    eps = 0.3
    smooth = (1 - eps) * (lse - 3.0) + eps / 3 * ((lse - 1) + (lse - 2) + (lse - 3))
    loss = CrossEntropyLoss(label_smoothing=eps).forward(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    assert loss == pytest.approx(smooth, rel=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("ignore_index", [None, 0])
def test_value_matches_reference(eps, ignore_index):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 4, 7)) * 3          # (B, T, V)
    targets = rng.integers(0, 7, size=(3, 4))            # (B, T)
    targets[0, :2] = 0                                   # make sure something is ignored
    loss = CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=eps).forward(logits, targets)
    assert loss == pytest.approx(reference_ce(logits, targets, eps, ignore_index), rel=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("ignore_index", [None, -100])
def test_gradient_matches_finite_differences(eps, ignore_index):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 5, 6))               # (B, T, V) float64
    targets = rng.integers(0, 6, size=(2, 5))
    if ignore_index is not None:
        targets[1, 3:] = ignore_index                     # padded tail
    ce = CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=eps)
    ce.forward(logits, targets)
    grad = ce.backward()
    num = numerical_gradient(lambda: ce.forward(logits, targets), logits)
    assert grad.shape == logits.shape and grad.dtype == logits.dtype
    assert rel_error(grad, num) < 1e-7
    if ignore_index is not None:
        assert np.all(grad[1, 3:] == 0)


def test_gradient_rows_sum_to_zero():
    # softmax - q sums to 0 over the classes at every position (both are distributions)
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 9))
    ce = CrossEntropyLoss(label_smoothing=0.2)
    ce.forward(logits, rng.integers(0, 9, size=4))
    assert np.allclose(ce.backward().sum(axis=-1), 0, atol=1e-15)


def test_ignored_positions_do_not_matter():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((2, 3, 5))
    targets = np.array([[1, 2, 0], [0, 0, 4]])
    ce = CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    a = ce.forward(logits, targets)
    assert ce.num_items == 3
    changed = logits.copy()
    changed[targets == 0] = rng.standard_normal((3, 5)) * 100   # anything at ignored positions
    changed[1, 0] = np.nan                                      # even nan or -inf
    changed[1, 1] = -np.inf
    assert ce.forward(changed, targets) == a
    assert np.all(ce.backward()[targets == 0] == 0)


def test_all_ignored_gives_zero_loss_and_gradient():
    ce = CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    logits = np.ones((2, 3, 4), dtype=np.float32)
    loss = ce.forward(logits, np.zeros((2, 3), dtype=np.int64))
    grad = ce.backward()
    assert loss == 0.0 and ce.num_items == 0
    assert grad.shape == logits.shape and grad.dtype == np.float32 and not grad.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_extreme_logits_stay_finite(dtype, eps):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=dtype)   # (N, V)
    targets = np.array([0, 2])
    ce = CrossEntropyLoss(label_smoothing=eps)
    loss = ce.forward(logits, targets)
    grad = ce.backward()
    assert np.isfinite(loss) and np.all(np.isfinite(grad)) and grad.dtype == dtype
    # position 0 is certain and right (nll 0), position 1 certain and wrong (nll 2e4);
    # the smoothing term at each position is mean_v(-log p_v) = (0 + 1e4 + 2e4) / 3
    expected = ((1 - eps) * (0 + 2e4) + eps * 2 * 1e4) / 2
    assert loss == pytest.approx(expected, rel=1e-6)


def test_float32_matches_float64():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((8, 11)) * 4
    targets = rng.integers(0, 11, size=8)
    ce64, ce32 = CrossEntropyLoss(label_smoothing=0.1), CrossEntropyLoss(label_smoothing=0.1)
    l64 = ce64.forward(logits, targets)
    l32 = ce32.forward(logits.astype(np.float32), targets)
    g32 = ce32.backward()
    assert g32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert np.allclose(g32, ce64.backward(), atol=1e-6)


def test_minus_inf_logit_without_smoothing_is_a_removed_class():
    # masking class 3 with -inf equals leaving it out of the logits
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((4, 5))
    targets = np.array([0, 1, 2, 4])
    masked = logits.copy()
    masked[:, 3] = -np.inf
    ce = CrossEntropyLoss()
    loss = ce.forward(masked, targets)
    grad = ce.backward()
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 3] == 0)
    kept = np.delete(logits, 3, axis=1)
    assert loss == pytest.approx(reference_ce(kept, np.array([0, 1, 2, 3])), rel=1e-12)


def test_minus_inf_logit_with_smoothing_raises():
    logits = np.array([[0.0, 1.0, -np.inf]])
    with pytest.raises(ValueError, match="label_smoothing=0.1.*-inf"):
        CrossEntropyLoss(label_smoothing=0.1).forward(logits, np.array([0]))


def test_minus_inf_target_logit_raises():
    logits = np.array([[0.0, 1.0, -np.inf]])
    with pytest.raises(ValueError, match="target class 2 is -inf"):
        CrossEntropyLoss().forward(logits, np.array([2]))


def test_nan_logits_raise():
    logits = np.array([[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"nan at position \(0,\)"):
        CrossEntropyLoss().forward(logits, np.array([0, 1]))


@pytest.mark.parametrize("targets, ignore_index, match", [
    (np.array([[0, 5]]), None, r"\[0, V=5\).*found \[5\]"),
    (np.array([[0, -1]]), None, r"found \[-1\]"),
    (np.array([[0, -1]]), -100, r"or equal ignore_index=-100; found \[-1\]"),
])
def test_out_of_range_targets(targets, ignore_index, match):
    with pytest.raises(ValueError, match=match):
        CrossEntropyLoss(ignore_index=ignore_index).forward(np.zeros((1, 2, 5)), targets)


def test_ignore_index_may_be_out_of_range():
    loss = CrossEntropyLoss(ignore_index=-100).forward(np.zeros((1, 2, 5)), np.array([[3, -100]]))
    assert loss == pytest.approx(math.log(5))


def test_shape_and_type_errors():
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4\) do not match logits of shape \(2, 3, 5\)"):
        ce.forward(np.zeros((2, 3, 5)), np.zeros((2, 4), dtype=int))
    with pytest.raises(TypeError, match="integer class ids, got dtype float64"):
        ce.forward(np.zeros((2, 5)), np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="logits must be a floating-point array"):
        ce.forward(np.zeros((2, 5), dtype=int), np.array([1, 2]))
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        CrossEntropyLoss(ignore_index=0.5)
    with pytest.raises(RuntimeError, match="before each backward"):
        CrossEntropyLoss().backward()
    ce.forward(np.zeros((2, 5)), np.array([1, 2]))
    ce.backward()
    with pytest.raises(RuntimeError, match="before each backward"):
        ce.backward()                                  # the cache is consumed by the first backward


def test_mse_value_and_gradient():
    rng = np.random.default_rng(7)
    pred, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    mse = MSELoss()
    assert mse.forward(pred, target) == pytest.approx(np.sum((pred - target) ** 2) / 12, rel=1e-12)
    grad = mse.backward()
    num = numerical_gradient(lambda: mse.forward(pred, target), pred)
    assert rel_error(grad, num) < 1e-7
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*shape \(4,\)"):
        mse.forward(pred, target[0])
