"""Attention-only GPTs (GPTConfig(mlp=False)) and attnkit.induction: repeated-token data, previous-token
and induction scores on hand-built attention matrices, the loss on the repeated half, head ablation
and the phase-change rule."""
import numpy as np
import pytest

from attnkit.gradcheck import assert_model_gradients
from attnkit.induction import (ablated, head_scores, induction_scores, induction_targets, phase_change_step,
                           previous_token_scores, repeat_batches, repeated_half_loss, repeated_half_mask,
                           repeated_tokens, token_losses)
from attnkit.losses import CrossEntropyLoss
from attnkit.models import GPT, GPTConfig
from attnkit.seeding import make_rng


def tiny(**kw):
    cfg = dict(vocab_size=7, context_length=9, num_layers=2, num_heads=2, d_model=8, d_ff=12, dropout=0.0,
               seed=1, mlp=False) | kw
    return GPT(GPTConfig(**cfg))


# ---------------------------------------------------------------- the attention-only GPT

def test_attention_only_blocks_have_no_feed_forward():
    m, full = tiny(), tiny(mlp=True)
    names = [n for n, _, _ in m.named_parameters()]
    assert not any(".ff." in n or ".norm2." in n for n in names)
    assert any(".ff." in n for n, _, _ in full.named_parameters())
    # the attention weights are drawn as in the model with MLPs (first layer: same draws)
    np.testing.assert_array_equal(m.blocks.layers[0].self_attn.params["W_q"],
                                  full.blocks.layers[0].self_attn.params["W_q"])
    # a block is x + attention(LN(x)): the forward equals that sum written out
    x = make_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    layer = m.blocks.layers[0]
    expected = x + layer.self_attn.forward(layer.norm1.forward(x), mask=np.tril(np.ones((5, 5), bool)))
    np.testing.assert_allclose(layer.forward(x, np.tril(np.ones((5, 5), bool))), expected, rtol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(norm_first=False), dict(num_layers=1), dict(pos="rope")])
def test_attention_only_gradient_check_float64(kw):
    m = tiny(dtype=np.float64, **kw)
    ids, targets = make_rng(0).integers(0, 7, (2, 5)), make_rng(1).integers(0, 7, (2, 5))
    assert_model_gradients(m, ids, targets, CrossEntropyLoss())


def test_attention_only_float32_causal_and_bad_flag():
    m = tiny()
    ids = make_rng(2).integers(0, 7, (1, 9))
    base = m.forward(ids)
    assert base.dtype == np.float32
    changed = ids.copy()
    changed[0, 5:] = (changed[0, 5:] + 1) % 7
    np.testing.assert_allclose(m.forward(changed)[0, :5], base[0, :5], rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="mlp must be True"):
        GPTConfig(vocab_size=7, mlp="no")


# ---------------------------------------------------------------- the data

def test_repeated_tokens_default_is_two_halves():
    d = repeated_tokens(5, 6, 11, seed=3)
    assert d.ids.shape == (5, 12) and np.all(d.half == 6) and np.all(d.start == 0)
    np.testing.assert_array_equal(d.ids[:, 6:], d.ids[:, :6])
    assert d.ids.min() >= 0 and d.ids.max() < 11
    np.testing.assert_array_equal(repeated_tokens(5, 6, 11, seed=3).ids, d.ids)     # seeded
    assert not np.array_equal(repeated_tokens(5, 6, 11, seed=4).ids, d.ids)


def test_repeated_tokens_vary_length_and_place():
    d = repeated_tokens(400, 8, 50, seed=0, min_half=3, length=30)
    assert d.ids.shape == (400, 30)
    assert d.half.min() == 3 and d.half.max() == 8
    assert d.start.min() == 0 and np.all(d.start + 2 * d.half <= 30)
    assert len(np.unique(d.start)) > 15                                   # spread over the row
    t = np.arange(30)
    for b in range(400):                                                  # the repeat, row by row
        s, h = d.start[b], d.half[b]
        np.testing.assert_array_equal(d.ids[b, s + h:s + 2 * h], d.ids[b, s:s + h])
    # the filler is random: most pairs at the same lag outside the repeat differ
    outside = ~((t >= (d.start + d.half)[:, None]) & (t < (d.start + 2 * d.half)[:, None]))
    lag = d.ids[:, 8:] == d.ids[:, :-8]
    assert lag[outside[:, 8:]].mean() < 0.1


