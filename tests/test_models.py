"""Tests of attnkit.models: gradient checks of whole blocks and models against central finite
differences in float64, invariants that follow from the math (causality, padding, eval mode),
the wiring of post-LN and pre-LN, dtypes, and error messages."""
import numpy as np
import pytest

from attnkit.functional import causal_mask, padding_mask
from attnkit.gradcheck import assert_gradient_close, numerical_gradient, perturb, rel_error
from attnkit.models import (AttentionPooling, ClassifierConfig, Decoder, DecoderLayer, Encoder, EncoderLayer,
                            MeanPooling, Transformer, TransformerClassifier, TransformerConfig)
from attnkit.nn import Dropout, MultiHeadAttention

D, H, FF = 8, 2, 12          # tiny sizes keep the finite differences fast
F64 = np.float64


assert_grad_close = assert_gradient_close


def check_params(model, loss):
    """Compare every parameter's accumulated gradient (already computed) with finite differences of loss()."""
    count = 0
    for name, p, g in model.named_parameters():
        assert_grad_close(numerical_gradient(loss, p), g, name)
        count += 1
    assert count > 0


# ----------------------------------------------------------------------------
# gradient checks, float64

@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_gradients(norm_first):
    rng = np.random.default_rng(0)
    layer = EncoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first, seed=0, dtype=F64)
    perturb(layer)
    x = rng.standard_normal((2, 4, D))                                   # (B, T, d_model)
    mask = padding_mask(np.array([4, 2]), 4)                             # (B, 1, 1, T)
    G = rng.standard_normal((2, 4, D))

    def loss():
        return float(np.sum(layer.forward(x, mask) * G))

    layer.zero_grad()
    layer.forward(x, mask)
    dx = layer.backward(G)
    assert_grad_close(numerical_gradient(loss, x), dx, "x")
    check_params(layer, loss)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_gradients_with_dropout(norm_first):
    # the same dropout masks on every forward (seed_dropout), so finite differences apply
    rng = np.random.default_rng(0)
    layer = EncoderLayer(D, H, FF, dropout=0.3, attn_dropout=0.2, norm_first=norm_first, seed=0, dtype=F64)
    perturb(layer)
    x = rng.standard_normal((2, 3, D))
    G = rng.standard_normal((2, 3, D))

    def loss():
        layer.seed_dropout(0)   # the same masks on every forward
        return float(np.sum(layer.forward(x) * G))

    layer.zero_grad()
    loss()
    assert np.any(layer.drop1.cache == 0) and np.any(layer.self_attn.attn_weights == 0)  # dropout did act
    dx = layer.backward(G)
    assert_grad_close(numerical_gradient(loss, x), dx, "x")
    check_params(layer, loss)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradients(norm_first):
    rng = np.random.default_rng(0)
    layer = DecoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first, seed=0, dtype=F64)
    perturb(layer)
    x = rng.standard_normal((2, 4, D))                                   # (B, T, d_model)
    memory = rng.standard_normal((2, 3, D))                              # (B, S, d_model)
    self_mask = causal_mask(4)                                           # (T, T)
    memory_mask = padding_mask(np.array([3, 2]), 3)                      # (B, 1, 1, S)
    G = rng.standard_normal((2, 4, D))

    def loss():
        return float(np.sum(layer.forward(x, memory, self_mask, memory_mask) * G))

    layer.zero_grad()
    layer.forward(x, memory, self_mask, memory_mask)
    dx, dmemory = layer.backward(G)
    assert dx.shape == x.shape and dmemory.shape == memory.shape
    assert_grad_close(numerical_gradient(loss, x), dx, "x")
    assert_grad_close(numerical_gradient(loss, memory), dmemory, "memory")
    assert np.all(dmemory[1, 2] == 0)                                    # a padded memory slot is never read
    check_params(layer, loss)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacks_gradients(norm_first):
    # two decoder layers read the same memory: dmemory must be the sum of both contributions
    rng = np.random.default_rng(2)
    enc = Encoder(2, D, H, FF, dropout=0.0, norm_first=norm_first, seed=0, dtype=F64)
    dec = Decoder(2, D, H, FF, dropout=0.0, norm_first=norm_first, seed=1, dtype=F64)
    assert (enc.norm is not None) == norm_first and (dec.norm is not None) == norm_first
    perturb(enc), perturb(dec, seed=2)
    src = rng.standard_normal((2, 3, D))
    tgt = rng.standard_normal((2, 4, D))
    G = rng.standard_normal((2, 4, D))

    def loss():
        return float(np.sum(dec.forward(tgt, enc.forward(src), causal_mask(4)) * G))

    enc.zero_grad(), dec.zero_grad()
    loss()
    dtgt, dmemory = dec.backward(G)
    dsrc = enc.backward(dmemory)
    assert_grad_close(numerical_gradient(loss, tgt), dtgt, "tgt")
    assert_grad_close(numerical_gradient(loss, src), dsrc, "src")


