"""Transformer blocks and whole models built from the layers in attnkit.nn.

Shapes: B batch, S source length, T target (or single-sequence) length, d_model model width,
h heads, V vocabulary size, C number of classes. Masks are boolean, True = may attend.

Every model follows the layer convention of attnkit.nn: ``forward`` keeps a cache, ``backward``
reads the forward in reverse (one call per layer) and *adds* into the parameter gradients.

  BlockConfig                   sizes and options of one block (d_model, heads, d_ff, dropout, ...)
  Residual                      a sublayer with dropout, residual connection and LayerNorm (pre or post)
  EncoderLayer / DecoderLayer   two / three Residual blocks, post-LN (the paper) or pre-LN
  Encoder / Decoder             stacks of blocks (a final LayerNorm when pre-LN)
  TokenEmbedding                ids -> embedding * sqrt(d_model) + sinusoidal positions -> dropout
  Transformer                   the encoder-decoder of "Attention Is All You Need"
  TransformerClassifier         encoder-only sequence classifier with mean or attention pooling
"""
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ._checks import check_int
from .functional import causal_mask, softmax, softmax_backward
from . import positions as _pos
from .kvcache import LinearStateCache, RollingKVCache, cache_nbytes, sliding_window_mask
from .seeding import make_rng
from .nn import (ATTENTION_KERNELS, Dropout, Embedding, FeedForward, KVCache, LayerNorm, Linear, Module,
                 ModuleList, MultiHeadAttention, SinusoidalPositionalEncoding, _dropout_rng, _rng, step_mask)

__all__ = ["BlockConfig", "Residual", "EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "TokenEmbedding",
           "TiedOutputProjection", "MeanPooling", "AttentionPooling",
           "TransformerConfig", "Transformer", "LayerCache", "DecoderCache",
           "ClassifierConfig", "TransformerClassifier", "GPTConfig", "GPT", "GPTCache"]


# ----------------------------------------------------------------------------
# blocks

@dataclass
class BlockConfig:
    """Sizes and options of one Transformer block, shared by the layers and the stacks."""
    d_model: int                        # width of every token vector
    num_heads: int                      # attention heads; d_model must divide by it
    d_ff: int                           # hidden width of the feed-forward sublayer
    dropout: float = 0.1                # dropout on every sublayer output (residual dropout)
    attn_dropout: float = 0.0           # dropout on the attention weights
    activation: str = "relu"            # feed-forward nonlinearity: "relu" or "gelu"
    norm_first: bool = False            # False: post-LN as in the paper; True: pre-LN
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)
    num_kv_heads: Optional[int] = None  # key/value heads (grouped-query attention); None: num_heads
    kernel: str = "softmax"             # attention: "softmax" or "linear" (causal, elu + 1)

    def __post_init__(self):
        _check_block(self)


def block_config(*args, **kwargs):
    """A BlockConfig given as such, or built from its fields (the loose form the chapters use:
    ``EncoderLayer(d_model, num_heads, d_ff, dropout=0.1)``)."""
    if args and isinstance(args[0], BlockConfig):
        if len(args) > 1 or kwargs:
            raise TypeError("pass either a BlockConfig or its fields (d_model, num_heads, d_ff, ...), not "
                            "both")
        return args[0]
    return BlockConfig(*args, **kwargs)


class Residual(Module):
    """A sublayer with residual dropout, a residual connection and a LayerNorm, before or after.

    Post-LN (norm_first=False, the paper):  x = LN(x + Dropout(Sublayer(x)))
    Pre-LN  (norm_first=True):              x = x + Dropout(Sublayer(LN(x)))
    Pre-LN keeps an un-normalized residual path from input to output, which trains deep stacks
    without a learning-rate warm-up; post-LN needs the warm-up. The norm only sees the first
    input: cross-attention's memory reaches the sublayer as it is.

    The block routes calls through modules its layer owns (the layer lists them first, so
    checkpoint names stay ``self_attn.W_q``, ``norm1.gamma``, ...).
    """

    def __init__(self, sublayer, norm, dropout, norm_first):
        super().__init__()
        self.sublayer, self.norm, self.drop = sublayer, norm, dropout
        self.norm_first = norm_first

    def forward(self, x, *args, **kwargs):
        """x: (B, T, d_model); args, kwargs go to the sublayer after x (memory, mask, cache)."""
        if self.norm_first:
            y = self.sublayer.forward(self.norm.forward(x), *args, **kwargs)    # (B, T, d_model)
            return x + self.drop.forward(y)                                    # (B, T, d_model)
        y = self.sublayer.forward(x, *args, **kwargs)                          # (B, T, d_model)
        return self.norm.forward(x + self.drop.forward(y))                     # (B, T, d_model)

    def backward(self, dout):
        """dout: (B, T, d_model) -> dx (B, T, d_model), or (dx, *extra) when the sublayer's
        backward returns more gradients (cross-attention: (dx, dmemory))."""
        if self.norm_first:
            dsub, extra = _first(self.sublayer.backward(self.drop.backward(dout)))
            dx = dout + self.norm.backward(dsub)                               # (B, T, d_model)
        else:
            dres = self.norm.backward(dout)                                    # (B, T, d_model)
            dsub, extra = _first(self.sublayer.backward(self.drop.backward(dres)))
            dx = dres + dsub                                                   # (B, T, d_model)
        return (dx, *extra) if extra else dx


def _first(grads):
    """A backward's result -> (gradient of the first input, tuple of the others)."""
    if isinstance(grads, tuple):
        return grads[0], grads[1:]
    return grads, ()


class EncoderLayer(Module):
    """Self-attention then feed-forward, each a Residual block (post-LN or pre-LN).

    Built from a BlockConfig, or from its fields: ``EncoderLayer(d_model, num_heads, d_ff, ...)``.
    """

    def __init__(self, *config, rng=None, seed=None, dropout_rng=None, **fields):
        super().__init__()
        c = self.config = block_config(*config, **fields)
        rng = _rng(rng, seed)
        drop_rng = _dropout_rng(dropout_rng, rng)
        self.norm_first = c.norm_first
        self.self_attn = _attention(c, rng, drop_rng)
        self.ff = FeedForward(c.d_model, c.d_ff, c.activation, rng=rng, dtype=c.dtype)
        self.norm1, self.norm2 = _norms(c, 2)
        self.drop1, self.drop2 = _dropouts(c, drop_rng, 2)
        self.attn_block = Residual(self.self_attn, self.norm1, self.drop1, c.norm_first)
        self.ff_block = Residual(self.ff, self.norm2, self.drop2, c.norm_first)

    def forward(self, x, mask=None, cache=None, positions=None, bias=None):
        """x: (B, T, d_model); mask broadcastable to (B, h, T, T). Returns (B, T, d_model).

        cache: None in training; a KVCache when a causal stack (a decoder-only model) generates
        step by step: x are then the next T positions and mask their (T, t + T) causal part.
        positions, bias: passed to the self-attention (see MultiHeadAttention.forward)."""
        x = self.attn_block.forward(x, mask=mask, cache=cache, positions=positions, bias=bias)  # (B, T, d)
        return self.ff_block.forward(x)                                  # (B, T, d_model)

    def backward(self, dout):
        """dout: (B, T, d_model) -> dx (B, T, d_model)."""
        dx = self.ff_block.backward(dout)                                # (B, T, d_model)
        return self.attn_block.backward(dx)                              # (B, T, d_model)


