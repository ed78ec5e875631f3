"""Tests of the recurrent layers (attnkit.nn.GRU, AdditiveAttention, BilinearAttention) and the
RNN encoder-decoder (attnkit.models.RNNSeq2Seq): float64 gradient checks, padding, masks, bad input."""
import numpy as np
import pytest

from attnkit.gradcheck import numerical_gradient, rel_error
from attnkit.nn import GRU, AdditiveAttention, BilinearAttention, masked_softmax

TOL = 1e-6
F64 = np.float64


def randn(rng, *shape):
    return rng.standard_normal(shape)


def check_all(loss, inputs, module, analytic_inputs):
    """Relative errors of analytic gradients (inputs, then every parameter) against central differences."""
    errors = {}
    for i, (x, g) in enumerate(zip(inputs, analytic_inputs)):
        errors[f"input{i}"] = rel_error(g, numerical_gradient(loss, x))
    grads = {name: g.copy() for name, _, g in module.named_parameters()}
    for name, p, _ in module.named_parameters():
        errors[name] = rel_error(grads[name], numerical_gradient(loss, p))
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"gradient check failed (relative errors): {bad}"
    return errors


# ----------------------------------------------------------------------------
# GRU

def reference_gru(gru, x, h0):
    """The gate equations written out per sequence and per step, no vectorization (the reference)."""
    p, H = gru.params, gru.H
    sig = lambda a: 1 / (1 + np.exp(-a))                               # noqa: E731
    out = np.zeros(x.shape[:2] + (H,))
    for b in range(x.shape[0]):
        h = h0[b]
        for t in range(x.shape[1]):
            gi = x[b, t] @ p["W_ih"] + p["b_ih"]
            gh = h @ p["W_hh"] + p["b_hh"]
            r = sig(gi[:H] + gh[:H])
            z = sig(gi[H:2 * H] + gh[H:2 * H])
            n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
            h = (1 - z) * n + z * h
            out[b, t] = h
    return out


def test_gru_matches_the_equations():
    rng = np.random.default_rng(0)
    gru = GRU(3, 4, rng=rng, dtype=F64)
    x, h0 = randn(rng, 2, 5, 3), randn(rng, 2, 4)
    hs, last = gru.forward(x, h0)
    assert hs.shape == (2, 5, 4) and last.shape == (2, 4)
    assert np.allclose(hs, reference_gru(gru, x, h0))
    assert np.array_equal(last, hs[:, -1])


@pytest.mark.parametrize("padded", [False, True])
def test_gru_gradients(padded):
    rng = np.random.default_rng(1)
    gru = GRU(3, 4, rng=rng, dtype=F64)
    x, h0 = randn(rng, 3, 5, 3), randn(rng, 3, 4)
    lengths = np.array([5, 2, 4]) if padded else None
    dhs, dlast = randn(rng, 3, 5, 4), randn(rng, 3, 4)

    def loss():
        hs, last = gru.forward(x, h0, lengths=lengths)
        return np.sum(hs * dhs) + np.sum(last * dlast)

    loss()
    gru.zero_grad()
    dx, dh0 = gru.backward(dhs, dlast)
    check_all(loss, [x, h0], gru, [dx, dh0])


def test_gru_backward_with_one_gradient_missing():
    rng = np.random.default_rng(2)
    gru = GRU(2, 3, rng=rng, dtype=F64)
    x = randn(rng, 2, 4, 2)
    dlast = randn(rng, 2, 3)
    gru.forward(x)
    gru.zero_grad()
    dx, _ = gru.backward(None, dlast)
    loss = lambda: np.sum(gru.forward(x)[1] * dlast)                    # noqa: E731
    assert rel_error(dx, numerical_gradient(loss, x)) < TOL