def small_transformer(**overrides):
    cfg = dict(src_vocab_size=7, tgt_vocab_size=6, d_model=D, num_heads=H, num_encoder_layers=1,
               num_decoder_layers=2, d_ff=FF, max_len=6, dropout=0.0, pad_id=0, seed=0, dtype=F64)
    cfg.update(overrides)
    return Transformer(TransformerConfig(**cfg))


SRC = np.array([[3, 1, 4, 0, 0],                                          # two pads
                [5, 2, 6, 2, 1]])
TGT = np.array([[1, 3, 2, 0],                                             # one pad
                [1, 4, 5, 3]])


@pytest.mark.parametrize("tie, norm_first", [(True, False), (False, True)])
def test_transformer_gradients(tie, norm_first):
    model = small_transformer(tie_embeddings=tie, norm_first=norm_first)
    perturb(model)
    G = np.random.default_rng(3).standard_normal((2, 4, 6))             # (B, T, V_tgt)

    def loss():
        return float(np.sum(model.forward(SRC, TGT) * G))

    model.zero_grad()
    logits = model.forward(SRC, TGT)
    assert logits.shape == (2, 4, 6)
    assert model.backward(G) is None
    check_params(model, loss)
    # the source pad row is never read by the decoder (masked), so it gets no gradient
    assert np.all(model.src_embed.embed.grads["W"][0] == 0)
    assert np.any(model.src_embed.embed.grads["W"][3] != 0)


def test_tied_embeddings_share_one_array():
    model = small_transformer(tie_embeddings=True)
    names = [n for n, _, _ in model.named_parameters()]
    assert "tgt_embed.embed.W" in names and not any(n.startswith("out_proj.embedding") for n in names)
    assert model.out_proj.embedding.params["W"] is model.tgt_embed.embed.params["W"]
    untied = small_transformer(tie_embeddings=False)
    assert untied.num_parameters() - model.num_parameters() == D * 6  # the (d_model, V) matrix saved
    # both uses add into the one gradient: it equals the sum of the embedding-only and
    # projection-only contributions, each found by finite differences on a copy of E
    model.zero_grad()
    G = np.random.default_rng(4).standard_normal((2, 4, 6))
    model.forward(SRC, TGT)
    model.backward(G)
    E = model.tgt_embed.embed.params["W"]
    E_proj = E.copy()
    model.out_proj.embedding = type(model.tgt_embed.embed)(6, D, dtype=F64)
    model.out_proj.embedding.params["W"] = E_proj                        # untie: projection reads E_proj

    def loss():
        return float(np.sum(model.forward(SRC, TGT) * G))

    total = numerical_gradient(loss, E) + numerical_gradient(loss, E_proj)
    assert_grad_close(total, model.tgt_embed.embed.grads["W"], "tied E")


