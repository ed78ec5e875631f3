"""Transformer blocks and whole models built from the layers in attnkit.nn.

Shapes: B batch, S source length, T target (or single-sequence) length, d_model model width,
h heads, V vocabulary size, C number of classes. Masks are boolean, True = may attend.

Every model follows the layer convention of attnkit.nn: ``forward`` keeps a cache, ``backward``
reads the forward in reverse (one call per layer) and *adds* into the parameter gradients.

  EncoderLayer / DecoderLayer   one block, post-LN (the paper) or pre-LN (``norm_first=True``)
  Encoder / Decoder             stacks of blocks (a final LayerNorm when pre-LN)
  TokenEmbedding                ids -> embedding * sqrt(d_model) + sinusoidal positions -> dropout
  Transformer                   the encoder-decoder of "Attention Is All You Need"
  TransformerClassifier         encoder-only sequence classifier with mean or attention pooling
"""
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .functional import causal_mask
from .seeding import make_rng
from .nn import (Dropout, Embedding, FeedForward, LayerNorm, Linear, Module, ModuleList,
                 MultiHeadAttention, SinusoidalPositionalEncoding, _rng)

__all__ = ["EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "TokenEmbedding",
           "TiedOutputProjection", "MeanPooling", "AttentionPooling",
           "TransformerConfig", "Transformer", "ClassifierConfig", "TransformerClassifier",
           "GPTConfig", "GPT"]


# ----------------------------------------------------------------------------
# blocks

class EncoderLayer(Module):
    """Self-attention then feed-forward, each with residual dropout, a residual connection and a LayerNorm.

    Post-LN (norm_first=False, the paper):  x = LN(x + Dropout(Sublayer(x)))
    Pre-LN  (norm_first=True):              x = x + Dropout(Sublayer(LN(x)))
    Pre-LN keeps an un-normalized residual path from input to output, which trains deep stacks
    without a learning-rate warm-up; post-LN needs the warm-up.
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, attn_dropout=0.0, activation="relu",
                 norm_first=False, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=attn_dropout, rng=rng, dtype=dtype)
        self.ff = FeedForward(d_model, d_ff, activation, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d_model, dtype=dtype)
        self.norm2 = LayerNorm(d_model, dtype=dtype)
        self.drop1 = Dropout(dropout, rng=rng)
        self.drop2 = Dropout(dropout, rng=rng)

    def forward(self, x, mask=None):
        """x: (B, T, d_model); mask broadcastable to (B, h, T, T). Returns (B, T, d_model)."""
        if self.norm_first:
            x = x + self.drop1.forward(self.self_attn.forward(self.norm1.forward(x), mask=mask))  # (B, T, d_model)
            x = x + self.drop2.forward(self.ff.forward(self.norm2.forward(x)))                    # (B, T, d_model)
        else:
            x = self.norm1.forward(x + self.drop1.forward(self.self_attn.forward(x, mask=mask)))  # (B, T, d_model)
            x = self.norm2.forward(x + self.drop2.forward(self.ff.forward(x)))                    # (B, T, d_model)
        return x

    def backward(self, dout):
        """dout: (B, T, d_model) -> dx (B, T, d_model). The residual adds the identity's gradient."""
        if self.norm_first:
            dx = dout + self.norm2.backward(self.ff.backward(self.drop2.backward(dout)))          # (B, T, d_model)
            dx = dx + self.norm1.backward(self.self_attn.backward(self.drop1.backward(dx)))       # (B, T, d_model)
        else:
            dres = self.norm2.backward(dout)                                                      # (B, T, d_model)
            dx = dres + self.ff.backward(self.drop2.backward(dres))                               # (B, T, d_model)
            dres = self.norm1.backward(dx)                                                        # (B, T, d_model)
            dx = dres + self.self_attn.backward(self.drop1.backward(dres))                        # (B, T, d_model)
        return dx