def test_gru_padding_invariance():
    """A padded row gives the states of the same row run alone, and its last state does not
    depend on what the padding holds."""
    rng = np.random.default_rng(3)
    gru = GRU(3, 4, rng=rng, dtype=F64)
    x = randn(rng, 2, 6, 3)
    lengths = np.array([6, 3])
    hs, last = gru.forward(x, lengths=lengths)
    alone, alone_last = gru.forward(x[1:, :3])
    assert np.allclose(hs[1, :3], alone[0]) and np.allclose(last[1], alone_last[0])
    assert np.allclose(hs[1, 3:], alone_last[0])                      # pads repeat the state
    x2 = x.copy()
    x2[1, 3:] = 100 * randn(rng, 3, 3)                                # garbage in the padding
    _, last2 = gru.forward(x2, lengths=lengths)
    assert np.allclose(last2, last)
    # a mask need not be a prefix: pads first (a reversed padded row) start from h0
    mask = np.array([[True] * 6, [False, False, False, True, True, True]])
    hs_m, last_m = gru.forward(x2[:, ::-1], mask=mask)
    ref, ref_last = gru.forward(x[1:, :3][:, ::-1])
    assert np.allclose(last_m[1], ref_last[0]) and np.allclose(hs_m[1, :3], 0)


def test_gru_float32_and_float64():
    for dtype in (np.float32, np.float64):
        gru = GRU(3, 4, seed=0, dtype=dtype)
        hs, last = gru.forward(np.ones((2, 3, 3), dtype=dtype))
        assert hs.dtype == dtype and last.dtype == dtype
        dx, dh0 = gru.backward(np.ones_like(hs), None)
        assert dx.dtype == dtype and dh0.dtype == dtype