@pytest.mark.parametrize("pooling, norm_first", [("mean", False), ("attention", False), ("attention", True)])
def test_classifier_gradients(pooling, norm_first):
    cfg = ClassifierConfig(vocab_size=7, num_classes=3, d_model=D, num_heads=H, num_layers=2, d_ff=FF,
                           max_len=6, dropout=0.0, pooling=pooling, norm_first=norm_first, dtype=F64)
    model = TransformerClassifier(cfg)
    perturb(model)
    ids = np.array([[3, 1, 4, 0, 0], [5, 2, 6, 2, 1], [2, 0, 0, 0, 0]])  # (B, T) with pads
    G = np.random.default_rng(5).standard_normal((3, 3))                 # (B, C)

    def loss():
        return float(np.sum(model.forward(ids) * G))

    model.zero_grad()
    assert model.forward(ids).shape == (3, 3)
    model.backward(G)
    check_params(model, loss)
    assert np.all(model.embed.embed.grads["W"][0] == 0)                  # pads feed nothing


@pytest.mark.parametrize("pool", [MeanPooling(), AttentionPooling(D, seed=0, dtype=F64)])
def test_pooling_gradients(pool):
    rng = np.random.default_rng(6)
    h = rng.standard_normal((3, 4, D))
    keep = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    G = rng.standard_normal((3, D))

    def loss():
        return float(np.sum(pool.forward(h, keep) * G))

    pool.zero_grad()
    pool.forward(h, keep)
    dh = pool.backward(G)
    assert_grad_close(numerical_gradient(loss, h), dh, "h")
    check_params(pool, loss) if pool.params else None
    w = pool.weights
    assert w.shape == (3, 4) and np.allclose(w.sum(axis=1), 1) and np.all(w[~keep] == 0)


# ----------------------------------------------------------------------------
# wiring: post-LN and pre-LN do what they say

@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_wiring(norm_first):
    layer = EncoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first, seed=0, dtype=F64)
    perturb(layer)
    x = np.random.default_rng(7).standard_normal((2, 3, D))
    sa, ff, n1, n2 = layer.self_attn, layer.ff, layer.norm1, layer.norm2
    if norm_first:
        h = x + sa.forward(n1.forward(x))
        expected = h + ff.forward(n2.forward(h))
    else:
        h = n1.forward(x + sa.forward(x))
        expected = n2.forward(h + ff.forward(h))
    assert np.allclose(layer.forward(x), expected)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_wiring(norm_first):
    layer = DecoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first, seed=0, dtype=F64)
    perturb(layer)
    rng = np.random.default_rng(8)
    x, m = rng.standard_normal((2, 3, D)), rng.standard_normal((2, 5, D))
    cm = causal_mask(3)
    sa, ca, ff = layer.self_attn, layer.cross_attn, layer.ff
    n1, n2, n3 = layer.norm1, layer.norm2, layer.norm3
    if norm_first:
        h = x + sa.forward(n1.forward(x), mask=cm)
        h = h + ca.forward(n2.forward(h), m)
        expected = h + ff.forward(n3.forward(h))
    else:
        h = n1.forward(x + sa.forward(x, mask=cm))
        h = n2.forward(h + ca.forward(h, m))
        expected = n3.forward(h + ff.forward(h))
    assert np.allclose(layer.forward(x, m, cm), expected)


# ----------------------------------------------------------------------------
# invariants

def test_decoder_is_causal():
    model = small_transformer(num_decoder_layers=2).eval()
    base = model.forward(SRC, TGT)                                       # (B, T, V)
    for t in range(TGT.shape[1] - 1):
        changed = TGT.copy()
        changed[:, t + 1:] = np.array([[5], [2]])                        # rewrite the future
        out = model.forward(SRC, changed)
        assert np.allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-12)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:])          # the future itself did change


def test_source_padding_changes_nothing():
    model = small_transformer().eval()
    base = model.forward(SRC, TGT)
    # 1. the pad token's embedding can be anything
    model.src_embed.embed.params["W"][0] += 5.0
    assert np.allclose(model.forward(SRC, TGT), base, atol=1e-12)
    # 2. more pads at the end change nothing
    more = np.concatenate([SRC, np.zeros((2, 1), dtype=SRC.dtype)], axis=1)
    assert np.allclose(model.forward(more, TGT), base, atol=1e-12)
    # 3. with explicit lengths, whatever ids follow a sequence's end are ignored
    lengths = np.array([3, 5])
    noisy = SRC.copy()
    noisy[0, 3:] = [6, 2]
    assert np.allclose(model.forward(noisy, TGT, src_lengths=lengths), base, atol=1e-12)
    # and the check can fail: a real source token does matter
    real = SRC.copy()
    real[0, 1] = 6
    assert not np.allclose(model.forward(real, TGT)[0], base[0])