class DecoderLayer(Module):
    """Masked self-attention, cross-attention over the encoder output (memory), feed-forward:
    three Residual blocks.

    Only the queries of the cross-attention come from the decoder: its keys and values are
    projections of the memory, the same at every decoding step (what a key/value cache
    computes once). Built from a BlockConfig or from its fields, as EncoderLayer.
    """

    def __init__(self, *config, rng=None, seed=None, dropout_rng=None, **fields):
        super().__init__()
        c = self.config = block_config(*config, **fields)
        rng = _rng(rng, seed)
        drop_rng = _dropout_rng(dropout_rng, rng)
        self.norm_first = c.norm_first
        self.self_attn = _attention(c, rng, drop_rng)
        self.cross_attn = _attention(c, rng, drop_rng)
        self.ff = FeedForward(c.d_model, c.d_ff, c.activation, rng=rng, dtype=c.dtype)
        self.norm1, self.norm2, self.norm3 = _norms(c, 3)
        self.drop1, self.drop2, self.drop3 = _dropouts(c, drop_rng, 3)
        self.self_block = Residual(self.self_attn, self.norm1, self.drop1, c.norm_first)
        self.cross_block = Residual(self.cross_attn, self.norm2, self.drop2, c.norm_first)
        self.ff_block = Residual(self.ff, self.norm3, self.drop3, c.norm_first)

    def forward(self, x, memory, self_mask=None, memory_mask=None, cache=None):
        """x: (B, T, d_model); memory: (B, S, d_model); self_mask broadcastable to (B, h, T, T)
        (causal and target padding); memory_mask broadcastable to (B, h, T, S) (source padding).
        Returns (B, T, d_model).

        cache: None in training; while decoding, this layer's LayerCache: the self-attention
        appends the new positions' keys and values, the cross-attention projects the memory
        once. Inference only: there is no backward through a cached step.
        """
        self_cache = cross_cache = None
        if cache is not None:
            self_cache, cross_cache = cache.self_attn, cache.cross_attn
        x = self.self_block.forward(x, mask=self_mask, cache=self_cache)             # (B, T, d_model)
        x = self.cross_block.forward(x, memory, mask=memory_mask, cache=cross_cache)  # (B, T, d_model)
        return self.ff_block.forward(x)                                              # (B, T, d_model)

    def backward(self, dout):
        """dout: (B, T, d_model) -> (dx (B, T, d_model), dmemory (B, S, d_model))."""
        dx = self.ff_block.backward(dout)                                # (B, T, d_model)
        dx, dmemory = self.cross_block.backward(dx)                      # (B, T, d), (B, S, d)
        return self.self_block.backward(dx), dmemory


def _attention(c, rng, dropout_rng):
    return MultiHeadAttention(c.d_model, c.num_heads, dropout=c.attn_dropout, rng=rng, dtype=c.dtype,
                              dropout_rng=dropout_rng, num_kv_heads=getattr(c, "num_kv_heads", None),
                              kernel=getattr(c, "kernel", "softmax"))


def _norms(c, n):
    return [LayerNorm(c.d_model, dtype=c.dtype) for _ in range(n)]


def _dropouts(c, rng, n):
    return [Dropout(c.dropout, rng=rng) for _ in range(n)]


class _Stack(Module):
    """num_layers blocks of one kind, with a final LayerNorm when pre-LN (the residual stream
    is never normalized otherwise). Built from (num_layers, BlockConfig) or (num_layers, fields)."""

    layer_class = None

    def __init__(self, num_layers, *config, rng=None, seed=None, dropout_rng=None, **fields):
        super().__init__()
        c = self.config = block_config(*config, **fields)
        rng = _rng(rng, seed)
        drop_rng = _dropout_rng(dropout_rng, rng)
        self.layers = ModuleList([self.layer_class(c, rng=rng, dropout_rng=drop_rng)
                                  for _ in range(num_layers)])
        self.norm = LayerNorm(c.d_model, dtype=c.dtype) if c.norm_first else None

    def _final_norm(self, x):
        return x if self.norm is None else self.norm.forward(x)          # (B, T, d_model)

    def backward(self, dout):
        """dout: (B, T, d_model) -> dx (B, T, d_model), and for a Decoder dmemory (B, S, d_model),
        the sum over layers (every layer reads the memory)."""
        if self.norm is not None:
            dout = self.norm.backward(dout)                              # (B, T, d_model)
        dmemory = None
        for layer in reversed(self.layers.items):
            dout, extra = _first(layer.backward(dout))                   # (B, T, d_model)
            if extra:
                dmemory = extra[0] if dmemory is None else dmemory + extra[0]  # (B, S, d_model)
        return dout if dmemory is None else (dout, dmemory)


class Encoder(_Stack):
    """A stack of EncoderLayers, with a final LayerNorm when pre-LN."""

    layer_class = EncoderLayer

    def forward(self, x, mask=None, cache=None, positions=None, bias=None):
        """x: (B, T, d_model); mask broadcastable to (B, h, T, T). Returns (B, T, d_model).
        cache: None, or one KVCache per layer (a decoder-only model generating, see GPT).
        positions, bias: passed to every layer's self-attention (see MultiHeadAttention.forward)."""
        caches = cache if cache is not None else [None] * len(self.layers)
        for layer, layer_cache in zip(self.layers, caches):
            x = layer.forward(x, mask, layer_cache, positions=positions, bias=bias)  # (B, T, d_model)
        return self._final_norm(x)                                       # (B, T, d_model)

    def attention_weights(self):
        """List (one per layer) of self-attention weights (B, h, T, T) from the last forward."""
        return [layer.self_attn.attn_weights for layer in self.layers]


class Decoder(_Stack):
    """A stack of DecoderLayers reading the same memory, with a final LayerNorm when pre-LN."""

    layer_class = DecoderLayer

    def forward(self, x, memory, self_mask=None, memory_mask=None, cache=None):
        """x: (B, T, d_model); memory: (B, S, d_model). Returns (B, T, d_model).
        cache: a DecoderCache while decoding (one LayerCache per layer)."""
        caches = cache.layers if cache is not None else [None] * len(self.layers)
        for layer, layer_cache in zip(self.layers, caches):
            x = layer.forward(x, memory, self_mask, memory_mask, layer_cache)  # (B, T, d_model)
        return self._final_norm(x)                                       # (B, T, d_model)

    def attention_weights(self):
        """{"self": [(B, h, T, T) per layer], "cross": [(B, h, T, S) per layer]} from the last forward."""
        return {"self": [layer.self_attn.attn_weights for layer in self.layers],
                "cross": [layer.cross_attn.attn_weights for layer in self.layers]}


# ----------------------------------------------------------------------------
# embeddings, output projection, pooling

class TokenEmbedding(Module):
    """Token ids -> embedding (times sqrt(d_model) if scale) + sinusoidal positions -> dropout.

    The Embedding is initialized N(0, 1/d_model); scaling by sqrt(d_model), as in the paper,
    gives the token vectors unit size, comparable to the position table's, so neither swamps
    the other.
    """

    def __init__(self, vocab_size, d_model, max_len, dropout=0.1, scale=True, rng=None, seed=None,
                 dtype=np.float32, dropout_rng=None):
        super().__init__()
        rng = _rng(rng, seed)
        self.embed = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.pos = SinusoidalPositionalEncoding(max_len, d_model, dtype=dtype)
        self.drop = Dropout(dropout, rng=_dropout_rng(dropout_rng, rng))
        self.scale = float(np.sqrt(d_model)) if scale else 1.0

    def forward(self, ids, offset=0):
        """ids: (B, T) integers -> (B, T, d_model). `offset` is the position of ids[:, 0]."""
        x = self.embed.forward(ids)                                      # (B, T, d_model)
        if self.scale != 1.0:
            x = x * x.dtype.type(self.scale)
        return self.drop.forward(self.pos.forward(x, offset))            # (B, T, d_model)

    def backward(self, dout):
        """Accumulate the embedding gradient; ids have none, so this returns None."""
        dx = self.pos.backward(self.drop.backward(dout))                 # (B, T, d_model)
        if self.scale != 1.0:
            dx = dx * dx.dtype.type(self.scale)
        return self.embed.backward(dx)


class TiedOutputProjection(Module):
    """Logits from the transposed embedding table, x @ E^T + b, sharing E with an Embedding (weight tying).

    The embedding is a child module, so ``named_parameters`` lists E once (under the name it
    was first found with) and both uses add their gradient into the same array.
    """

    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding
        W = embedding.params["W"]                                        # (V, d_model)
        self.add_param("b", np.zeros(W.shape[0], dtype=W.dtype))         # (V,)

    def forward(self, x):
        """x: (..., d_model) -> logits (..., V)."""
        self.cache = x
        E = self.embedding.params["W"]                                   # (V, d_model)
        # one 2-D matmul: numpy runs (B, T, d) @ E.T as B separate small products, ~2x slower
        logits = x.reshape(-1, E.shape[1]) @ E.T + self.params["b"]      # (N, V)
        return logits.reshape(*x.shape[:-1], E.shape[0])                 # (..., V)

    def backward(self, dout):
        """dout: (..., V) -> dx (..., d_model); adds into the embedding's gradient."""
        x = self.cache
        E = self.embedding.params["W"]                                   # (V, d_model)
        d2 = dout.reshape(-1, E.shape[0])                                # (N, V)
        self.embedding.grads["W"] += d2.T @ x.reshape(-1, E.shape[1])    # (V, d_model)
        self.grads["b"] += d2.sum(axis=0)                                # (V,)
        return (d2 @ E).reshape(x.shape)                                 # (..., d_model)


