"""Head importance and pruning (attnkit.heads): the importance is |dL/dgate| of the whole model
(checked against finite differences of the loss in every attention layer), pruning orders, and
gates restored after pruning."""
import numpy as np
import pytest

from attnkit.gradcheck import perturb
from attnkit.heads import attention_layers, head_importance, layer_kinds, pruned, pruning_order
from attnkit.losses import CrossEntropyLoss
from attnkit.models import (ClassifierConfig, GPT, GPTConfig, Transformer, TransformerClassifier,
                            TransformerConfig)
from attnkit.seeding import make_rng

SRC = np.array([[3, 1, 4, 5, 0, 0], [5, 2, 6, 2, 1, 7]])                   # (B, S), pads
TGT_IN = np.array([[1, 3, 2, 6, 0], [1, 4, 5, 3, 2]])                       # (B, T)
TGT_OUT = np.array([[3, 2, 6, 2, 0], [4, 5, 3, 2, 2]])


def _translator(dtype=np.float64):
    m = Transformer(TransformerConfig(src_vocab_size=9, tgt_vocab_size=8, d_model=12, num_heads=3,
                                      num_encoder_layers=2, num_decoder_layers=1, d_ff=16,
                                      max_len=10, dropout=0.2, seed=1, dtype=dtype))
    perturb(m, seed=5, scale=0.2)
    return m


def _batches():
    return [((SRC, TGT_IN), TGT_OUT), ((SRC[:1], TGT_IN[:1, :3]), TGT_OUT[:1, :3])]


def test_attention_layers_of_each_model():
    names = [n for n, _ in attention_layers(_translator())]
    assert names == ["encoder 1 self", "encoder 2 self", "decoder 1 self", "decoder 1 cross"]
    assert layer_kinds(names) == ["encoder self", "encoder self", "decoder self", "cross"]
    clf = TransformerClassifier(ClassifierConfig(vocab_size=9, num_classes=2, d_model=8, num_heads=2,
                                                 num_layers=3, d_ff=8))
    assert len(attention_layers(clf)) == 3
    gpt = GPT(GPTConfig(vocab_size=9, context_length=8, d_model=8, num_heads=2, num_layers=2, d_ff=8))
    assert [n for n, _ in attention_layers(gpt)] == ["block 1 self", "block 2 self"]
    with pytest.raises(TypeError, match="no MultiHeadAttention"):
        attention_layers(CrossEntropyLoss())


def test_head_importance_is_the_mean_absolute_gate_gradient_of_the_loss():
    m = _translator()
    loss_fn = CrossEntropyLoss(ignore_index=0)
    got = head_importance(m, loss_fn, _batches())                             # (M, h)
    assert got.shape == (4, 3) and m.training                                 # mode restored
    assert all(np.all(g == 0) for _, _, g in m.named_parameters())            # gradients zeroed
    layers = [a for _, a in attention_layers(m)]
    m.eval()
    eps = 1e-6
    numeric = np.zeros((4, 3))
    for inputs, targets in _batches():
        grad = np.zeros((4, 3))
        for i, layer in enumerate(layers):
            for j in range(3):
                values = []
                for s in (eps, -eps):
                    layer.head_gate[j] = 1 + s
                    values.append(loss_fn.forward(m.forward(*inputs), targets))
                layer.head_gate[j] = 1
                grad[i, j] = (values[0] - values[1]) / (2 * eps)
        numeric += np.abs(grad) / 2
    assert np.allclose(got, numeric, rtol=1e-5, atol=1e-9), (got, numeric)
    assert np.all(got > 0)
    with pytest.raises(ValueError, match="no batches"):
        head_importance(m, loss_fn, [])


def test_gate_gradient_at_a_gate_of_zero():
    # the importance of a head already pruned (gate 0) is still the loss's slope in its gate
    m = _translator().eval()
    loss_fn = CrossEntropyLoss(ignore_index=0)
    layer = attention_layers(m)[3][1]                                        # cross-attention
    layer.head_gate[1] = 0.0
    loss_fn.forward(m.forward(SRC, TGT_IN), TGT_OUT)
    m.backward(loss_fn.backward())
    analytic = layer.head_gate_grad[1]
    eps = 1e-6
    values = []
    for s in (eps, -eps):
        layer.head_gate[1] = s
        values.append(loss_fn.forward(m.forward(SRC, TGT_IN), TGT_OUT))
    assert np.isclose(analytic, (values[0] - values[1]) / (2 * eps), rtol=1e-5, atol=1e-10)


def test_pruning_order_least_important_first_random_and_normalized():
    imp = np.array([[0.5, 0.1, 0.3], [2.0, 4.0, 1.0]])
    order = pruning_order(imp)
    assert order.tolist() == [[0, 1], [0, 2], [0, 0], [1, 2], [1, 0], [1, 1]]
    rand = pruning_order(imp, rng=0)
    assert sorted(map(tuple, rand.tolist())) == sorted(map(tuple, order.tolist()))
    assert np.array_equal(rand, pruning_order(imp, rng=0))
    assert not np.array_equal(rand, pruning_order(imp, rng=1))
    # normalized by each layer's norm: layer 1's heads are no longer all last
    norm = pruning_order(imp, normalize=True)
    assert norm[:2].tolist() == [[0, 1], [1, 2]]
    with pytest.raises(ValueError, match="layers, heads"):
        pruning_order(np.ones(4))


def test_pruned_zeros_the_heads_and_restores_every_gate():
    m = _translator().eval()
    before = m.forward(SRC, TGT_IN)
    layers = [a for _, a in attention_layers(m)]
    layers[0].head_gate[2] = 0.5                       # a gate that is not 1 is restored too
    with pruned(m, [[0, 1], [3, 0]]):
        assert layers[0].head_gate.tolist() == [1.0, 0.0, 0.5]
        assert layers[3].head_gate.tolist() == [0.0, 1.0, 1.0]
        changed = m.forward(SRC, TGT_IN)
    assert layers[0].head_gate.tolist() == [1.0, 1.0, 0.5] and np.all(layers[3].head_gate == 1)
    layers[0].head_gate[2] = 1.0
    assert np.allclose(m.forward(SRC, TGT_IN), before) and not np.allclose(changed, before)
    # every head of every layer pruned: cross-attention passes only its bias, so the output no
    # longer depends on the source (which it did before)
    other = make_rng(0).integers(1, 9, size=SRC.shape)
    assert not np.allclose(m.forward(other, TGT_IN), before)
    with pruned(m, pruning_order(np.ones((4, 3)))):
        assert np.allclose(m.forward(other, TGT_IN), m.forward(SRC, TGT_IN))
    with pytest.raises(ValueError, match="layer < 4"):
        with pruned(m, [[4, 0]]):
            pass