def test_classifier_padding_changes_nothing():
    for pooling in ("mean", "attention"):
        cfg = ClassifierConfig(vocab_size=7, num_classes=3, d_model=D, num_heads=H, num_layers=2, d_ff=FF,
                               max_len=8, pooling=pooling, dtype=F64)
        model = TransformerClassifier(cfg).eval()
        short = np.array([[3, 1, 4]])
        padded = np.array([[3, 1, 4, 0, 0, 0]])
        base = model.forward(short)
        assert np.allclose(model.forward(padded), base, atol=1e-12)
        w = model.pool_weights
        assert w.shape == (1, 6) and np.all(w[0, 3:] == 0) and np.isclose(w.sum(), 1)
        assert np.allclose(model.forward(np.array([[3, 1, 4, 5, 6, 2]]), lengths=np.array([3])), base, atol=1e-12)
        assert not np.allclose(model.forward(np.array([[3, 1, 5]])), base)


def test_eval_is_deterministic_and_equals_no_dropout():
    model = small_transformer(dropout=0.3, attn_dropout=0.2)
    train1, train2 = model.forward(SRC, TGT), model.forward(SRC, TGT)
    assert not np.allclose(train1, train2)                               # dropout draws new masks
    model.eval()
    ev1, ev2 = model.forward(SRC, TGT), model.forward(SRC, TGT)
    assert np.array_equal(ev1, ev2)
    # eval switches dropout off everywhere: the same weights without dropout give the same output
    assert np.allclose(ev1, small_transformer(dropout=0.0).forward(SRC, TGT), atol=1e-12)
    model.train()
    assert not np.allclose(model.forward(SRC, TGT), ev1)


def test_encode_decode_equals_forward():
    model = small_transformer().eval()
    memory, src_mask = model.encode(SRC)
    assert memory.shape == (2, 5, D) and src_mask.shape == (2, 1, 1, 5)
    assert np.array_equal(src_mask[:, 0, 0], SRC != 0)
    full = model.forward(SRC, TGT)
    assert np.allclose(model.decode(TGT, memory, src_mask), full)
    # decoding a prefix gives the prefix of the full logits (what greedy decoding relies on)
    assert np.allclose(model.decode(TGT[:, :2], memory, src_mask), full[:, :2])


def test_attention_weights_for_heatmaps():
    model = small_transformer().eval()
    model.forward(SRC, TGT)
    maps = model.attention_weights()
    assert [len(maps[k]) for k in ("encoder", "decoder_self", "decoder_cross")] == [1, 2, 2]
    enc, dself, cross = maps["encoder"][0], maps["decoder_self"][1], maps["decoder_cross"][0]
    assert enc.shape == (2, H, 5, 5) and dself.shape == (2, H, 4, 4) and cross.shape == (2, H, 4, 5)
    assert np.allclose(cross.sum(-1), 1) and np.all(cross[0, :, :, 3:] == 0)  # no weight on source pads
    assert np.all(np.triu(dself, k=1) == 0)                               # no weight on the future
    assert np.all(dself[0, :, :, 3] == 0)                                 # nor on the target pad


def test_float32_keeps_dtype_and_matches_float64():
    m32, m64 = small_transformer(dtype=np.float32), small_transformer(dtype=F64)
    for _, p, g in m32.named_parameters():
        assert p.dtype == np.float32 and g.dtype == np.float32
    out32, out64 = m32.forward(SRC, TGT), m64.forward(SRC, TGT)
    assert out32.dtype == np.float32
    assert np.allclose(out32, out64, atol=1e-4)
    m32.backward(np.ones_like(out32))
    for name, _, g in m32.named_parameters():
        assert g.dtype == np.float32, name
    cfg = ClassifierConfig(vocab_size=7, num_classes=3, d_model=D, num_heads=H, max_len=6, pooling="attention")
    clf = TransformerClassifier(cfg)
    logits = clf.forward(SRC)
    assert logits.dtype == np.float32 and clf.pool_weights.dtype == np.float32
    clf.backward(np.ones_like(logits))
    assert all(g.dtype == np.float32 for _, g in clf.parameters())