def _keep_weights(keep, dtype):
    """(B, T) bool -> (B, T) float weights 1/count on real tokens; each row needs one real token."""
    counts = keep.sum(axis=1, keepdims=True)                             # (B, 1)
    if np.any(counts == 0):
        rows = np.flatnonzero(counts[:, 0] == 0).tolist()
        raise ValueError(f"sequences {rows[:5]} have no real (non-pad) token to pool over")
    return (keep / counts).astype(dtype)                                 # (B, T)


class MeanPooling(Module):
    """Average of the token states over the real (non-pad) positions."""

    def __init__(self):
        super().__init__()
        self.weights = None

    def forward(self, h, keep):
        """h: (B, T, d_model); keep: (B, T) bool, True on real tokens. Returns (B, d_model)."""
        w = _keep_weights(keep, h.dtype)                                 # (B, T)
        self.weights = w
        return np.einsum("bt,btd->bd", w, h)                             # (B, d_model)

    def backward(self, dout):
        """dout: (B, d_model) -> dh (B, T, d_model)."""
        return self.weights[:, :, None] * dout[:, None, :]               # (B, T, d_model)


class AttentionPooling(Module):
    """A learned query q attends over the token states: w = softmax(h q / sqrt(d_model)) on real tokens,
    out = w h."""

    def __init__(self, d_model, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.d_model = d_model
        self.add_param("q", (rng.standard_normal(d_model) / np.sqrt(d_model)).astype(dtype))  # (d_model,)
        self.weights = None

    def forward(self, h, keep):
        """h: (B, T, d_model); keep: (B, T) bool. Returns (B, d_model); self.weights is (B, T)."""
        _keep_weights(keep, h.dtype)                                     # raises on an all-pad row
        scale = h.dtype.type(1.0 / np.sqrt(self.d_model))
        s = (h @ self.params["q"]) * scale                               # (B, T)
        w = softmax(np.where(keep, s, -np.inf), axis=1)                  # (B, T), 0 on pads
        self.weights = w
        self.cache = (h, scale)
        return np.einsum("bt,btd->bd", w, h)                             # (B, d_model)

    def backward(self, dout):
        """dout: (B, d_model) -> dh (B, T, d_model); adds dq."""
        h, scale = self.cache
        w = self.weights                                                 # (B, T)
        dw = np.einsum("bd,btd->bt", dout, h)                            # (B, T)
        ds = softmax_backward(dw, w, axis=1) * scale                     # (B, T)
        self.grads["q"] += np.einsum("bt,btd->d", ds, h)                 # (d_model,)
        return w[:, :, None] * dout[:, None, :] + ds[:, :, None] * self.params["q"]  # (B, T, d_model)


# ----------------------------------------------------------------------------
# configuration checks shared by the models

def _check_block(cfg):
    """Checks shared by BlockConfig and the model configs (which hold the same fields)."""
    if cfg.num_heads < 1 or cfg.d_model % cfg.num_heads != 0:
        raise ValueError(f"d_model={cfg.d_model} must be divisible by num_heads={cfg.num_heads} "
                         "(each head gets d_model / num_heads dimensions); change one of them")
    if cfg.d_ff < 1:
        raise ValueError(f"d_ff must be a positive integer, got {cfg.d_ff}")
    for name in ("dropout", "attn_dropout"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.activation not in ("relu", "gelu"):
        raise ValueError(f"activation must be 'relu' or 'gelu', got {cfg.activation!r}")
    if not np.issubdtype(np.dtype(cfg.dtype), np.floating):
        raise TypeError(f"dtype must be a floating type such as np.float32 or np.float64, got {cfg.dtype}")
    _check_kv_heads(cfg.num_heads, getattr(cfg, "num_kv_heads", None))


def _check_kv_heads(num_heads, num_kv_heads):
    """num_kv_heads None, or a positive divisor of num_heads (grouped-query attention)."""
    if num_kv_heads is None:
        return
    if (isinstance(num_kv_heads, bool) or int(num_kv_heads) != num_kv_heads or num_kv_heads < 1
            or num_heads % num_kv_heads):
        raise ValueError(f"num_kv_heads={num_kv_heads!r} must be a positive divisor of num_heads={num_heads} "
                         "(1: multi-query attention; num_heads or None: multi-head attention)")


def _check_positive(cfg, *names):
    """Each named field of cfg an integer >= 1 (a bool is not one), or a ValueError naming it."""
    for name in names:
        check_int(getattr(cfg, name), name, 1)


def _check_common(cfg):
    _check_block(cfg)
    if cfg.d_model % 2:
        raise ValueError(f"d_model={cfg.d_model} must be even for the sinusoidal position table (sin/cos "
                         f"pairs)")
    if cfg.max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {cfg.max_len}")


def _streams(cfg):
    """(initialization Generator, dropout Generator) of a model config: make_rng(seed), and
    make_rng(dropout_seed), or with dropout_seed None the initialization Generator itself."""
    rng = make_rng(cfg.seed)
    return rng, (rng if cfg.dropout_seed is None else make_rng(cfg.dropout_seed))


def _block_of(cfg):
    """The BlockConfig of a model config (which holds the same fields)."""
    return BlockConfig(cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.dropout, cfg.attn_dropout,
                       cfg.activation, cfg.norm_first, cfg.dtype)


def _check_ids(ids, vocab_size, max_len, name):
    """ids as a (B, T) integer array inside the vocabulary and no longer than max_len."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{name} must have shape (B, T), got {ids.shape}; wrap one sequence as ids[None, :]")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has length {ids.shape[1]} but max_len={max_len}; "
                         "truncate the sequences or build the model with a larger max_len")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)]
        raise ValueError(f"{name} must lie in [0, {vocab_size}) (the vocabulary size); found "
                         f"{bad[:5].tolist()}")
    return ids


def _keep(ids, pad_id, lengths):
    """(B, T) bool, True on real tokens: from explicit lengths if given, else ids != pad_id."""
    B, T = ids.shape
    if lengths is not None:
        return step_mask(B, T, lengths)                                   # (B, T)
    if pad_id is None:
        return np.ones((B, T), dtype=bool)
    return ids != pad_id                                                 # (B, T)


# ----------------------------------------------------------------------------
# encoder-decoder Transformer

@dataclass
class TransformerConfig:
    """Sizes and options of the encoder-decoder Transformer (defaults: a small model for a CPU)."""
    src_vocab_size: int                 # number of source token ids
    tgt_vocab_size: int                 # number of target token ids (= number of logits)
    d_model: int = 64                   # width of every token vector
    num_heads: int = 4                  # attention heads; d_model must divide by it
    num_encoder_layers: int = 2         # EncoderLayers in the stack
    num_decoder_layers: int = 2         # DecoderLayers in the stack
    d_ff: int = 256                     # hidden width of the feed-forward sublayers (4 d_model in the paper)
    max_len: int = 128                  # longest source or target sequence (size of the position table)
    dropout: float = 0.1                # dropout on embeddings and on every sublayer output
    attn_dropout: float = 0.0           # dropout on the attention weights
    activation: str = "relu"            # feed-forward nonlinearity: "relu" or "gelu"
    norm_first: bool = False            # False: post-LN as in the paper; True: pre-LN
    tie_embeddings: bool = False        # share the target embedding with the output projection
    pad_id: Optional[int] = 0           # padding token id in both vocabularies (None: no padding)
    scale_embeddings: bool = True       # multiply embeddings by sqrt(d_model), as in the paper
    seed: int = 0                       # seed of the initial weights (and of dropout, see dropout_seed)
    dropout_seed: Optional[int] = None  # None: dropout continues the seed's generator; an int: its own
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)

    def __post_init__(self):
        _check_common(self)
        _check_positive(self, "src_vocab_size", "tgt_vocab_size", "num_encoder_layers", "num_decoder_layers")
        if self.pad_id is not None and not (0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size)):
            raise ValueError(f"pad_id={self.pad_id} must be an id in both vocabularies "
                             f"(sizes {self.src_vocab_size}, {self.tgt_vocab_size}), or None for no padding")


class Transformer(Module):
    """Encoder-decoder Transformer (Vaswani et al., 2017): source ids and shifted target ids -> next-token
    logits."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"Transformer needs a TransformerConfig, got {type(config).__name__}")
        c = self.config = config
        rng, drop = _streams(c)
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, c.max_len, c.dropout,
                                        c.scale_embeddings, rng=rng, dtype=c.dtype, dropout_rng=drop)
        self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, c.max_len, c.dropout,
                                        c.scale_embeddings, rng=rng, dtype=c.dtype, dropout_rng=drop)
        self.encoder = Encoder(c.num_encoder_layers, _block_of(c), rng=rng, dropout_rng=drop)
        self.decoder = Decoder(c.num_decoder_layers, _block_of(c), rng=rng, dropout_rng=drop)
        if c.tie_embeddings:
            self.out_proj = TiedOutputProjection(self.tgt_embed.embed)
        else:
            self.out_proj = Linear(c.d_model, c.tgt_vocab_size, rng=rng, dtype=c.dtype)

    def encode(self, src_ids, src_lengths=None):
        """src_ids: (B, S) -> (memory (B, S, d_model), src_mask (B, 1, 1, S) bool, True on real
        source tokens).

        Padding comes from config.pad_id, or from src_lengths (B,) if given (then ids past a
        length are ignored whatever they are)."""
        c = self.config
        src_ids = _check_ids(src_ids, c.src_vocab_size, c.max_len, "src_ids")
        src_mask = _keep(src_ids, c.pad_id, src_lengths)[:, None, None, :]    # (B, 1, 1, S)
        x = self.src_embed.forward(src_ids)                                  # (B, S, d_model)
        memory = self.encoder.forward(x, src_mask)                           # (B, S, d_model)
        return memory, src_mask

    def decode(self, tgt_ids, memory, src_mask, tgt_lengths=None, cache=None):
        """tgt_ids: (B, T) decoder inputs (starting with BOS); memory, src_mask from encode.
        Returns logits (B, T, V_tgt); position t depends on tgt_ids[:, :t+1] only.

        cache: a DecoderCache (see make_cache) to decode step by step: tgt_ids are then the
        next T positions, from cache.length on (the position offset), and every earlier one is
        read from the cache, which grows by T. Logits equal (up to rounding) those of the
        whole prefix decoded at once. Target padding (tgt_lengths) needs the whole prefix."""
        c = self.config
        tgt_ids = _check_ids(tgt_ids, c.tgt_vocab_size, c.max_len, "tgt_ids")
        if memory.shape[0] != tgt_ids.shape[0]:
            raise ValueError(f"memory {memory.shape} and tgt_ids {tgt_ids.shape} must have the same batch "
                             f"size")
        T = tgt_ids.shape[1]
        if cache is None:
            offset = 0
            keep = _keep(tgt_ids, c.pad_id, tgt_lengths)                     # (B, T)
            tgt_mask = causal_mask(T)[None, None] & keep[:, None, None, :]   # (B, 1, T, T)
        else:
            offset = cache.length
            if tgt_lengths is not None:
                raise ValueError("tgt_lengths cannot be combined with a cache: decode the whole prefix "
                                 "instead")
            if offset + T > cache.capacity:
                raise ValueError(f"the cache is full ({cache.capacity} positions, {offset} used); "
                                 "build it with a larger capacity")
            tgt_mask = _offset_causal_mask(offset, T)                        # (T, offset + T) or None
        y = self.tgt_embed.forward(tgt_ids, offset)                          # (B, T, d_model)
        y = self.decoder.forward(y, memory, tgt_mask, src_mask, cache)       # (B, T, d_model)
        return self.out_proj.forward(y)                                      # (B, T, V_tgt)

    def make_cache(self, memory, src_mask, capacity, beam_size=1, keep_cross_weights=False):
        """An empty DecoderCache for decode(..., cache=...); see DecoderCache."""
        return DecoderCache(self, memory, src_mask, capacity, beam_size, keep_cross_weights)

    def forward(self, src_ids, tgt_in_ids, src_lengths=None, tgt_lengths=None):
        """src_ids: (B, S); tgt_in_ids: (B, T) (target shifted right, BOS first) -> logits (B, T, V_tgt)."""
        memory, src_mask = self.encode(src_ids, src_lengths)                 # (B, S, d_model)
        return self.decode(tgt_in_ids, memory, src_mask, tgt_lengths)        # (B, T, V_tgt)

    def backward(self, dlogits):
        """dlogits: (B, T, V_tgt). Adds every parameter's gradient; returns None (ids have no gradient)."""
        dy = self.out_proj.backward(dlogits)                                 # (B, T, d_model)
        dy, dmemory = self.decoder.backward(dy)  # (B, T, d_model), (B, S, d_model)
        self.tgt_embed.backward(dy)
        dx = self.encoder.backward(dmemory)                                  # (B, S, d_model)
        self.src_embed.backward(dx)
        return None

    def attention_weights(self):
        """{"encoder": [(B, h, S, S)], "decoder_self": [(B, h, T, T)], "decoder_cross": [(B, h, T, S)]},
        one array per layer, from the last forward (after dropout, if training)."""
        dec = self.decoder.attention_weights()
        return {"encoder": self.encoder.attention_weights(),
                "decoder_self": dec["self"], "decoder_cross": dec["cross"]}