def test_repeat_batches_are_shifted_pairs():
    x, y = next(repeat_batches(4, 5, 9, seed=1))
    assert x.shape == y.shape == (4, 9)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_repeated_tokens_with_a_beginning_of_sequence_token():
    plain = repeated_tokens(6, 5, 9, seed=2, min_half=3, length=14)
    d = repeated_tokens(6, 5, 9, seed=2, min_half=3, length=14, bos=9)
    assert d.ids.shape == (6, 15) and np.all(d.ids[:, 0] == 9)
    np.testing.assert_array_equal(d.ids[:, 1:], plain.ids)                # the same rows, shifted
    np.testing.assert_array_equal(d.start, plain.start + 1)
    np.testing.assert_array_equal(d.half, plain.half)
    for row, s, n in zip(d.ids, d.start, d.half):
        np.testing.assert_array_equal(row[s + n:s + 2 * n], row[s:s + n])
    assert d.ids[:, 1:].max() < 9                                         # bos is no random id
    with pytest.raises(ValueError, match="bos=vocab_size"):
        repeated_tokens(2, 5, 9, bos=3)


def test_repeat_batches_per_batch_lengths():
    stream = repeat_batches(3, 7, 11, seed=0, min_half=4, bos=11, per_batch=True)
    lengths = set()
    for _ in range(40):
        x, y = next(stream)
        n = (x.shape[1] + 1 - 1) // 2                                     # rows of 1 + 2 n tokens
        assert x.shape == y.shape == (3, 2 * n) and 4 <= n <= 7
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
        assert np.all(x[:, 0] == 11)
        ids = np.concatenate([x, y[:, -1:]], axis=1)                      # (3, 2 n + 1)
        np.testing.assert_array_equal(ids[:, 1 + n:], ids[:, 1:1 + n])    # second half = first
        lengths.add(n)
    assert lengths == {4, 5, 6, 7}                                        # every length is drawn
    again = repeat_batches(3, 7, 11, seed=0, min_half=4, bos=11, per_batch=True)
    np.testing.assert_array_equal(next(again)[0], next(repeat_batches(3, 7, 11, seed=0, min_half=4,
                                                                      bos=11, per_batch=True))[0])
    with pytest.raises(ValueError, match="give min_half"):
        next(repeat_batches(3, 7, 11, per_batch=True))
    with pytest.raises(ValueError, match="no length"):
        next(repeat_batches(3, 7, 11, min_half=4, length=20, per_batch=True))
    with pytest.raises(ValueError, match="must not exceed"):
        next(repeat_batches(3, 7, 11, min_half=8, per_batch=True))


@pytest.mark.parametrize("kw, match", [(dict(min_half=9), "must not exceed"), (dict(length=10), "length"),
                                       (dict(min_half=1), "min_half")])
def test_repeated_tokens_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        repeated_tokens(2, 8, 10, **kw)


# ---------------------------------------------------------------- the scores

def causal_uniform(B, h, T):
    w = np.tril(np.ones((T, T)))
    return np.broadcast_to(w / w.sum(1, keepdims=True), (B, h, T, T)).copy()


def offset_head(B, T, offset):
    """Every row t reads key t - offset (row t < offset reads key 0)."""
    w = np.zeros((B, 1, T, T))
    t = np.arange(T)
    w[:, 0, t, np.maximum(t - offset, 0)] = 1
    return w