def test_state_dict_round_trip():
    a, b = small_transformer(tie_embeddings=True, seed=0), small_transformer(tie_embeddings=True, seed=1)
    assert not np.allclose(a.forward(SRC, TGT), b.forward(SRC, TGT))
    b.load_state_dict(a.state_dict())
    assert np.allclose(a.eval().forward(SRC, TGT), b.eval().forward(SRC, TGT))


# ----------------------------------------------------------------------------
# errors

def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="d_model=10 must be divisible by num_heads=4"):
        TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="pooling must be 'mean' or 'attention'"):
        ClassifierConfig(vocab_size=7, num_classes=2, pooling="max")
    with pytest.raises(ValueError, match="pad_id=9"):
        TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, pad_id=9)
    with pytest.raises(ValueError, match="dropout must be in"):
        ClassifierConfig(vocab_size=7, num_classes=2, dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        ClassifierConfig(vocab_size=7, num_classes=2, activation="tanh")
    with pytest.raises(TypeError, match="needs a TransformerConfig"):
        Transformer(ClassifierConfig(vocab_size=7, num_classes=2))


def test_input_errors_are_clear():
    model = small_transformer()
    with pytest.raises(ValueError, match=r"tgt_ids has length 7 but max_len=6"):
        model.forward(SRC, np.ones((2, 7), dtype=int))
    with pytest.raises(ValueError, match=r"src_ids must lie in \[0, 7\).*\[9\]"):
        model.forward(np.array([[1, 9]]), np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"tgt_ids must lie in \[0, 6\)"):
        model.forward(SRC, np.array([[1, 6, 2, 0], [1, 2, 3, 4]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model.forward(SRC.astype(float), TGT)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model.forward(SRC[0], TGT)
    with pytest.raises(ValueError, match="same batch size"):
        memory, mask = model.encode(SRC)
        model.decode(TGT[:1], memory, mask)
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        model.forward(SRC, TGT, src_lengths=np.array([3]))
    clf = TransformerClassifier(ClassifierConfig(vocab_size=7, num_classes=2, d_model=D, num_heads=H))
    with pytest.raises(ValueError, match=r"sequences \[1\] have no real"):
        clf.forward(np.array([[1, 2], [0, 0]]))


def test_gradients_accumulate_over_backward_calls():
    # gradients add up (+=) until zero_grad: two identical passes give exactly twice one pass,
    # for every parameter, the tied embedding (read by two layers) included
    model = small_transformer(tie_embeddings=True)
    G = np.random.default_rng(9).standard_normal((2, 4, 6))
    model.zero_grad()
    model.forward(SRC, TGT)
    model.backward(G)
    once = {name: g.copy() for name, _, g in model.named_parameters()}
    model.forward(SRC, TGT)
    model.backward(G)
    for name, _, g in model.named_parameters():
        assert np.allclose(g, 2 * once[name]), name
    model.zero_grad()
    assert all(np.all(g == 0) for _, g in model.parameters())


# ----------------------------------------------------------------------------
# the residual block on its own

@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("cross", [False, True])
def test_residual_block_gradients(norm_first, cross):
    """Residual around self-attention (one gradient) and cross-attention (dx and dmemory), float64."""
    from attnkit.models import Residual
    from attnkit.nn import LayerNorm
    rng = np.random.default_rng(4)
    block = Residual(MultiHeadAttention(D, H, seed=0, dtype=F64), LayerNorm(D, dtype=F64),
                     Dropout(0.0), norm_first)
    perturb(block)
    x = rng.standard_normal((2, 3, D))                                   # (B, T, d_model)
    memory = rng.standard_normal((2, 5, D))                              # (B, S, d_model)
    w = rng.standard_normal((2, 3, D))                                   # (B, T, d_model)
    args = (memory,) if cross else ()

    def loss():
        return float(np.sum(block.forward(x, *args) * w))

    block.zero_grad()
    loss()
    grads = block.backward(w)
    dx, dmemory = grads if cross else (grads, None)
    assert_grad_close(numerical_gradient(loss, x), dx, "x")
    if cross:
        assert_grad_close(numerical_gradient(loss, memory), dmemory, "memory")
    check_params(block, loss)


def test_block_config_is_shared_and_loose_fields_still_work():
    from attnkit.models import BlockConfig
    cfg = BlockConfig(D, H, FF, dropout=0.0, norm_first=True, dtype=F64)
    a = EncoderLayer(cfg, seed=0)
    b = EncoderLayer(D, H, FF, dropout=0.0, norm_first=True, seed=0, dtype=F64)
    for (na, pa, _), (nb, pb, _) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa, pb)
    stack = Decoder(2, cfg, seed=0)
    assert stack.config is cfg and all(layer.config is cfg for layer in stack.layers)
    with pytest.raises(TypeError, match="not both"):
        EncoderLayer(cfg, dropout=0.1)
    with pytest.raises(ValueError, match="divisible"):
        BlockConfig(D, 3, FF)
    with pytest.raises(ValueError, match="attn_dropout"):
        BlockConfig(D, H, FF, attn_dropout=1.0)


# ----------------------------------------------------------------------------
# randomness: initialization and dropout streams

def test_dropout_seed_separates_dropout_from_initialization():
    ids = np.array([[3, 4, 5, 6]])

    def run(**overrides):
        cfg = ClassifierConfig(vocab_size=10, num_classes=2, d_model=D, num_heads=H, num_layers=1, d_ff=FF,
                               dropout=0.5, **overrides)
        model = TransformerClassifier(cfg)
        return model.state_dict(), model.forward(ids)                    # training mode: dropout on

    base_w, base_out = run()
    for seed in (5, 6):
        w, out = run(dropout_seed=seed)
        assert all(np.array_equal(w[k], base_w[k]) for k in base_w)     # same initial weights
        assert not np.allclose(out, base_out)                            # other masks
        assert np.array_equal(out, run(dropout_seed=seed)[1])            # reproducible
    assert not np.allclose(run(dropout_seed=5)[1], run(dropout_seed=6)[1])
    w, out = run(seed=1, dropout_seed=5)
    assert not np.array_equal(w["head.W"], base_w["head.W"])             # other weights ...
    assert np.array_equal(run(seed=2, dropout_seed=5)[0]["head.W"], run(seed=2)[0]["head.W"])


def test_default_initialization_is_deterministic_and_a_shared_rng_differs():
    """Documented in attnkit.nn: without rng or seed a module uses DEFAULT_SEED, so two are equal;
    layers that share one Generator differ."""
    from attnkit.nn import DEFAULT_SEED, Linear
    from attnkit.seeding import make_rng
    assert np.array_equal(Linear(4, 4).params["W"], Linear(4, 4).params["W"])
    assert np.array_equal(Linear(4, 4).params["W"], Linear(4, 4, seed=DEFAULT_SEED).params["W"])
    rng = make_rng(0)
    assert not np.array_equal(Linear(4, 4, rng=rng).params["W"], Linear(4, 4, rng=rng).params["W"])


def test_seed_dropout_replays_the_masks_of_every_dropout():
    layer = DecoderLayer(D, H, FF, dropout=0.3, attn_dropout=0.3, seed=0, dtype=F64)
    rng = np.random.default_rng(0)
    x, memory = rng.standard_normal((2, 3, D)), rng.standard_normal((2, 4, D))
    first = layer.seed_dropout(1).forward(x, memory)
    assert not np.allclose(layer.forward(x, memory), first)              # the streams moved on
    assert np.array_equal(layer.seed_dropout(1).forward(x, memory), first)