def _offset_causal_mask(offset, T):
    """(T, offset + T) bool: new position offset + i sees positions 0 .. offset + i; None when T = 1
    (a single new position may see everything cached)."""
    if T == 1:
        return None
    return np.arange(offset + T)[None, :] <= offset + np.arange(T)[:, None]  # (T, offset + T)


class LayerCache:
    """One decoder layer's caches: its self-attention's keys and values, its cross-attention's memory."""

    def __init__(self, capacity, keep_cross_weights=False):
        self.self_attn = KVCache(capacity)                               # grows one position per step
        self.cross_attn = KVCache(capacity, keep_weights=keep_cross_weights)  # the memory's, set once


class DecoderCache:
    """The key/value caches of every decoder layer (LayerCache), filled as Transformer.decode(cache=...)
    runs."""

    def __init__(self, model, memory, src_mask, capacity, beam_size=1, keep_cross_weights=False):
        """model: a Transformer; memory (N, S, d_model) and src_mask (N, 1, 1, S) from model.encode
        (rows repeated beam_size times for beam search); capacity: the most positions that will
        be decoded (at most model.config.max_len). keep_cross_weights: record every step's
        cross-attention weights for alignment plots (see cross_attention_weights).

        Memory: 2 * layers * N * capacity * d_model numbers for self-attention, as much per
        source position for cross-attention; layers * N * h * capacity * S more for the
        cross-attention weights if kept.
        """
        if not isinstance(model, Transformer):
            raise TypeError(f"DecoderCache needs an attnkit.models.Transformer, got {type(model).__name__}")
        c = model.config
        memory = np.asarray(memory)
        if memory.ndim != 3 or memory.shape[2] != c.d_model:
            raise ValueError(f"memory must have shape (N, S, d_model={c.d_model}) as returned by "
                             f"model.encode, "
                             f"got {memory.shape}")
        N, S, _ = memory.shape
        if np.shape(src_mask) != (N, 1, 1, S):
            raise ValueError(f"src_mask must have shape (N, 1, 1, S) = {(N, 1, 1, S)} to match memory "
                             f"{memory.shape}, got {np.shape(src_mask)}")
        if not 1 <= capacity <= c.max_len:
            raise ValueError(f"capacity must lie in [1, max_len={c.max_len}] (the model's position table), "
                             f"got {capacity}")
        if beam_size < 1 or N % beam_size:
            raise ValueError(f"beam_size={beam_size} must be >= 1 and divide the number of rows N={N}")
        self.capacity, self.beam_size = capacity, beam_size
        self.memory, self.src_mask = memory, src_mask                    # (N, S, d_model), (N, 1, 1, S)
        self.keep_cross_weights = keep_cross_weights
        self.layers = [LayerCache(capacity, keep_cross_weights) for _ in model.decoder.layers]

    @property
    def num_rows(self):
        return self.src_mask.shape[0]

    @property
    def length(self):
        """Positions decoded so far (t), the position offset of the next decode."""
        return self.layers[0].self_attn.length

    def cross_attention_weights(self):
        """List (one per layer) of the cross-attention weights (N, h, t, S) of the t positions
        decoded so far (rows follow reorder), the alignments Decoder.attention_weights()["cross"]
        gives for a whole sequence. Needs keep_cross_weights=True."""
        if not self.keep_cross_weights:
            raise ValueError("this cache does not keep cross-attention weights: build it with "
                             "keep_cross_weights=True")
        N, S = self.memory.shape[:2]
        return [c.cross_attn.weights[:, :, :self.length] if c.cross_attn.weights is not None
                else np.zeros((N, 0, 0, S)) for c in self.layers]

    def reorder(self, index):
        """Row r of the cache becomes old row index[r] (N,): beam search keeps the parents' keys and values.

        Only the self-attention keys and values (and the recorded cross-attention weights) move;
        the memory's are the same for every beam of a sentence, so index must send each row to a
        row of the same sentence (beam search's parents always are). Cost: a copy of the filled
        part, O(N t d_model) per layer.
        """
        index = np.asarray(index)
        N, k = self.num_rows, self.beam_size
        if index.shape != (N,) or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"index must hold N={N} integer row numbers, got shape {index.shape}, dtype "
                             f"{index.dtype}")
        if np.any(index // k != np.arange(N) // k):
            raise ValueError(f"reorder may only move rows within a sentence's beam_size={k} rows "
                             "(the cross-attention keys and values are not reordered)")
        for c in self.layers:
            c.self_attn.reorder(index)
            c.cross_attn.reorder(index, keys=False)


# ----------------------------------------------------------------------------
# encoder-only classifier

@dataclass
class ClassifierConfig:
    """Sizes and options of the encoder-only sequence classifier."""
    vocab_size: int                     # number of token ids
    num_classes: int                    # number of output classes (= number of logits)
    d_model: int = 64                   # width of every token vector
    num_heads: int = 4                  # attention heads; d_model must divide by it
    num_layers: int = 2                 # EncoderLayers in the stack
    d_ff: int = 256                     # hidden width of the feed-forward sublayers
    max_len: int = 128                  # longest sequence (size of the position table)
    dropout: float = 0.1                # dropout on embeddings and on every sublayer output
    attn_dropout: float = 0.0           # dropout on the attention weights
    activation: str = "relu"            # feed-forward nonlinearity: "relu" or "gelu"
    norm_first: bool = False            # False: post-LN as in the paper; True: pre-LN
    pooling: str = "mean"               # "mean" over real tokens, or "attention" (a learned query)
    pad_id: Optional[int] = 0           # padding token id (None: no padding)
    scale_embeddings: bool = True       # multiply embeddings by sqrt(d_model)
    seed: int = 0                       # seed of the initial weights (and of dropout, see dropout_seed)
    dropout_seed: Optional[int] = None  # None: dropout continues the seed's generator; an int: its own
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)

    def __post_init__(self):
        _check_common(self)
        _check_positive(self, "vocab_size", "num_classes", "num_layers")
        if self.pooling not in ("mean", "attention"):
            raise ValueError(f"pooling must be 'mean' or 'attention', got {self.pooling!r}")
        if self.pad_id is not None and not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} must lie in [0, vocab_size={self.vocab_size}), or be "
                             f"None")


