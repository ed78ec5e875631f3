"""Positions with grouped-query heads and sliding windows (chapters 22 and 23 together): every
position method through the key/value cache with shared key/value heads, gradient checks of the
rotary and ALiBi models with grouped heads, and every relative method through the rolling window
cache."""
import numpy as np
import pytest

from attnkit.gradcheck import assert_model_gradients
from attnkit.losses import CrossEntropyLoss
from attnkit.models import GPT, GPTConfig
from attnkit.positions import POSITION_METHODS
from attnkit.seeding import make_rng


def config(pos, **kw):
    table = 24 if pos in ("learned", "sinusoidal") else None
    return GPTConfig(**(dict(vocab_size=11, context_length=12, num_layers=2, num_heads=4, d_model=16, d_ff=24,
                             seed=2, pos=pos, position_table=table, dtype=np.float64) | kw))


@pytest.mark.parametrize("pos", POSITION_METHODS)
@pytest.mark.parametrize("kv", [1, 2])
def test_grouped_heads_prefill_then_steps_equal_the_full_forward(pos, kv, stepwise):
    m = GPT(config(pos, num_kv_heads=kv))
    ids = make_rng(5).integers(0, 11, size=(2, 20))                       # past the context of 12
    full = m.forward(ids)
    cache = m.make_cache(2, capacity=20)
    np.testing.assert_allclose(stepwise(m, ids, 7, cache), full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pos", ["rope", "alibi"])
def test_grouped_heads_gradient_check(pos):
    m = GPT(config(pos, num_kv_heads=2, num_layers=1, d_model=8, d_ff=8))
    ids, targets = (make_rng(s).integers(0, 11, size=(2, 6)) for s in (0, 1))
    assert_model_gradients(m, ids, targets, CrossEntropyLoss(), label=pos)


@pytest.mark.parametrize("pos", ["rope", "none", "sinusoidal", "alibi"])
def test_window_cache_equals_the_banded_forward(pos, stepwise):
    # keys are cached at their absolute positions (rotated, for rope): the rolling cache gives the
    # logits of the whole sequence under the sliding-window mask, also past the context
    m = GPT(config(pos, window=5, sinks=1, num_kv_heads=2))
    ids = make_rng(6).integers(0, 11, size=(2, 22))
    full = m.forward(ids)
    cache = m.make_cache(2)
    np.testing.assert_allclose(stepwise(m, ids, 6, cache), full, rtol=1e-10, atol=1e-12)


def test_alibi_through_the_rolling_cache_reads_the_slot_positions():
    # the ring holds keys out of position order: the bias must follow the slots, not arange
    m = GPT(config("alibi", window=3, sinks=2))
    ids = make_rng(7).integers(0, 11, size=(1, 30))
    full = m.forward(ids)
    cache = m.make_cache(1)
    steps = [m.forward(ids[:, t:t + 1], cache=cache) for t in range(30)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-10, atol=1e-12)
    ring = cache.layers[0]
    assert sorted(ring.slot_pos) == [0, 1, 27, 28, 29] and list(ring.slot_pos) != sorted(ring.slot_pos)
