"""Tests for attnkit.optim: optimizer steps, schedules and clipping against numbers computed by hand."""
import math

import numpy as np
import pytest

from attnkit.nn import Linear
from attnkit.optim import (SGD, Adam, AdamW, clip_grad_norm, constant_schedule, cosine_schedule,
                           global_grad_norm, noam_schedule)


def pair(p, g, dtype=np.float64):
    return np.array(p, dtype=dtype), np.array(g, dtype=dtype)


# ----------------------------------------------------------------------------
# optimizer steps, by hand

def test_sgd_momentum_two_steps():
    p, g = pair([1.0, 2.0], [0.5, -1.0])
    opt = SGD([(p, g)], lr=0.1, momentum=0.9)
    opt.step()   # v = g = [0.5, -1.0]; p = [1 - 0.05, 2 + 0.1]
    assert np.allclose(p, [0.95, 2.1], rtol=0, atol=1e-15)
    g[...] = [0.2, 0.4]
    opt.step()   # v = 0.9 [0.5, -1.0] + [0.2, 0.4] = [0.65, -0.5]; p = [0.95 - 0.065, 2.1 + 0.05]
    assert np.allclose(p, [0.885, 2.15], rtol=0, atol=1e-15)
    assert opt.step_count == 2


def test_sgd_weight_decay():
    p, g = pair([2.0], [0.5])
    SGD([(p, g)], lr=0.1, weight_decay=0.1).step()   # g' = 0.5 + 0.1 * 2 = 0.7; p = 2 - 0.07
    assert p[0] == pytest.approx(1.93, abs=1e-15)
    assert g[0] == 0.5                                # the gradient itself is left alone


def test_adam_two_steps():
    p, g = pair([1.0, -2.0], [0.5, -1.0])
    opt = Adam([(p, g)], lr=0.1)
    opt.step()
    # m = 0.1 g = [0.05, -0.1], v = 0.001 g^2 = [0.00025, 0.001]; m_hat = g, v_hat = g^2,
    # so the first step is lr * g / (|g| + eps), about lr * sign(g)
    p1 = np.array([1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 1.0 / (1.0 + 1e-8)])
    assert np.allclose(p, p1, rtol=0, atol=1e-15)
    g[...] = [0.1, 0.3]
    opt.step()
    # m = 0.9 m + 0.1 g = [0.055, -0.06]; v = 0.999 v + 0.001 g^2 = [0.00025975, 0.001089]
    # bias corrections at t = 2: 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    m_hat = np.array([0.055, -0.06]) / 0.19
    v_hat = np.array([0.00025975, 0.001089]) / 0.001999
    p2 = p1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    assert np.allclose(p, p2, rtol=0, atol=1e-12)
    assert np.allclose(opt.buffers["m"][0], [0.055, -0.06], rtol=0, atol=1e-15)
    assert np.allclose(opt.buffers["v"][0], [0.00025975, 0.001089], rtol=0, atol=1e-15)


def test_adam_l2_versus_adamw_decoupled_decay():
    # second entry has zero gradient: only the decay moves it
    p_adam, g_adam = pair([2.0, -1.0], [0.5, 0.0])
    Adam([(p_adam, g_adam)], lr=0.1, weight_decay=0.5).step()
    # Adam: g' = g + 0.5 p = [1.5, -0.5], normalized by its own size: each entry moves by lr
    assert np.allclose(p_adam, [2.0 - 0.1 * 1.5 / (1.5 + 1e-8), -1.0 + 0.1 * 0.5 / (0.5 + 1e-8)], rtol=0, atol=1e-15)

    p_w, g_w = pair([2.0, -1.0], [0.5, 0.0])
    AdamW([(p_w, g_w)], lr=0.1, weight_decay=0.5).step()
    # AdamW: p = p (1 - lr wd) = [1.9, -0.95], then the Adam step on g alone: [-0.1, 0]
    assert np.allclose(p_w, [1.9 - 0.1 * 0.5 / (0.5 + 1e-8), -0.95], rtol=0, atol=1e-15)
    assert np.all(g_w == [0.5, 0.0])