class TransformerClassifier(Module):
    """Encoder-only classifier: embeddings + positions, Encoder, pooling over real tokens, Linear to class
    logits."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, ClassifierConfig):
            raise TypeError(f"TransformerClassifier needs a ClassifierConfig, got {type(config).__name__}")
        c = self.config = config
        rng, drop = _streams(c)
        self.embed = TokenEmbedding(c.vocab_size, c.d_model, c.max_len, c.dropout, c.scale_embeddings,
                                    rng=rng, dtype=c.dtype, dropout_rng=drop)
        self.encoder = Encoder(c.num_layers, _block_of(c), rng=rng, dropout_rng=drop)
        if c.pooling == "mean":
            self.pool = MeanPooling()
        else:
            self.pool = AttentionPooling(c.d_model, rng=rng, dtype=c.dtype)
        self.head = Linear(c.d_model, c.num_classes, rng=rng, dtype=c.dtype)

    def forward(self, ids, lengths=None):
        """ids: (B, T) -> logits (B, C). Pad positions are ids == pad_id, or those past lengths (B,) if
        given."""
        c = self.config
        ids = _check_ids(ids, c.vocab_size, c.max_len, "ids")
        keep = _keep(ids, c.pad_id, lengths)                                 # (B, T)
        x = self.embed.forward(ids)                                          # (B, T, d_model)
        h = self.encoder.forward(x, keep[:, None, None, :])                  # (B, T, d_model)
        pooled = self.pool.forward(h, keep)                                  # (B, d_model)
        return self.head.forward(pooled)                                     # (B, C)

    def backward(self, dlogits):
        """dlogits: (B, C). Adds every parameter's gradient; returns None. Keeps ``input_grad``
        (B, T, d_model), the gradient at the encoder's input (embeddings + positions), which
        gradient-times-input attributions read (attnkit.attribution)."""
        dpooled = self.head.backward(dlogits)                                # (B, d_model)
        dh = self.pool.backward(dpooled)                                     # (B, T, d_model)
        dx = self.encoder.backward(dh)                                       # (B, T, d_model)
        self.input_grad = dx                                                 # (B, T, d_model)
        self.embed.backward(dx)
        return None

    @property
    def pool_weights(self):
        """(B, T) weight of each token in the pooled vector from the last forward (0 on pads; rows sum to
        1)."""
        return self.pool.weights

    def attention_weights(self):
        """List (one per layer) of self-attention weights (B, h, T, T) from the last forward."""
        return self.encoder.attention_weights()


# ----------------------------------------------------------------------------
# the RNN encoder-decoder with attention, where attention came from
#
# Shapes: B batch, S source length, T target length, d_e embedding width, H GRU state width,
# d_mem = 2H (bidirectional encoder) or H, the width of an encoder state (the "memory").

from .nn import GRU, AdditiveAttention, BilinearAttention  # noqa: E402

__all__ += ["RNNSeq2SeqConfig", "RNNSeq2Seq"]

RNN_ATTENTION = ("none", "additive", "multiplicative")
NO_MAX_LEN = float("inf")           # a recurrent network has no position table: any length goes


@dataclass
class RNNSeq2SeqConfig:
    """Sizes and options of the GRU encoder-decoder (Cho et al. 2014; Bahdanau et al. 2015)."""
    src_vocab_size: int                 # number of source token ids
    tgt_vocab_size: int                 # number of target token ids (= number of logits)
    d_embed: int = 32                   # width of the token embeddings (source and target)
    d_hidden: int = 64                  # H: state width of each GRU
    attention: str = "additive"         # "none" (last encoder state only), "additive", "multiplicative"
    d_attention: int = 64               # hidden width of the additive score (unused otherwise)
    bidirectional: bool = True          # encoder reads the source both ways (memory width 2H)
    pad_id: Optional[int] = 0           # padding id of both vocabularies (None: no padding)
    seed: int = 0                       # seed of the initialization
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_embed", "d_hidden", "d_attention"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.attention not in RNN_ATTENTION:
            raise ValueError(f"attention must be one of {RNN_ATTENTION}, got {self.attention!r}")
        if self.pad_id is not None and not (0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size)):
            raise ValueError(f"pad_id={self.pad_id} must be an id in both vocabularies, or None")
        if not np.issubdtype(np.dtype(self.dtype), np.floating):
            raise TypeError(f"dtype must be a floating type such as np.float32, got {self.dtype}")

    @property
    def d_memory(self):
        return (2 if self.bidirectional else 1) * self.d_hidden


class RNNSeq2Seq(Module):
    """GRU encoder-decoder: source ids and shifted target ids -> next-token logits, with or without attention.

    Encoder: embeddings, a GRU left to right and (bidirectional) one right to left; the memory
    is their states side by side, (B, S, d_mem), and the summary their last states (B, d_mem).
    Decoder, at step t with state s_{t-1} (s_0 = tanh(summary W_init + b_init), as Bahdanau's):
        c_t = summary                              attention "none": the fixed-length bottleneck
        c_t = attend(query s_{t-1}, memory)        "additive" (Bahdanau) or "multiplicative" (Luong's general score)
        s_t = GRU([embed(y_{t-1}); c_t], s_{t-1})
        logits_t = [s_t; c_t] W_out + b_out
    The query is the previous state, as in Bahdanau et al.; Luong et al. score the new state
    instead, here only their score function is used. Padded source steps leave the encoder
    state unchanged and get attention weight 0; target padding needs no mask (the decoder only
    looks back, and the loss ignores pad positions).
    """

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, RNNSeq2SeqConfig):
            raise TypeError(f"RNNSeq2Seq needs an RNNSeq2SeqConfig, got {type(config).__name__}")
        c = self.config = config
        rng = make_rng(c.seed)
        kw = dict(rng=rng, dtype=c.dtype)
        self.src_embed = Embedding(c.src_vocab_size, c.d_embed, **kw)
        self.tgt_embed = Embedding(c.tgt_vocab_size, c.d_embed, **kw)
        self.enc_fwd = GRU(c.d_embed, c.d_hidden, **kw)
        self.enc_bwd = GRU(c.d_embed, c.d_hidden, **kw) if c.bidirectional else None
        self.init = Linear(c.d_memory, c.d_hidden, **kw)
        self.decoder = GRU(c.d_embed + c.d_memory, c.d_hidden, **kw)
        if c.attention == "additive":
            self.attention = AdditiveAttention(c.d_hidden, c.d_memory, c.d_attention, **kw)
        elif c.attention == "multiplicative":
            self.attention = BilinearAttention(c.d_hidden, c.d_memory, **kw)
        else:
            self.attention = None
        self.out = Linear(c.d_hidden + c.d_memory, c.tgt_vocab_size, **kw)
        self.attn_weights = None

    # --- encoder

    def encode(self, src_ids, src_lengths=None):
        """src_ids (B, S) -> (memory (B, S, d_mem), summary (B, d_mem), keep (B, S) bool, True on real tokens)."""
        c = self.config
        src_ids = _check_ids(src_ids, c.src_vocab_size, NO_MAX_LEN, "src_ids")
        keep = _keep(src_ids, c.pad_id, src_lengths)                        # (B, S)
        if not keep.any(axis=1).all():
            raise ValueError("a source sequence has no real token (all padding): it has nothing to encode")
        x = self.src_embed.forward(src_ids)                                 # (B, S, d_e)
        hs, last = self.enc_fwd.forward(x, mask=keep)                       # (B, S, H), (B, H)
        if self.enc_bwd is not None:
            # right to left: the reversed row has its pads first, where the state stays 0
            hs_b, last_b = self.enc_bwd.forward(x[:, ::-1], mask=keep[:, ::-1])  # (B, S, H), (B, H)
            hs = np.concatenate([hs, hs_b[:, ::-1]], axis=-1)               # (B, S, 2H)
            last = np.concatenate([last, last_b], axis=-1)                  # (B, 2H)
        return hs, last, keep

    def _encode_backward(self, dmemory, dsummary):
        """dmemory (B, S, d_mem), dsummary (B, d_mem) -> None; adds every encoder gradient."""
        H = self.config.d_hidden
        dx, _ = self.enc_fwd.backward(dmemory[..., :H], dsummary[:, :H])    # (B, S, d_e)
        if self.enc_bwd is not None:
            dx_b, _ = self.enc_bwd.backward(dmemory[:, ::-1, H:], dsummary[:, H:])  # (B, S, d_e), reversed
            dx = dx + dx_b[:, ::-1]                                         # (B, S, d_e)
        self.src_embed.backward(dx)

    # --- decoder, one step

    def _start(self, summary):
        """s_0 = tanh(summary W_init + b_init) (B, H)."""
        return np.tanh(self.init.forward(summary))                          # (B, H)

    def _step(self, e_t, s, memory, kp, keep, summary):
        """One decoder step: e_t (B, d_e) embedding of y_{t-1}, s (B, H) state s_{t-1}.
        Returns (s_t (B, H), c_t (B, d_mem), weights (B, S) or None, cache)."""
        w, attn_cache = None, None
        if self.attention is None:
            ctx = summary                                                   # (B, d_mem)
        else:
            ctx, w, attn_cache = self.attention.attend(s[:, None], kp, memory, keep[:, None, :])
            ctx, w = ctx[:, 0], w[:, 0]                                     # (B, d_mem), (B, S)
        x_t = np.concatenate([e_t, ctx], axis=-1)                           # (B, d_e + d_mem)
        s_new, gru_cache = self.decoder.cell_forward(self.decoder.project_input(x_t), s)  # (B, H)
        return s_new, ctx, w, (x_t, gru_cache, attn_cache)

    # --- the whole model

    def forward(self, src_ids, tgt_in_ids, src_lengths=None):
        """src_ids: (B, S); tgt_in_ids: (B, T) (BOS first) -> logits (B, T, V_tgt).

        ``attn_weights`` then holds the decoder's attention weights (B, T, S) (None without attention)."""
        c = self.config
        tgt_in_ids = _check_ids(tgt_in_ids, c.tgt_vocab_size, NO_MAX_LEN, "tgt_in_ids")
        memory, summary, keep = self.encode(src_ids, src_lengths)           # (B, S, d_mem), (B, d_mem), (B, S)
        B, T = tgt_in_ids.shape
        if memory.shape[0] != B:
            raise ValueError(f"src_ids and tgt_in_ids must have the same batch size, got {B} and {memory.shape[0]}")
        kp = None if self.attention is None else self.attention.project_keys(memory)  # (B, S, *)
        emb = self.tgt_embed.forward(tgt_in_ids)                            # (B, T, d_e)
        s = self._start(summary)                                            # (B, H)
        feats = np.empty((B, T, c.d_hidden + c.d_memory), dtype=memory.dtype)  # (B, T, H + d_mem)
        weights = None if self.attention is None else np.empty((B, T, memory.shape[1]), memory.dtype)
        s0, steps = s, []
        for t in range(T):
            s, ctx, w, cache = self._step(emb[:, t], s, memory, kp, keep, summary)  # (B, H), (B, d_mem)
            feats[:, t, :c.d_hidden], feats[:, t, c.d_hidden:] = s, ctx
            if w is not None:
                weights[:, t] = w                                           # (B, S)
            steps.append(cache)
        self.attn_weights = weights
        self.cache = (memory, s0, steps)
        return self.out.forward(feats)                                      # (B, T, V_tgt)

    def backward(self, dlogits):
        """dlogits: (B, T, V_tgt). Adds every parameter's gradient; returns None (ids have no gradient)."""
        memory, s0, steps = self.cache
        c = self.config
        H, d_e = c.d_hidden, c.d_embed
        dfeats = self.out.backward(dlogits)                                 # (B, T, H + d_mem)
        B, T, _ = dfeats.shape
        ds = np.zeros((B, H), dtype=dfeats.dtype)                           # (B, H) gradient of s_t from step t+1
        demb = np.empty((B, T, d_e), dtype=dfeats.dtype)                    # (B, T, d_e)
        dmemory = np.zeros_like(memory)                                     # (B, S, d_mem)
        dkp = None                                                          # (B, S, *) summed over steps
        dsummary = np.zeros((B, c.d_memory), dtype=dfeats.dtype)            # (B, d_mem)
        for t in reversed(range(T)):
            x_t, gru_cache, attn_cache = steps[t]
            ds = ds + dfeats[:, t, :H]                                      # (B, H)
            dctx = dfeats[:, t, H:]                                         # (B, d_mem)
            dgx, ds = self.decoder.cell_backward(ds, gru_cache)             # (B, 3H), (B, H) = d s_{t-1}
            dx_t = self.decoder.project_input_backward(dgx, x_t)            # (B, d_e + d_mem)
            demb[:, t] = dx_t[:, :d_e]
            dctx = dctx + dx_t[:, d_e:]                                     # (B, d_mem)
            if self.attention is None:
                dsummary += dctx
            else:
                dq, dkp_t, dvals = self.attention.attend_backward(dctx[:, None], attn_cache)
                ds = ds + dq[:, 0]                                          # (B, H) the query was s_{t-1}
                dkp = dkp_t if dkp is None else dkp + dkp_t                 # (B, S, *)
                dmemory += dvals                                            # (B, S, d_mem)
        self.tgt_embed.backward(demb)
        dsummary += self.init.backward(ds * (1 - s0 * s0))                  # (B, d_mem) s_0 = tanh(init(summary))
        if dkp is not None:
            dmemory += self.attention.project_keys_backward(dkp, memory)    # (B, S, d_mem)
        self._encode_backward(dmemory, dsummary)
        return None

    # --- decoding

    def greedy_decode(self, src_ids, bos_id, eos_id, max_len, src_lengths=None):
        """Greedy decoding: src_ids (B, S) -> (tokens (B, max_len), weights (B, max_len, S) or None).

        At each step the most likely token is taken and fed back (never pad_id or bos_id). A row
        that produced eos_id holds pad_id after it (eos_id if there is no pad_id)."""
        c = self.config
        if not (0 <= bos_id < c.tgt_vocab_size and 0 <= eos_id < c.tgt_vocab_size):
            raise ValueError(f"bos_id={bos_id} and eos_id={eos_id} must be target ids in [0, {c.tgt_vocab_size})")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        memory, summary, keep = self.encode(src_ids, src_lengths)           # (B, S, d_mem), (B, d_mem), (B, S)
        B, S, _ = memory.shape
        kp = None if self.attention is None else self.attention.project_keys(memory)
        s = self._start(summary)                                            # (B, H)
        fill = eos_id if c.pad_id is None else c.pad_id
        tokens = np.full((B, max_len), fill, dtype=np.int64)                # (B, max_len)
        weights = None if self.attention is None else np.zeros((B, max_len, S), memory.dtype)
        prev = np.full(B, bos_id, dtype=np.int64)                           # (B,)
        done = np.zeros(B, dtype=bool)
        banned = [bos_id] + ([] if c.pad_id is None else [c.pad_id])
        W_e = self.tgt_embed.params["W"]                                    # (V_tgt, d_e)
        for t in range(max_len):
            s, ctx, w, _ = self._step(W_e[prev], s, memory, kp, keep, summary)  # (B, H), (B, d_mem)
            logits = self.out.forward(np.concatenate([s, ctx], axis=-1))    # (B, V_tgt)
            logits[:, banned] = -np.inf
            prev = logits.argmax(axis=-1)                                   # (B,)
            tokens[~done, t] = prev[~done]
            if w is not None:
                weights[:, t] = w
            done |= prev == eos_id
            if done.all():
                break
        return tokens, weights


# ----------------------------------------------------------------------------
# decoder-only language model (GPT)

GPT_POSITIONS = _pos.POSITION_METHODS     # "learned", "none", "sinusoidal", "rope", "alibi" (chapter 22)


@dataclass
class GPTConfig:
    """Sizes and options of the decoder-only language model (defaults: nanoGPT's CPU Shakespeare model)."""
    vocab_size: int                     # number of token ids (= number of logits)
    context_length: int = 64            # training length: the longest input for a learned table (its
                                        # rows) and the default cache capacity; see position_table
    num_layers: int = 4                 # causal self-attention blocks
    num_heads: int = 4                  # attention heads; d_model must divide by it
    d_model: int = 128                  # width of every token vector (the residual stream)
    d_ff: int = 512                     # hidden width of the feed-forward sublayers (4 d_model)
    dropout: float = 0.0                # dropout on embeddings, sublayer outputs and attention weights
    norm_first: bool = True             # True: pre-LN (GPT-2); False: post-LN (the 2017 paper)
    tie_embeddings: bool = False        # logits from the token embedding table (x @ E^T)
    activation: str = "gelu"            # feed-forward nonlinearity: "gelu" (GPT-2) or "relu"
    seed: int = 0                       # seed of the initialization and dropout generator
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)
    pos: str = "learned"                # positions: "learned" (a table of context_length rows)
                                        # or "none" (the causal mask alone tells order); chapter 22:
                                        # "sinusoidal" (fixed table), "rope" (rotary), "alibi" (biases)
    rope_base: float = 10000.0          # rope: pair i turns by rope_base^(-2i/d_head) per position
    rope_scale: float = 1.0             # rope: positions times this (interpolation: train_len / eval_len)
    position_table: Optional[int] = None  # learned, sinusoidal: table rows (None: context_length); the
                                        # longest input. rope, alibi, none take any length
    num_kv_heads: Optional[int] = None  # key/value heads: None = num_heads (multi-head), a divisor of it
                                        # (grouped-query), 1 (multi-query)
    attention: str = "softmax"          # "softmax", or "linear": causal linear attention (elu + 1),
                                        # decoded with a fixed-size state; no attention dropout
    window: Optional[int] = None        # sliding window: each position sees its last `window` ones
                                        # (itself included); None: every earlier position
    sinks: int = 0                      # with a window: the first `sinks` positions stay visible

    mlp: bool = True                    # False: attention-only blocks, no feed-forward sublayer
                                        # (the attention-only Transformers of Elhage et al. 2021)

    @property
    def attn_dropout(self):
        """The attention dropout: a GPT uses one rate, ``dropout``, everywhere."""
        return self.dropout

    def __post_init__(self):
        if not isinstance(self.mlp, (bool, np.bool_)):
            raise TypeError(f"mlp must be True (blocks with a feed-forward sublayer) or False (attention "
                            f"only), got {self.mlp!r}")
        _check_positive(self, "vocab_size", "context_length", "num_layers")
        _check_block(self)                  # heads, d_ff, dropout, activation, dtype
        _pos.check_position_config(self)
        _check_gpt_attention(self)


def _check_gpt_attention(c):
    """The inference-time attention options of a GPTConfig: grouped heads, kernel, window, sinks."""
    _check_kv_heads(c.num_heads, c.num_kv_heads)
    if c.attention not in ATTENTION_KERNELS:
        raise ValueError(f"attention must be one of {ATTENTION_KERNELS}, got {c.attention!r}")
    if c.window is not None:
        check_int(c.window, "window", 1, " (positions each query sees, itself included), or None")
        if c.attention == "linear":
            raise ValueError("window applies to softmax attention; linear attention already has a "
                             "fixed-size state: use window=None")
    if c.attention == "linear" and c.pos == "alibi":
        raise ValueError("ALiBi adds a bias to softmax scores; linear attention has none: use another pos")
    if check_int(c.sinks, "sinks", 0) and c.window is None:
        raise ValueError(f"sinks={c.sinks} needs a window (sinks are the positions a window keeps)")


def _gpt_mask(c, T):
    """The attention mask of a whole (uncached) GPT forward: causal, banded with a window, None
    for linear attention (causal by construction)."""
    if c.attention == "linear":
        return None
    if c.window is not None:
        return sliding_window_mask(T, c.window, c.sinks)[None, None]     # (1, 1, T, T)
    return causal_mask(T)[None, None]                                     # (1, 1, T, T)


class GPT(Module):
    """Decoder-only Transformer language model: token + learned position embeddings, causal blocks, LayerNorm, logits.

    ids (B, T) -> logits (B, T, V); the logits at position t are the model's scores for token
    t + 1 and depend on ids[:, :t+1] only (the causal mask). No encoder, no cross-attention: a
    decoder block without its middle sublayer is an encoder block with a causal mask, so the
    blocks are attnkit's Encoder stack (pre-LN by default, with its final LayerNorm).
    config.pos chooses how positions enter (attnkit.positions): added vectors from a learned or
    sinusoidal table (inputs up to the table's rows), rotated queries and keys (rope), a bias
    on the scores (alibi) or nothing (none); the last three take inputs of any length.
    """

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        rng = make_rng(c.seed)
        self.tok_embed = Embedding(c.vocab_size, c.d_model, rng=rng, dtype=c.dtype)
        _pos.make_position_modules(self, rng)                             # self.pos_embed: learned, sinusoidal
        self.drop = Dropout(c.dropout, rng=rng)
        attn_dropout = 0.0 if c.attention == "linear" else c.dropout
        self.blocks = Encoder(c.num_layers, c.d_model, c.num_heads, c.d_ff, c.dropout, attn_dropout,
                              c.activation, c.norm_first, rng=rng, dtype=c.dtype,
                              num_kv_heads=c.num_kv_heads, kernel=c.attention)
        _pos.attach_rotary(self)                                          # rope: every attention rotates
        if not c.mlp:
            _attention_only(self.blocks)
        if c.tie_embeddings:
            self.head = TiedOutputProjection(self.tok_embed)
        else:
            self.head = Linear(c.d_model, c.vocab_size, rng=rng, dtype=c.dtype)

    def make_cache(self, num_rows, capacity=None, window=None, sinks=None):
        """An empty GPTCache for forward(ids, cache=...): num_rows sequences. A full key/value
        cache of capacity positions (default context_length); with a window (the config's, or
        given here to decode a model trained without one) a RollingKVCache of sinks + window
        positions; with linear attention a LinearStateCache. The last two never fill up."""
        return GPTCache(self, num_rows, capacity, window=window, sinks=sinks)

    def forward(self, ids, cache=None):
        """ids: (B, T) token ids -> logits (B, T, V). T may exceed context_length (the training
        length) for pos = rope, alibi and none, and up to position_table rows for learned and
        sinusoidal (a position past the table raises ValueError).

        cache: a GPTCache (see make_cache) to generate step by step: ids are then the next T
        positions, from cache.position on (the position offset), every earlier one is read from
        the cache, and the cache grows by T. The logits equal (up to rounding) those of the
        whole prefix at once. Inference only: no backward through a cached call."""
        c = self.config
        # the length is not limited here: a learned or sinusoidal table names a position past its rows
        ids = _check_ids(ids, c.vocab_size, float("inf"), "ids")
        B, T = ids.shape
        offset, held = 0, 0
        if cache is None:
            mask = _gpt_mask(c, T)                                        # (1, 1, T, T) or None
        else:
            if not isinstance(cache, GPTCache) or cache.num_rows != B:
                raise ValueError(f"cache must be a GPTCache for {B} rows, from model.make_cache({B})")
            offset, held = cache.position, cache.length
            if cache.bounded and held + T > cache.capacity:
                limit = (f"context_length={cache.capacity}" if cache.capacity == c.context_length
                         else f"the cache's capacity={cache.capacity}")
                raise ValueError(f"{T} new positions after {held} cached ones exceed {limit}: start a new "
                                 "cache on the last tokens, or make one with a larger capacity "
                                 "(model.make_cache(num_rows, capacity))")
            # a full cache needs the causal part; rolling and linear caches make their own
            mask = _offset_causal_mask(held, T) if cache.kind == "full" else None  # (T, held + T) or None
        positions = np.arange(offset, offset + T)                         # (T,) absolute positions
        x = self.tok_embed.forward(ids)                                   # (B, T, d_model)
        if c.pos in _pos.TABLE_METHODS:
            x = x + self.pos_embed.forward(positions[None, :])            # (B, T, d_model)
        x = self.drop.forward(x)                                          # (B, T, d_model)
        # alibi: the bias of each query over the keys the attention will hold (cached + new; a
        # rolling cache holds them in slot order, and says at which positions)
        if cache is not None and cache.kind == "window":
            key_pos = cache.layers[0].key_positions(T)                    # (t,) or (t + T,)
        else:
            key_pos = np.arange(offset - held, offset + T)                # (held + T,)
        bias = _pos.score_bias(c, positions, key_pos)                     # (h, T, len(key_pos)) or None
        x = self.blocks.forward(x, mask, None if cache is None else cache.layers,
                                positions=positions, bias=bias)           # (B, T, d_model)
        return self.head.forward(x)                                       # (B, T, V)

    def backward(self, dlogits):
        """dlogits: (B, T, V). Adds every parameter's gradient; returns None (ids have no gradient)."""
        dx = self.head.backward(dlogits)                                  # (B, T, d_model)
        dx = self.blocks.backward(dx)                                     # (B, T, d_model)
        dx = self.drop.backward(dx)                                       # (B, T, d_model)
        if self.config.pos == "learned":
            # every sequence of the batch uses the same positions: their gradients add up
            self.pos_embed.backward(dx.sum(axis=0, keepdims=True))        # (1, T, d_model)
        self.tok_embed.backward(dx)
        return None

    def attention_weights(self):
        """List (one per block) of the causal self-attention weights (B, h, T, T) from the last forward."""
        return self.blocks.attention_weights()


class _Identity(Module):
    """A sublayer that passes its input through unchanged (no parameters)."""

    def forward(self, x):
        return x                                                          # (B, T, d_model)

    def backward(self, dout):
        return dout                                                       # (B, T, d_model)


def _attention_only(blocks):
    """Remove the feed-forward sublayer (with its LayerNorm and dropout) from every block of an
    Encoder stack, in place: each block is then x + SelfAttention(LN(x)) and nothing else.

    The feed-forward weights were drawn from the init Generator before they are dropped, so the
    attention weights are the same as in the model with MLPs of the same seed."""
    for layer in blocks.layers:
        del layer.ff, layer.norm2, layer.drop2
        layer.ff_block = _Identity()


class GPTCache:
    """The caches of a GPT's blocks, filled as GPT.forward(cache=...) runs: one attnkit.nn.KVCache
    each (kind "full"), or one attnkit.kvcache.RollingKVCache ("window"), or one
    attnkit.kvcache.LinearStateCache ("linear", for attention="linear")."""

    def __init__(self, model, num_rows, capacity=None, window=None, sinks=None):
        """model: a GPT; num_rows: sequences generated together; capacity: positions a full cache
        holds (default context_length); window, sinks: a rolling cache of sinks + window positions
        instead (None: the config's). Memory of a full cache: 2 * layers * num_rows * capacity *
        h_kv * d_k numbers (attnkit.kvcache.kv_cache_bytes)."""
        if not isinstance(model, GPT):
            raise TypeError(f"GPTCache needs an attnkit.models.GPT, got {type(model).__name__}")
        if isinstance(num_rows, bool) or int(num_rows) != num_rows or num_rows < 1:
            raise ValueError(f"num_rows must be a positive integer, got {num_rows!r}")
        c = model.config
        window = c.window if window is None else check_int(window, "window", 1)
        sinks = (c.sinks if sinks is None else check_int(sinks, "sinks", 0)) if window else 0
        self.num_rows = int(num_rows)
        n = len(model.blocks.layers)
        if c.attention == "linear":
            if window is not None:
                raise ValueError("linear attention keeps a fixed-size state: it takes no window")
            self.kind, self.capacity = "linear", None
            self.layers = [LinearStateCache() for _ in range(n)]
        elif window is not None:
            self.kind, self.capacity = "window", sinks + window
            self.layers = [RollingKVCache(window, sinks) for _ in range(n)]
        else:
            capacity = c.context_length if capacity is None else capacity
            self.kind = "full"
            self.capacity = check_int(capacity, "capacity", 1, " (the most positions the cache holds)")
            self.layers = [KVCache(self.capacity) for _ in range(n)]

    @property
    def bounded(self):
        """True for a full cache, which holds at most `capacity` positions."""
        return self.kind == "full"

    @property
    def nbytes(self):
        """Bytes the caches hold now (allocated buffers or states)."""
        return cache_nbytes(self)

    @property
    def length(self):
        """Positions cached so far, the position offset of the next forward."""
        return self.layers[0].length

    @property
    def position(self):
        """Positions appended so far (absolute), the position of the next token."""
        return self.layers[0].position