class DecoderLayer(Module):
    """Masked self-attention, cross-attention over the encoder output (memory), feed-forward.

    Each of the three sublayers has residual dropout, a residual connection and a LayerNorm,
    after the sum (post-LN) or before the sublayer (pre-LN), as in EncoderLayer. Only the
    queries of the cross-attention come from the decoder: its keys and values are projections of
    the memory, the same at every decoding step (what a key/value cache computes once).
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, attn_dropout=0.0, activation="relu",
                 norm_first=False, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=attn_dropout, rng=rng, dtype=dtype)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=attn_dropout, rng=rng, dtype=dtype)
        self.ff = FeedForward(d_model, d_ff, activation, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d_model, dtype=dtype)
        self.norm2 = LayerNorm(d_model, dtype=dtype)
        self.norm3 = LayerNorm(d_model, dtype=dtype)
        self.drop1 = Dropout(dropout, rng=rng)
        self.drop2 = Dropout(dropout, rng=rng)
        self.drop3 = Dropout(dropout, rng=rng)

    def forward(self, x, memory, self_mask=None, memory_mask=None, kv_cache=None):
        """x: (B, T, d_model); memory: (B, S, d_model); self_mask broadcastable to (B, h, T, T)
        (causal and target padding); memory_mask broadcastable to (B, h, T, S) (source padding).
        Returns (B, T, d_model).

        kv_cache: None in training. In incremental decoding, this layer's key/value cache (an
        attnkit.decoding.LayerCache), and x (N, 1, d_model) is the one new position: the self-attention
        appends its key and value to the cache and reads all cached ones, the cross-attention reads
        the memory's cached keys and values (memory and the masks are then not used). Inference
        only: there is no backward through a cached step.
        """
        if self.norm_first:
            x = x + self.drop1.forward(
                self._self_attention(self.norm1.forward(x), self_mask, kv_cache))                       # (B, T, d_model)
            x = x + self.drop2.forward(
                self._cross_attention(self.norm2.forward(x), memory, memory_mask, kv_cache))            # (B, T, d_model)
            x = x + self.drop3.forward(self.ff.forward(self.norm3.forward(x)))                         # (B, T, d_model)
        else:
            x = self.norm1.forward(
                x + self.drop1.forward(self._self_attention(x, self_mask, kv_cache)))                   # (B, T, d_model)
            x = self.norm2.forward(
                x + self.drop2.forward(self._cross_attention(x, memory, memory_mask, kv_cache)))        # (B, T, d_model)
            x = self.norm3.forward(x + self.drop3.forward(self.ff.forward(x)))                         # (B, T, d_model)
        return x

    def _self_attention(self, x, mask, kv_cache):
        if kv_cache is None:
            return self.self_attn.forward(x, mask=mask)                     # (B, T, d_model)
        if x.shape[1] != 1:
            raise ValueError(f"a cached decoder step takes one new position, x of shape (N, 1, d_model); "
                             f"got {x.shape}")
        k, v = kv_cache.append(*self.self_attn.keys_values(x))             # (N, h, t+1, d_k) each
        # no mask: the cache holds only the past and the present, what the causal mask would allow
        return self.self_attn.attend_cached(x, k, v)                       # (N, 1, d_model)

    def _cross_attention(self, x, memory, mask, kv_cache):
        if kv_cache is None:
            return self.cross_attn.forward(x, memory, mask=mask)            # (B, T, d_model)
        return self.cross_attn.attend_cached(x, kv_cache.memory_k, kv_cache.memory_v,
                                             mask=kv_cache.memory_mask)  # (N, 1, d_model)

    def backward(self, dout):
        """dout: (B, T, d_model) -> (dx (B, T, d_model), dmemory (B, S, d_model))."""
        if self.norm_first:
            dx = dout + self.norm3.backward(self.ff.backward(self.drop3.backward(dout)))               # (B, T, d_model)
            dq, dmemory = self.cross_attn.backward(self.drop2.backward(dx))                            # (B, T, d), (B, S, d)
            dx = dx + self.norm2.backward(dq)                                                          # (B, T, d_model)
            dx = dx + self.norm1.backward(self.self_attn.backward(self.drop1.backward(dx)))            # (B, T, d_model)
        else:
            dres = self.norm3.backward(dout)                                                           # (B, T, d_model)
            dx = dres + self.ff.backward(self.drop3.backward(dres))                                    # (B, T, d_model)
            dres = self.norm2.backward(dx)                                                             # (B, T, d_model)
            dq, dmemory = self.cross_attn.backward(self.drop2.backward(dres))                          # (B, T, d), (B, S, d)
            dx = dres + dq                                                                             # (B, T, d_model)
            dres = self.norm1.backward(dx)                                                             # (B, T, d_model)
            dx = dres + self.self_attn.backward(self.drop1.backward(dres))                             # (B, T, d_model)
        return dx, dmemory


class Encoder(Module):
    """A stack of EncoderLayers, with a final LayerNorm when pre-LN (the residual stream is never normalized otherwise)."""

    def __init__(self, num_layers, d_model, num_heads, d_ff, dropout=0.1, attn_dropout=0.0,
                 activation="relu", norm_first=False, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.layers = ModuleList([
            EncoderLayer(d_model, num_heads, d_ff, dropout, attn_dropout, activation, norm_first, rng=rng, dtype=dtype)
            for _ in range(num_layers)])
        self.norm = LayerNorm(d_model, dtype=dtype) if norm_first else None

    def forward(self, x, mask=None):
        """x: (B, T, d_model); mask broadcastable to (B, h, T, T). Returns (B, T, d_model)."""
        for layer in self.layers:
            x = layer.forward(x, mask)                                   # (B, T, d_model)
        if self.norm is not None:
            x = self.norm.forward(x)                                     # (B, T, d_model)
        return x

    def backward(self, dout):
        """dout: (B, T, d_model) -> dx (B, T, d_model)."""
        if self.norm is not None:
            dout = self.norm.backward(dout)                              # (B, T, d_model)
        for layer in reversed(self.layers.items):
            dout = layer.backward(dout)                                  # (B, T, d_model)
        return dout

    def attention_weights(self):
        """List (one per layer) of self-attention weights (B, h, T, T) from the last forward."""
        return [layer.self_attn.attn_weights for layer in self.layers]


class Decoder(Module):
    """A stack of DecoderLayers reading the same memory, with a final LayerNorm when pre-LN."""

    def __init__(self, num_layers, d_model, num_heads, d_ff, dropout=0.1, attn_dropout=0.0,
                 activation="relu", norm_first=False, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.layers = ModuleList([
            DecoderLayer(d_model, num_heads, d_ff, dropout, attn_dropout, activation, norm_first, rng=rng, dtype=dtype)
            for _ in range(num_layers)])
        self.norm = LayerNorm(d_model, dtype=dtype) if norm_first else None

    def forward(self, x, memory, self_mask=None, memory_mask=None):
        """x: (B, T, d_model); memory: (B, S, d_model). Returns (B, T, d_model)."""
        for layer in self.layers:
            x = layer.forward(x, memory, self_mask, memory_mask)         # (B, T, d_model)
        if self.norm is not None:
            x = self.norm.forward(x)                                     # (B, T, d_model)
        return x

    def backward(self, dout):
        """dout: (B, T, d_model) -> (dx (B, T, d_model), dmemory (B, S, d_model)).

        Every layer reads the memory, so its gradient is the sum over layers."""
        if self.norm is not None:
            dout = self.norm.backward(dout)                              # (B, T, d_model)
        dmemory = 0
        for layer in reversed(self.layers.items):
            dout, dmem = layer.backward(dout)                            # (B, T, d_model), (B, S, d_model)
            dmemory = dmemory + dmem                                     # (B, S, d_model)
        return dout, dmemory

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
                 dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.embed = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.pos = SinusoidalPositionalEncoding(max_len, d_model, dtype=dtype)
        self.drop = Dropout(dropout, rng=rng)
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
    """A learned query q attends over the token states: w = softmax(h q / sqrt(d_model)) on real tokens, out = w h."""

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
        s = np.where(keep, s, -np.inf)
        w = np.exp(s - s.max(axis=1, keepdims=True))                     # (B, T), pads exp(-inf) = 0
        w /= w.sum(axis=1, keepdims=True)
        self.weights = w
        self.cache = (h, scale)
        return np.einsum("bt,btd->bd", w, h)                             # (B, d_model)

    def backward(self, dout):
        """dout: (B, d_model) -> dh (B, T, d_model); adds dq."""
        h, scale = self.cache
        w = self.weights                                                 # (B, T)
        dw = np.einsum("bd,btd->bt", dout, h)                            # (B, T)
        ds = w * (dw - np.sum(w * dw, axis=1, keepdims=True))            # (B, T), softmax backward
        ds *= scale
        self.grads["q"] += np.einsum("bt,btd->d", ds, h)                 # (d_model,)
        return w[:, :, None] * dout[:, None, :] + ds[:, :, None] * self.params["q"]  # (B, T, d_model)


# ----------------------------------------------------------------------------
# configuration checks shared by the models

def _check_common(cfg):
    if cfg.num_heads < 1 or cfg.d_model % cfg.num_heads != 0:
        raise ValueError(f"d_model={cfg.d_model} must be divisible by num_heads={cfg.num_heads} "
                         "(each head gets d_model / num_heads dimensions); change one of them")
    if cfg.d_model % 2:
        raise ValueError(f"d_model={cfg.d_model} must be even for the sinusoidal position table (sin/cos pairs)")
    for name in ("d_ff", "max_len"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(cfg, name)}")
    for name in ("dropout", "attn_dropout"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.activation not in ("relu", "gelu"):
        raise ValueError(f"activation must be 'relu' or 'gelu', got {cfg.activation!r}")
    if not np.issubdtype(np.dtype(cfg.dtype), np.floating):
        raise TypeError(f"dtype must be a floating type such as np.float32 or np.float64, got {cfg.dtype}")


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
        raise ValueError(f"{name} must lie in [0, {vocab_size}) (the vocabulary size); found {bad[:5].tolist()}")
    return ids


def _keep(ids, pad_id, lengths):
    """(B, T) bool, True on real tokens: from explicit lengths if given, else ids != pad_id."""
    B, T = ids.shape
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be {B} integers (one per sequence), got shape {lengths.shape}, "
                             f"dtype {lengths.dtype}")
        if np.any(lengths < 0) or np.any(lengths > T):
            raise ValueError(f"every length must lie in [0, T={T}], got {lengths.tolist()}")
        return np.arange(T)[None, :] < lengths[:, None]                  # (B, T)
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
    seed: int = 0                       # seed of the initialization and dropout generator
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)

    def __post_init__(self):
        _check_common(self)
        for name in ("src_vocab_size", "tgt_vocab_size", "num_encoder_layers", "num_decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.pad_id is not None and not (0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size)):
            raise ValueError(f"pad_id={self.pad_id} must be an id in both vocabularies "
                             f"(sizes {self.src_vocab_size}, {self.tgt_vocab_size}), or None for no padding")


class Transformer(Module):
    """Encoder-decoder Transformer (Vaswani et al., 2017): source ids and shifted target ids -> next-token logits."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"Transformer needs a TransformerConfig, got {type(config).__name__}")
        c = self.config = config
        rng = make_rng(c.seed)
        block = dict(d_model=c.d_model, num_heads=c.num_heads, d_ff=c.d_ff, dropout=c.dropout,
                     attn_dropout=c.attn_dropout, activation=c.activation, norm_first=c.norm_first,
                     rng=rng, dtype=c.dtype)
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, c.max_len, c.dropout,
                                        c.scale_embeddings, rng=rng, dtype=c.dtype)
        self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, c.max_len, c.dropout,
                                        c.scale_embeddings, rng=rng, dtype=c.dtype)
        self.encoder = Encoder(c.num_encoder_layers, **block)
        self.decoder = Decoder(c.num_decoder_layers, **block)
        if c.tie_embeddings:
            self.out_proj = TiedOutputProjection(self.tgt_embed.embed)
        else:
            self.out_proj = Linear(c.d_model, c.tgt_vocab_size, rng=rng, dtype=c.dtype)

    def encode(self, src_ids, src_lengths=None):
        """src_ids: (B, S) -> (memory (B, S, d_model), src_mask (B, 1, 1, S) bool, True on real source tokens).

        Padding comes from config.pad_id, or from src_lengths (B,) if given (then ids past a
        length are ignored whatever they are)."""
        c = self.config
        src_ids = _check_ids(src_ids, c.src_vocab_size, c.max_len, "src_ids")
        src_mask = _keep(src_ids, c.pad_id, src_lengths)[:, None, None, :]    # (B, 1, 1, S)
        x = self.src_embed.forward(src_ids)                                  # (B, S, d_model)
        memory = self.encoder.forward(x, src_mask)                           # (B, S, d_model)
        return memory, src_mask

    def decode(self, tgt_ids, memory, src_mask, tgt_lengths=None):
        """tgt_ids: (B, T) decoder inputs (starting with BOS); memory, src_mask from encode.
        Returns logits (B, T, V_tgt); position t depends on tgt_ids[:, :t+1] only."""
        c = self.config
        tgt_ids = _check_ids(tgt_ids, c.tgt_vocab_size, c.max_len, "tgt_ids")
        if memory.shape[0] != tgt_ids.shape[0]:
            raise ValueError(f"memory {memory.shape} and tgt_ids {tgt_ids.shape} must have the same batch size")
        T = tgt_ids.shape[1]
        keep = _keep(tgt_ids, c.pad_id, tgt_lengths)                         # (B, T)
        tgt_mask = causal_mask(T)[None, None] & keep[:, None, None, :]       # (B, 1, T, T)
        y = self.tgt_embed.forward(tgt_ids)                                  # (B, T, d_model)
        y = self.decoder.forward(y, memory, tgt_mask, src_mask)              # (B, T, d_model)
        return self.out_proj.forward(y)                                      # (B, T, V_tgt)

    def forward(self, src_ids, tgt_in_ids, src_lengths=None, tgt_lengths=None):
        """src_ids: (B, S); tgt_in_ids: (B, T) (target shifted right, BOS first) -> logits (B, T, V_tgt)."""
        memory, src_mask = self.encode(src_ids, src_lengths)                 # (B, S, d_model)
        return self.decode(tgt_in_ids, memory, src_mask, tgt_lengths)        # (B, T, V_tgt)

    def backward(self, dlogits):
        """dlogits: (B, T, V_tgt). Adds every parameter's gradient; returns None (ids have no gradient)."""
        dy = self.out_proj.backward(dlogits)                                 # (B, T, d_model)
        dy, dmemory = self.decoder.backward(dy)                              # (B, T, d_model), (B, S, d_model)
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
    seed: int = 0                       # seed of the initialization and dropout generator
    dtype: Any = np.float32             # parameter dtype (np.float64 for gradient checks)

    def __post_init__(self):
        _check_common(self)
        for name in ("vocab_size", "num_classes", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.pooling not in ("mean", "attention"):
            raise ValueError(f"pooling must be 'mean' or 'attention', got {self.pooling!r}")
        if self.pad_id is not None and not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} must lie in [0, vocab_size={self.vocab_size}), or be None")