def test_adamw_default_decay_and_no_decay_equals_adam():
    p1, g1 = pair([0.3, -0.7, 1.1], [0.2, -0.1, 0.05])
    p2, g2 = p1.copy(), g1.copy()
    a, w = Adam([(p1, g1)], lr=0.01), AdamW([(p2, g2)], lr=0.01, weight_decay=0.0)
    assert AdamW([pair([1.0], [1.0])], lr=0.01).weight_decay == 0.01
    for _ in range(3):
        a.step()
        w.step()
    assert np.array_equal(p1, p2)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_float32_updates_in_place(cls):
    layer = Linear(3, 2, seed=0, dtype=np.float32)
    W = layer.params["W"]
    before = W.copy()
    layer.grads["W"][...] = 0.5
    opt = cls(layer.parameters(), lr=0.1)
    opt.step()
    assert layer.params["W"] is W and W.dtype == np.float32    # same array, same dtype
    assert not np.array_equal(W, before)
    assert all(b.dtype == np.float32 for bufs in opt.buffers.values() for b in bufs)
    opt.zero_grad()
    assert not layer.grads["W"].any()


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_float32_matches_float64(cls):
    p64, g64 = pair([0.3, -0.7, 1.1], [0.2, -0.1, 0.05])
    p32, g32 = p64.astype(np.float32), g64.astype(np.float32)
    o64, o32 = cls([(p64, g64)], lr=0.01), cls([(p32, g32)], lr=0.01)
    for _ in range(5):
        o64.step()
        o32.step()
    assert np.allclose(p32, p64, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs", [(SGD, {"momentum": 0.9}), (Adam, {}), (AdamW, {})])
def test_state_dict_round_trip(cls, kwargs):
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(4), rng.standard_normal(4)
    a = cls([(p, g)], lr=0.05, **kwargs)
    for _ in range(3):
        a.step()
    state = a.state_dict()
    q, h = p.copy(), g.copy()
    b = cls([(q, h)], lr=0.9, **kwargs)       # another lr: the state restores it
    b.load_state_dict(state)
    assert b.lr == 0.05 and b.step_count == 3
    a.step()
    b.step()
    assert np.array_equal(p, q)
    state["step_count"] = 99                  # the dict is a copy: changing it changes nothing
    assert a.step_count == 4


def test_load_state_dict_errors():
    a = Adam([pair([1.0, 2.0], [0.0, 0.0])])
    with pytest.raises(ValueError, match="this SGD cannot load a state saved by Adam:"):
        SGD([pair([1.0, 2.0], [0.0, 0.0])], lr=0.1).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match=r"'m.0' has shape \(2,\) in the state but parameter 0 has shape \(3,\)"):
        Adam([pair([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])]).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="buffers for 2 arrays but this optimizer has 4"):
        Adam([pair([1.0, 2.0], [0.0, 0.0]), pair([1.0], [0.0])]).load_state_dict(a.state_dict())


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match=r"shape \(2,\) but its gradient has shape \(3,\)"):
        SGD([(np.zeros(2), np.zeros(3))], lr=0.1)
    with pytest.raises(TypeError, match="only floating-point"):
        SGD([(np.zeros(2, dtype=int), np.zeros(2, dtype=int))], lr=0.1)
    with pytest.raises(ValueError, match="learning rate must be a finite number >= 0"):
        SGD([pair([1.0], [0.0])], lr=-1.0)
    opt = Adam([pair([1.0], [0.0])])
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = float("nan")
    with pytest.raises(ValueError, match="betas"):
        Adam([pair([1.0], [0.0])], betas=(0.9, 1.0))


def test_optimizer_accepts_a_module():
    layer = Linear(2, 2, seed=0, dtype=np.float64)
    assert len(SGD(layer, lr=0.1).params) == 2


# ----------------------------------------------------------------------------
# clipping

def test_clip_grad_norm_by_hand():
    g1, g2 = np.array([3.0]), np.array([4.0, 0.0])
    params = [(np.zeros(1), g1), (np.zeros(2), g2)]
    assert global_grad_norm(params) == 5.0
    total = clip_grad_norm(params, 1.0)          # scale by 1 / 5
    assert total == 5.0
    assert np.allclose(g1, [0.6], rtol=0, atol=1e-15) and np.allclose(g2, [0.8, 0.0], rtol=0, atol=1e-15)
    assert global_grad_norm(params) == pytest.approx(1.0, abs=1e-15)