def test_gru_bad_input():
    gru = GRU(3, 4, seed=0, dtype=F64)
    with pytest.raises(ValueError, match="d_in=3"):
        gru.forward(np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"\(B, T, d_in"):
        gru.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        gru.forward(np.zeros((2, 5, 3)), h0=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        gru.forward(np.zeros((2, 5, 3)), lengths=[5, 4, 3])
    with pytest.raises(ValueError, match=r"\[0, T=5\]"):
        gru.forward(np.zeros((2, 5, 3)), lengths=np.array([6, 1]))
    with pytest.raises(ValueError, match="mask must be a boolean array"):
        gru.forward(np.zeros((2, 5, 3)), mask=np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="not both"):
        gru.forward(np.zeros((2, 5, 3)), lengths=np.array([5, 5]), mask=np.ones((2, 5), dtype=bool))
    with pytest.raises(TypeError):
        gru.forward(np.zeros((2, 5, 3), dtype=int))


def test_gru_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    gru = GRU(3, 5, rng=rng, dtype=F64)
    ref = torch.nn.GRU(3, 5, batch_first=True).double()
    with torch.no_grad():                      # the mapping stated in GRU's docstring
        ref.weight_ih_l0.copy_(torch.from_numpy(gru.params["W_ih"].T))
        ref.weight_hh_l0.copy_(torch.from_numpy(gru.params["W_hh"].T))
        ref.bias_ih_l0.copy_(torch.from_numpy(gru.params["b_ih"]))
        ref.bias_hh_l0.copy_(torch.from_numpy(gru.params["b_hh"]))
    x, h0 = randn(rng, 2, 4, 3), randn(rng, 2, 5)
    hs, last = gru.forward(x, h0)
    out, h_n = ref(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert np.allclose(hs, out.detach().numpy()) and np.allclose(last, h_n[0].detach().numpy())


# ----------------------------------------------------------------------------
# attention scores of the RNN era

def make_attention(kind, rng):
    if kind == "additive":
        return AdditiveAttention(4, 3, 5, rng=rng, dtype=F64)
    return BilinearAttention(4, 3, rng=rng, dtype=F64)


@pytest.mark.parametrize("kind", ["additive", "bilinear"])
@pytest.mark.parametrize("separate_values", [True, False])
def test_attention_gradients(kind, separate_values):
    rng = np.random.default_rng(5)
    attn = make_attention(kind, rng)
    q, k = randn(rng, 2, 3, 4), randn(rng, 2, 6, 3)
    v = randn(rng, 2, 6, 2) if separate_values else None
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
    dout = randn(rng, 2, 3, 2 if separate_values else 3)
    loss = lambda: np.sum(attn.forward(q, k, v, mask=mask) * dout)      # noqa: E731
    loss()
    attn.zero_grad()
    dq, dk, dv = attn.backward(dout)
    inputs, grads = [q, k], [dq, dk]
    if separate_values:
        inputs.append(v)
        grads.append(dv)
    else:
        assert dv is None
    check_all(loss, inputs, attn, grads)


def test_additive_score_is_the_formula():
    rng = np.random.default_rng(6)
    attn = AdditiveAttention(4, 3, 5, rng=rng, dtype=F64)
    q, k = randn(rng, 1, 2, 4), randn(rng, 1, 3, 3)
    attn.forward(q, k)
    p = attn.params
    s = np.array([[p["v"] @ np.tanh(q[0, i] @ p["W_q"] + k[0, j] @ p["W_k"]) for j in range(3)]
                  for i in range(2)])
    w = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    assert np.allclose(attn.weights[0], w)


def test_bilinear_score_is_the_formula():
    rng = np.random.default_rng(7)
    attn = BilinearAttention(4, 3, rng=rng, dtype=F64)
    q, k = randn(rng, 1, 2, 4), randn(rng, 1, 3, 3)
    attn.forward(q, k)
    s = q[0] @ attn.params["W"] @ k[0].T                              # (2, 3)
    assert np.allclose(attn.weights[0], np.exp(s) / np.exp(s).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("kind", ["additive", "bilinear"])
def test_attention_mask(kind):
    """Masked keys get weight 0, and what they hold does not change the output."""
    rng = np.random.default_rng(8)
    attn = make_attention(kind, rng)
    q, k = randn(rng, 2, 3, 4), randn(rng, 2, 5, 3)
    mask = np.array([[True] * 5, [True, True, False, False, False]])
    out = attn.forward(q, k, mask=mask)
    assert np.all(attn.weights[1, :, 2:] == 0)
    assert np.allclose(attn.weights.sum(-1), 1)
    k2 = k.copy()
    k2[1, 2:] = 50 * randn(rng, 3, 3)
    out2 = attn.forward(q, k2, mask=mask)
    assert np.allclose(out[1], out2[1])
    alone = attn.forward(q[1:], k[1:, :2])
    assert np.allclose(alone[0], out[1])
    # a (B, T_q, T_k) mask works too
    full = np.broadcast_to(mask[:, None], (2, 3, 5))
    assert np.allclose(attn.forward(q, k, mask=full), out)


def test_attention_bad_input():
    attn = AdditiveAttention(4, 3, 5, seed=0, dtype=F64)
    q, k = np.zeros((2, 3, 4)), np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="d_query=4"):
        attn.forward(np.zeros((2, 3, 3)), k)
    with pytest.raises(ValueError, match="d_key=3"):
        attn.forward(q, np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="share"):
        attn.forward(q, np.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match="share"):
        attn.forward(q, k, np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="does not broadcast"):
        attn.forward(q, k, mask=np.ones((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="no key it may attend"):
        attn.forward(q, k, mask=np.zeros((2, 5), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        masked_softmax(np.zeros((2, 5)), np.ones((2, 5)))


def test_attention_float32():
    for kind in ("additive", "bilinear"):
        attn = (AdditiveAttention(4, 3, 5, seed=0) if kind == "additive" else BilinearAttention(4, 3, seed=0))
        q, k = np.ones((2, 3, 4), np.float32), np.ones((2, 5, 3), np.float32)
        out = attn.forward(q, k)
        assert out.dtype == np.float32
        dq, dk, _ = attn.backward(np.ones_like(out))
        assert dq.dtype == np.float32 and dk.dtype == np.float32


# ----------------------------------------------------------------------------
# the RNN encoder-decoder

from attnkit.models import RNNSeq2Seq, RNNSeq2SeqConfig  # noqa: E402


def small_model(attention, bidirectional=True, dtype=F64):
    return RNNSeq2Seq(RNNSeq2SeqConfig(src_vocab_size=7, tgt_vocab_size=6, d_embed=3, d_hidden=4,
                                       attention=attention, d_attention=3,
                                       bidirectional=bidirectional, seed=0, dtype=dtype))


SRC = np.array([[4, 5, 6, 3], [5, 4, 3, 0]])                        # row 1 padded (id 0)
TGT_IN = np.array([[2, 4, 5], [2, 5, 4]])


@pytest.mark.parametrize("attention", ["none", "additive", "multiplicative"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_seq2seq_whole_model_gradients(attention, bidirectional):
    model = small_model(attention, bidirectional)
    dout = np.random.default_rng(9).standard_normal((2, 3, 6))
    loss = lambda: np.sum(model.forward(SRC, TGT_IN) * dout)             # noqa: E731
    loss()
    model.zero_grad()
    assert model.backward(dout) is None
    errors = check_all(loss, [], model, [])
    expected = {"src_embed.W", "tgt_embed.W", "enc_fwd.W_ih", "decoder.W_hh", "out.W", "init.b"}
    assert expected <= set(errors)
    assert ("enc_bwd.W_hh" in errors) == bidirectional
    assert ("attention.W_q" in errors) == (attention == "additive")
    assert ("attention.W" in errors) == (attention == "multiplicative")


@pytest.mark.parametrize("attention", ["none", "additive", "multiplicative"])
def test_seq2seq_padding_invariance(attention):
    """A padded source row gives the logits of the same row without padding."""
    model = small_model(attention)
    logits = model.forward(SRC, TGT_IN)
    alone = model.forward(SRC[1:, :3], TGT_IN[1:])
    assert np.allclose(logits[1], alone[0])
    by_length = model.forward(np.array([[4, 5, 6, 3], [5, 4, 3, 6]]), TGT_IN, src_lengths=np.array([4, 3]))
    assert np.allclose(by_length, logits)
    if attention != "none":
        assert np.all(model.attn_weights[1, :, 3] == 0)
        assert np.allclose(model.attn_weights.sum(-1), 1)
    else:
        assert model.attn_weights is None


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_greedy_decode_agrees_with_teacher_forcing(attention):
    model = small_model(attention, dtype=np.float32)
    tokens, weights = model.greedy_decode(SRC, bos_id=2, eos_id=3, max_len=5)
    assert tokens.shape == (2, 5)
    assert not np.isin(tokens, [2]).any()
    for b in range(2):                               # feeding the output back reproduces it
        row = list(tokens[b])
        n = row.index(3) + 1 if 3 in row else 5
        assert all(t == 0 for t in row[n:])
        logits = model.forward(SRC[b:b + 1, :4 - b], np.array([[2] + row[:n - 1]]))
        logits[..., [0, 2]] = -np.inf
        assert list(logits[0].argmax(-1)) == row[:n]
    assert (weights is None) == (attention == "none")


def test_seq2seq_bad_input():
    with pytest.raises(ValueError, match="attention must be one of"):
        RNNSeq2SeqConfig(src_vocab_size=5, tgt_vocab_size=5, attention="dot")
    with pytest.raises(ValueError, match="d_hidden"):
        RNNSeq2SeqConfig(src_vocab_size=5, tgt_vocab_size=5, d_hidden=0)
    with pytest.raises(TypeError):
        RNNSeq2Seq({"src_vocab_size": 5})
    model = small_model("additive")
    with pytest.raises(ValueError, match="same batch size"):
        model.forward(SRC, TGT_IN[:1])
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model.forward(SRC + 10, TGT_IN)
    with pytest.raises(ValueError, match="shape \\(B, T\\)"):
        model.forward(SRC[0], TGT_IN)
    with pytest.raises(ValueError, match="no real token"):
        model.forward(np.zeros((2, 4), dtype=int), TGT_IN)
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(SRC, 2, 3, max_len=0)