class TransformerClassifier(Module):
    """Encoder-only classifier: embeddings + positions, Encoder, pooling over real tokens, Linear to class logits."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, ClassifierConfig):
            raise TypeError(f"TransformerClassifier needs a ClassifierConfig, got {type(config).__name__}")
        c = self.config = config
        rng = make_rng(c.seed)
        self.embed = TokenEmbedding(c.vocab_size, c.d_model, c.max_len, c.dropout, c.scale_embeddings,
                                    rng=rng, dtype=c.dtype)
        self.encoder = Encoder(c.num_layers, c.d_model, c.num_heads, c.d_ff, c.dropout, c.attn_dropout,
                               c.activation, c.norm_first, rng=rng, dtype=c.dtype)
        self.pool = MeanPooling() if c.pooling == "mean" else AttentionPooling(c.d_model, rng=rng, dtype=c.dtype)
        self.head = Linear(c.d_model, c.num_classes, rng=rng, dtype=c.dtype)

    def forward(self, ids, lengths=None):
        """ids: (B, T) -> logits (B, C). Pad positions are ids == pad_id, or those past lengths (B,) if given."""
        c = self.config
        ids = _check_ids(ids, c.vocab_size, c.max_len, "ids")
        keep = _keep(ids, c.pad_id, lengths)                                 # (B, T)
        x = self.embed.forward(ids)                                          # (B, T, d_model)
        h = self.encoder.forward(x, keep[:, None, None, :])                  # (B, T, d_model)
        pooled = self.pool.forward(h, keep)                                  # (B, d_model)
        return self.head.forward(pooled)                                     # (B, C)

    def backward(self, dlogits):
        """dlogits: (B, C). Adds every parameter's gradient; returns None."""
        dpooled = self.head.backward(dlogits)                                # (B, d_model)
        dh = self.pool.backward(dpooled)                                     # (B, T, d_model)
        dx = self.encoder.backward(dh)                                       # (B, T, d_model)
        self.embed.backward(dx)
        return None

    @property
    def pool_weights(self):
        """(B, T) weight of each token in the pooled vector from the last forward (0 on pads; rows sum to 1)."""
        return self.pool.weights

    def attention_weights(self):
        """List (one per layer) of self-attention weights (B, h, T, T) from the last forward."""
        return self.encoder.attention_weights()