def test_clip_grad_norm_below_is_a_no_op():
    g = np.array([3.0, 4.0], dtype=np.float32)
    assert clip_grad_norm([(np.zeros(2, dtype=np.float32), g)], 10.0) == 5.0
    assert np.array_equal(g, np.array([3.0, 4.0], dtype=np.float32)) and g.dtype == np.float32


def test_clip_grad_norm_errors_and_non_finite():
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        clip_grad_norm([pair([1.0], [1.0])], 0.0)
    g = np.array([np.inf, 1.0])
    assert clip_grad_norm([(np.zeros(2), g)], 1.0) == math.inf
    assert g[1] == 1.0                           # not turned into nan


# ----------------------------------------------------------------------------
# schedules

def test_noam_by_hand_and_peak_at_warmup():
    s = noam_schedule(512, 4000)
    assert s(4000) == pytest.approx(1 / math.sqrt(512 * 4000), rel=1e-12) == s.peak_lr   # about 6.99e-4
    assert s(1) == pytest.approx(512 ** -0.5 * 4000 ** -1.5, rel=1e-12)
    assert s(16000) == pytest.approx(512 ** -0.5 / 126.49110640673517, rel=1e-12)  # sqrt(16000)
    steps = np.arange(1, 12001)
    lrs = s(steps)
    assert int(steps[np.argmax(lrs)]) == 4000
    assert np.all(np.diff(lrs[:4000]) > 0) and np.all(np.diff(lrs[3999:]) < 0)
    assert noam_schedule(512, 4000, factor=2.0)(10) == pytest.approx(2 * s(10))


def test_cosine_by_hand():
    s = cosine_schedule(peak_lr=1.0, warmup=10, total_steps=110, min_lr=0.1)
    assert s(1) == pytest.approx(0.1) and s(5) == pytest.approx(0.5) and s(10) == 1.0
    assert s(60) == pytest.approx(0.55)            # halfway: min + (peak - min) / 2
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    lrs = s(np.arange(1, 200))
    assert np.all(np.diff(lrs[:10]) > 0) and np.all(np.diff(lrs[9:]) <= 0)
    assert int(np.argmax(lrs)) + 1 == 10
    assert cosine_schedule(1.0, 0, 10)(1) < 1.0    # no warmup: decay from the first step


def test_constant_schedule():
    s = constant_schedule(3e-4)
    assert s(1) == 3e-4 and s(10 ** 6) == 3e-4


@pytest.mark.parametrize("schedule", [noam_schedule(64, 10), cosine_schedule(1.0, 10, 100), constant_schedule(0.1)])
def test_schedules_reject_step_zero(schedule):
    with pytest.raises(ValueError, match="counted from 1"):
        schedule(0)
    with pytest.raises(ValueError, match="counted from 1"):
        schedule(np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="whole step numbers"):
        schedule(1.5)


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="warmup >= 1"):
        noam_schedule(512, 0)
    with pytest.raises(ValueError, match="warmup < total_steps"):
        cosine_schedule(1.0, 100, 100)
    with pytest.raises(ValueError, match="min_lr <= peak_lr"):
        cosine_schedule(1.0, 10, 100, min_lr=2.0)


def test_schedule_classes_check_their_arguments_where_they_are_made():
    from attnkit.optim import ConstantSchedule, CosineSchedule, NoamSchedule
    with pytest.raises(ValueError, match="0 <= warmup < total_steps"):
        CosineSchedule(1e-3, 10, 10)                   # would divide by zero at every step after warmup
    with pytest.raises(ValueError, match="min_lr <= peak_lr"):
        CosineSchedule(1e-3, 1, 10, min_lr=1.0)
    with pytest.raises(ValueError, match="warmup >= 1"):
        NoamSchedule(512, 0)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        ConstantSchedule(float("nan"))
    assert cosine_schedule(1e-3, 1, 10) == CosineSchedule(1e-3, 1, 10)   # the factory is the class
    assert isinstance(CosineSchedule(1, 1.0, 10).warmup, int)
