"""Checkpoint compatibility: the dotted parameter names (and their order) that save_checkpoint
writes and load_checkpoint reads, and the initial values a seed gives.

Pinned before the refactoring of issue 11 (one residual block, attention built from Linear):
a checkpoint saved before it must load after it, and a model built from a seed must start from
the same weights. The order matters too: optimizer state is saved per parameter index.
"""
import hashlib

import numpy as np
import pytest

from attnkit.models import ClassifierConfig, Transformer, TransformerClassifier, TransformerConfig


def _layer(prefix, sublayers):
    names = []
    for sub in sublayers:
        if sub in ("self_attn", "cross_attn"):
            names += [f"{prefix}.{sub}.{p}_{w}" for w in "qkvo" for p in ("W", "b")]
        elif sub == "ff":
            names += [f"{prefix}.ff.fc{i}.{p}" for i in (1, 2) for p in ("W", "b")]
        else:
            names += [f"{prefix}.{sub}.gamma", f"{prefix}.{sub}.beta"]
    return names


ENCODER = _layer("encoder.layers.0", ["self_attn", "ff", "norm1", "norm2"])
DECODER = _layer("decoder.layers.0", ["self_attn", "cross_attn", "ff", "norm1", "norm2", "norm3"])
POST_LN = ["src_embed.embed.W", "tgt_embed.embed.W", *ENCODER, *DECODER, "out_proj.W", "out_proj.b"]
PRE_LN = ["src_embed.embed.W", "tgt_embed.embed.W", *ENCODER, "encoder.norm.gamma", "encoder.norm.beta",
          *DECODER, "decoder.norm.gamma", "decoder.norm.beta", "out_proj.W", "out_proj.b"]
CLASSIFIER = ["embed.embed.W", *_layer("encoder.layers.0", ["self_attn", "ff", "norm1", "norm2"]),
              "pool.q", "head.W", "head.b"]


def tiny(norm_first=False, tie=False):
    return Transformer(TransformerConfig(
        src_vocab_size=5, tgt_vocab_size=6, d_model=4, num_heads=2, num_encoder_layers=1,
        num_decoder_layers=1, d_ff=8, max_len=8, norm_first=norm_first, tie_embeddings=tie))


def tiny_classifier():
    return TransformerClassifier(ClassifierConfig(vocab_size=5, num_classes=3, d_model=4, num_heads=2,
                                                  num_layers=1, d_ff=8, pooling="attention"))


def digest(model):
    """A fingerprint of every parameter's name and bytes, in order."""
    h = hashlib.sha256()
    for name, p, _ in model.named_parameters():
        h.update(name.encode())
        h.update(np.ascontiguousarray(p).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("norm_first, expected", [(False, POST_LN), (True, PRE_LN)])
def test_transformer_parameter_names_and_order(norm_first, expected):
    assert [name for name, _, _ in tiny(norm_first).named_parameters()] == expected


def test_tied_transformer_lists_the_shared_table_once():
    names = [name for name, _, _ in tiny(tie=True).named_parameters()]
    assert names == POST_LN[:-2] + ["out_proj.b"]


def test_classifier_parameter_names_and_order():
    assert [name for name, _, _ in tiny_classifier().named_parameters()] == CLASSIFIER


def test_seeded_initial_weights_are_unchanged():
    # sha256 of names and float32 bytes of the seed-0 models, recorded before the refactoring
    assert digest(tiny(norm_first=True)) == "642a52056b8075f9"
    assert digest(tiny_classifier()) == "63b4324b30805874"