def test_previous_token_score():
    T = 10
    assert np.allclose(previous_token_scores(offset_head(3, T, 1)), 1)
    assert np.allclose(previous_token_scores(offset_head(3, T, 0)), 0)   # reads itself
    t = np.arange(1, T)
    np.testing.assert_allclose(previous_token_scores(causal_uniform(2, 3, T)), np.mean(1 / (t + 1)))
    both = np.concatenate([offset_head(2, T, 1), 0.5 * offset_head(2, T, 1) + 0.5 * offset_head(2, T, 2)],
                          axis=1)
    # half on t - 1, half on t - 2 (at t = 1 that is key 0 = t - 1 again: one row of 1)
    np.testing.assert_allclose(previous_token_scores(both), [1, 0.5 + 0.5 / (T - 1)])


def induction_head(T, half, start):
    """A perfect induction head on rows of given half and start; elsewhere it reads key 0."""
    queries, keys = induction_targets(T, half, start)
    B = queries.shape[0]
    w = np.zeros((B, 1, T, T))
    w[:, 0, :, 0] = ~queries
    b, t = np.nonzero(queries)
    w[b, 0, t, keys[b, t]] = 1
    return w


def test_induction_score_hand_built():
    T, half, start = 14, np.array([3, 5, 4]), np.array([0, 2, 5])
    perfect = induction_head(T, half, start)
    assert np.allclose(induction_scores(perfect, half, start), 1)
    assert np.allclose(perfect.sum(-1), 1) and np.all(np.triu(perfect[0, 0], 1) == 0)   # causal rows
    # a head reading the earlier copy of its own token (t - half), or the previous token, scores 0
    same = np.zeros_like(perfect)
    queries, keys = induction_targets(T, half, start)
    b, t = np.nonzero(queries)
    same[b, 0, t, keys[b, t] - 1] = 1
    assert np.allclose(induction_scores(same, half, start), 0)
    assert np.allclose(induction_scores(offset_head(3, T, 1), half, start), 0)
    # half of each row on the right key: 0.5; the wrong half or start misses the heads
    assert np.allclose(induction_scores(0.5 * perfect + 0.5 * same, half, start), 0.5)
    assert induction_scores(perfect, half + 1, start)[0] < 0.2
    # the default format (start 0, one half for every row) and the mean over rows
    d = repeated_tokens(2, 5, 9, seed=0)
    assert np.allclose(induction_scores(induction_head(10, 5, 0).repeat(2, 0), 5), 1)
    assert d.half[0] == 5


def test_induction_score_uniform_head_and_targets():
    T, half = 12, 6
    queries, keys = induction_targets(T, half)
    assert queries.shape == (1, T) and queries[0].tolist() == [False] * 6 + [True] * 6
    assert keys[0, 6:].tolist() == [1, 2, 3, 4, 5, 6]
    t = np.arange(6, 12)
    np.testing.assert_allclose(induction_scores(causal_uniform(2, 2, T), half), np.mean(1 / (t + 1)))
    # weights of T - 1 positions (a model reads ids[:, :-1]): the last repeated row is cut off
    np.testing.assert_allclose(induction_scores(induction_head(T, half, 0)[:, :, :-1, :-1], half), 1)


@pytest.mark.parametrize("weights, half, match", [
    (np.zeros((2, 3, 4)), 2, "B, h, T, T"),
    (np.zeros((1, 1, 4, 5)), 2, "B, h, T, T"),
    (np.zeros((1, 1, 4, 4)), 4, "no query row"),
    (np.zeros((2, 1, 6, 6)), np.array([2, 2, 2]), "one such int per row"),
    (np.zeros((1, 1, 6, 6)), 0, "half must be"),
])
def test_score_errors(weights, half, match):
    with pytest.raises(ValueError, match=match):
        induction_scores(weights, half)
    if match == "B, h, T, T":
        with pytest.raises(ValueError, match=match):
            previous_token_scores(weights)


# ---------------------------------------------------------------- the loss on the repeated half