# ----------------------------------------------------------------------------
# decoder-only language model (GPT)

@dataclass
class GPTConfig:
    """Sizes and options of the decoder-only language model (defaults: nanoGPT's CPU Shakespeare model)."""
    vocab_size: int                     # number of token ids (= number of logits)
    context_length: int = 64            # longest input (size of the learned position table)
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

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "num_layers", "d_ff"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_heads < 1 or self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads} "
                             "(each head gets d_model / num_heads dimensions); change one of them")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {self.activation!r}")
        if not np.issubdtype(np.dtype(self.dtype), np.floating):
            raise TypeError(f"dtype must be a floating type such as np.float32 or np.float64, got {self.dtype}")


class GPT(Module):
    """Decoder-only Transformer language model: token + learned position embeddings, causal blocks, LayerNorm, logits.

    ids (B, T) -> logits (B, T, V); the logits at position t are the model's scores for token
    t + 1 and depend on ids[:, :t+1] only (the causal mask). No encoder, no cross-attention: a
    decoder block without its middle sublayer is an encoder block with a causal mask, so the
    blocks are attnkit's Encoder stack (pre-LN by default, with its final LayerNorm).
    """

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        rng = make_rng(c.seed)
        self.tok_embed = Embedding(c.vocab_size, c.d_model, rng=rng, dtype=c.dtype)
        self.pos_embed = Embedding(c.context_length, c.d_model, rng=rng, dtype=c.dtype)
        self.drop = Dropout(c.dropout, rng=rng)
        self.blocks = Encoder(c.num_layers, c.d_model, c.num_heads, c.d_ff, c.dropout, c.dropout,
                              c.activation, c.norm_first, rng=rng, dtype=c.dtype)
        if c.tie_embeddings:
            self.head = TiedOutputProjection(self.tok_embed)
        else:
            self.head = Linear(c.d_model, c.vocab_size, rng=rng, dtype=c.dtype)

    def check_ids(self, ids, offset=0):
        """ids as a (B, T) integer array of known tokens that fits the context after `offset` positions."""
        c = self.config
        ids = _check_ids(ids, c.vocab_size, c.context_length, "ids")
        if offset + ids.shape[1] > c.context_length:
            raise ValueError(f"{ids.shape[1]} new positions after {offset} exceed context_length="
                             f"{c.context_length}: keep only the last {c.context_length} tokens")
        return ids

    def embed(self, ids, offset=0):
        """ids (B, T) at positions offset .. offset + T - 1 -> (B, T, d_model), before the blocks."""
        T = ids.shape[1]
        x = self.tok_embed.forward(ids)                                   # (B, T, d_model)
        x = x + self.pos_embed.forward(np.arange(offset, offset + T)[None, :])  # (B, T, d_model)
        return self.drop.forward(x)                                       # (B, T, d_model)

    def forward(self, ids):
        """ids: (B, T) token ids, T <= context_length -> logits (B, T, V)."""
        ids = self.check_ids(ids)
        T = ids.shape[1]
        x = self.embed(ids)                                               # (B, T, d_model)
        x = self.blocks.forward(x, causal_mask(T)[None, None])            # (B, T, d_model)
        return self.head.forward(x)                                       # (B, T, V)

    def backward(self, dlogits):
        """dlogits: (B, T, V). Adds every parameter's gradient; returns None (ids have no gradient)."""
        dx = self.head.backward(dlogits)                                  # (B, T, d_model)
        dx = self.blocks.backward(dx)                                     # (B, T, d_model)
        dx = self.drop.backward(dx)                                       # (B, T, d_model)
        # every sequence of the batch uses the same positions: their gradients add up
        self.pos_embed.backward(dx.sum(axis=0, keepdims=True))            # (1, T, d_model)
        self.tok_embed.backward(dx)
        return None

    def attention_weights(self):
        """List (one per block) of the causal self-attention weights (B, h, T, T) from the last forward."""
        return self.blocks.attention_weights()
