"""The decoder-only GPT: configuration, causality, whole-model gradient check, AdamW's decay groups,
gradient accumulation and checkpoints."""
import numpy as np
import pytest

from attnkit.gradcheck import assert_model_gradients
from attnkit.losses import CrossEntropyLoss
from attnkit.models import GPT, GPTConfig
from attnkit.optim import AdamW, decay_matrices
from attnkit.seeding import make_rng
from attnkit.train import accumulate_gradients, load_checkpoint, save_checkpoint


def tiny(**kw):
    cfg = dict(vocab_size=7, context_length=6, num_layers=2, num_heads=2, d_model=8, d_ff=12, dropout=0.0,
               seed=1) | kw
    return GPT(GPTConfig(**cfg))


def _ids(B=3, T=6, V=7, seed=0):
    return make_rng(seed).integers(0, V, size=(B, T))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_shape_and_dtype(dtype):
    m = tiny(dtype=dtype)
    logits = m.forward(_ids())
    assert logits.shape == (3, 6, 7) and logits.dtype == dtype
    assert m.forward(_ids(T=2)).shape == (3, 2, 7)                       # shorter than the context
    assert [w.shape for w in m.attention_weights()] == [(3, 2, 2, 2)] * 2


def test_logits_depend_only_on_the_past():
    m = tiny()
    ids = _ids(B=1)
    base = m.forward(ids)
    for t in range(5):
        changed = ids.copy()
        changed[0, t + 1:] = (changed[0, t + 1:] + 3) % 7                # change every later token
        np.testing.assert_allclose(m.forward(changed)[0, :t + 1], base[0, :t + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(m.forward(changed)[0, t + 1:], base[0, t + 1:])
    w = m.attention_weights()[0]
    assert np.all(np.triu(w[0, 0], k=1) == 0)                            # no weight on a future key


def test_parameter_count_and_tied_embeddings():
    untied, tied = tiny(), tiny(tie_embeddings=True)
    # the tied head reuses the (V, d_model) token table and keeps a (V,) bias; untied: W (d, V) + b (V,)
    assert untied.num_parameters() - tied.num_parameters() == 8 * 7
    assert tied.head.embedding is tied.tok_embed


@pytest.mark.parametrize("kw", [dict(), dict(tie_embeddings=True), dict(norm_first=False),
                                dict(activation="relu")])
def test_whole_model_gradient_check_float64(kw):
    m = tiny(dtype=np.float64, **kw)
    ids, targets = _ids(B=2, T=5), _ids(B=2, T=5, seed=1)
    assert_model_gradients(m, ids, targets, CrossEntropyLoss())


def test_backward_accumulates_until_zero_grad():
    m = tiny(dtype=np.float64)
    loss_fn = CrossEntropyLoss()
    ids, y = _ids(), _ids(seed=1)
    loss_fn.forward(m.forward(ids), y)
    m.zero_grad()
    m.backward(loss_fn.backward())
    once = {n: g.copy() for n, _, g in m.named_parameters()}
    loss_fn.forward(m.forward(ids), y)
    m.backward(loss_fn.backward())
    for n, _, g in m.named_parameters():
        np.testing.assert_allclose(g, 2 * once[n])


@pytest.mark.parametrize("kw, match", [
    (dict(d_model=10, num_heads=4), "must be divisible by num_heads"),
    (dict(context_length=0), "context_length must be an integer >= 1"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(activation="tanh"), "activation must be"),
])
def test_bad_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_bad_ids_raise():
    m = tiny()
    with pytest.raises(ValueError, match="position 6 is past the learned table of 6 positions"):
        m.forward(_ids(T=7))
    with pytest.raises(ValueError, match=r"must lie in \[0, 7\)"):
        m.forward(np.array([[1, 7]]))
    with pytest.raises(TypeError):
        GPT({"vocab_size": 7})


def test_adamw_decays_only_matrices():
    m = tiny(dtype=np.float64)
    flags = decay_matrices(m.parameters())
    names = [n for n, _, _ in m.named_parameters()]
    decayed = {n for n, f in zip(names, flags) if f}
    assert "tok_embed.W" in decayed and "head.W" in decayed and "blocks.layers.0.self_attn.W_q" in decayed
    assert not any(n.endswith(("gamma", "beta")) or n.endswith(".b") or "b_" in n.split(".")[-1] for n in decayed)
    for n, p, _ in m.named_parameters():                                 # make every vector non-zero
        if p.ndim == 1:
            p += 0.5
    before = m.state_dict()
    opt = AdamW(m.parameters(), lr=0.1, weight_decay=0.5, decay=flags)
    m.zero_grad()                                                        # no gradient: only the decay acts
    opt.step()
    after = m.state_dict()
    for n, f in zip(names, flags):
        if f:
            np.testing.assert_allclose(after[n], before[n] * (1 - 0.1 * 0.5))
        else:
            np.testing.assert_array_equal(after[n], before[n])
    with pytest.raises(ValueError, match="one per parameter"):
        AdamW(m.parameters(), decay=flags[:-1])


def test_gradient_accumulation_equals_the_larger_batch():
    m = tiny(dtype=np.float64)
    loss_fn = CrossEntropyLoss()
    x, y = _ids(B=8, seed=3), _ids(B=8, seed=4)
    big = loss_fn.forward(m.forward(x), y)
    m.zero_grad()
    m.backward(loss_fn.backward())
    ref = {n: g.copy() for n, _, g in m.named_parameters()}
    # unequal pieces, and one with ignored targets, still average over every counted position
    loss = accumulate_gradients(m, loss_fn, [(x[:1], y[:1]), (x[1:4], y[1:4]), (x[4:], y[4:])])
    assert loss == pytest.approx(big)
    for n, _, g in m.named_parameters():
        np.testing.assert_allclose(g, ref[n], rtol=1e-10, atol=1e-13)
    ignore = CrossEntropyLoss(ignore_index=0)
    yy = y.copy()
    yy[:2] = 0                                                           # two rows contribute nothing
    big = ignore.forward(m.forward(x), yy)
    m.zero_grad()
    m.backward(ignore.backward())
    ref = {n: g.copy() for n, _, g in m.named_parameters()}
    loss = accumulate_gradients(m, ignore, [(x[:2], yy[:2]), (x[2:5], yy[2:5]), (x[5:], yy[5:])])
    assert loss == pytest.approx(big)
    for n, _, g in m.named_parameters():
        np.testing.assert_allclose(g, ref[n], rtol=1e-10, atol=1e-13)
    # a wrong accumulation (the mean of the micro-batch means) differs for unequal pieces
    m.zero_grad()
    for xs, ys in [(x[:1], y[:1]), (x[1:], y[1:])]:
        loss_fn.forward(m.forward(xs), ys)
        m.backward(loss_fn.backward() / 2)
    assert not np.allclose(m.head.grads["W"], ref["head.W"])


def test_checkpoint_round_trip(tmp_path):
    m = tiny()
    opt = AdamW(m.parameters(), lr=1e-2, decay=decay_matrices(m.parameters()))
    loss_fn = CrossEntropyLoss()
    loss_fn.forward(m.forward(_ids()), _ids(seed=1))
    m.zero_grad()
    m.backward(loss_fn.backward())
    opt.step()
    path = save_checkpoint(tmp_path / "gpt.npz", m, opt, step=1, config=m.config)
    other = tiny(seed=9)
    other_opt = AdamW(other.parameters(), lr=1e-2)
    meta = load_checkpoint(path, other, other_opt)
    assert meta["step"] == 1 and meta["config"]["context_length"] == 6
    np.testing.assert_array_equal(other.forward(_ids()), m.forward(_ids()))