def test_repeated_half_mask_and_loss():
    mask = repeated_half_mask(9, np.array([3, 2]), np.array([0, 3]))
    assert mask[0].tolist() == [False] * 3 + [True] * 2 + [False] * 4     # rows 3, 4 predict ids 4, 5
    assert mask[1].tolist() == [False] * 5 + [True] + [False] * 3         # start 3, half 2: row 5
    rng = make_rng(0)
    ids = rng.integers(0, 6, (2, 10))
    logits = rng.standard_normal((2, 9, 6))
    losses = token_losses(logits, ids)
    ref = np.stack([[CrossEntropyLoss().forward(logits[b, t:t + 1], ids[b, t + 1:t + 2]) for t in range(9)]
                    for b in range(2)])
    np.testing.assert_allclose(losses, ref, rtol=1e-10)
    np.testing.assert_allclose(repeated_half_loss(logits, ids, np.array([3, 2]), np.array([0, 3])),
                               losses[mask].mean())
    assert np.isclose(repeated_half_loss(np.zeros((2, 9, 6)), ids, 4), np.log(6))   # uniform: ln V
    with pytest.raises(ValueError, match="ids must be"):
        token_losses(logits, ids[:, :-1])


# ---------------------------------------------------------------- a model's heads, ablation

def test_head_scores_and_ablation_of_a_model():
    m = tiny(context_length=11)
    d = repeated_tokens(8, 6, 7, seed=0, min_half=3)
    s = head_scores(m, d)
    assert s.previous.shape == s.induction.shape == (2, 2)
    assert m.training                                                     # mode restored
    w = m.attention_weights()
    np.testing.assert_allclose(s.previous[1], previous_token_scores(w[1]))
    np.testing.assert_allclose(s.induction[0], induction_scores(w[0], d.half, d.start))
    logits = m.forward(d.ids[:, :-1])
    assert np.isclose(s.repeat_loss, repeated_half_loss(logits, d.ids, d.half, d.start), rtol=1e-5)
    with ablated(m, [(1, 0)]):
        assert m.blocks.layers[1].self_attn.head_gate.tolist() == [0, 1]
        assert not np.allclose(m.forward(d.ids[:, :-1]), logits)
    assert m.blocks.layers[1].self_attn.head_gate.tolist() == [1, 1]      # restored
    np.testing.assert_allclose(m.forward(d.ids[:, :-1]), logits, rtol=1e-6)
    # every head off: the logits at t depend on token t and position t only
    with ablated(m, [(l, h) for l in range(2) for h in range(2)]):
        a = m.forward(d.ids[:, :-1])
        other = d.ids[:, :-1].copy()
        other[:, :4] = (other[:, :4] + 1) % 7
        np.testing.assert_allclose(m.forward(other)[:, 4:], a[:, 4:], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="layer < 2 and head < 2"):
        with ablated(m, [(2, 0)]):
            pass
    assert m.blocks.layers[0].self_attn.head_gate.tolist() == [1, 1]


def test_head_scores_of_a_list_of_batches_is_the_mean():
    m = tiny(context_length=13)
    batches = [repeated_tokens(4, n, 6, seed=n, bos=6) for n in (3, 4, 6)]
    each = [head_scores(m, d) for d in batches]
    s = head_scores(m, batches)
    np.testing.assert_allclose(s.previous, np.mean([e.previous for e in each], axis=0))
    np.testing.assert_allclose(s.induction, np.mean([e.induction for e in each], axis=0))
    assert np.isclose(s.repeat_loss, np.mean([e.repeat_loss for e in each]))
    assert np.isclose(s.other_loss, np.mean([e.other_loss for e in each]))
    with pytest.raises(ValueError, match="at least one"):
        head_scores(m, [])


def test_phase_change_step():
    steps = np.arange(0, 100, 10)
    loss = np.array([4.0, 4.0, 3.9, 3.8, 2.0, 1.0, 0.5, 0.4, 0.4, 0.4])
    assert phase_change_step(steps, loss) == 40                           # first <= (4.0 + 0.4) / 2
    assert phase_change_step(steps, loss[::-1] * 0 + 1) == 0              # no drop: the first step
    with pytest.raises(ValueError, match="same length"):
        phase_change_step(steps, loss[:3])
