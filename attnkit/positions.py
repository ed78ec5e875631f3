"""Where a token is: rotary embeddings (RoPE), ALiBi biases and learned or sinusoidal tables.

Shapes: T (T_q, T_k) positions, d_head the size of one query/key vector (even for RoPE),
h heads, B batch, ``...`` any leading (batch, head) dimensions.

- **RoPE** (Su et al., RoFormer): rotate each query and key by an angle proportional to its
  position, so that the score of query m and key n depends on m - n only.
  Pairing convention: *interleaved* pairs, coordinates (2i, 2i+1) rotate together by the angle
  p * theta_i, theta_i = base^(-2i / d_head), i = 0 .. d_head/2 - 1: the block-diagonal matrix
  of the RoFormer paper, and the layout of the sinusoidal table of chapter 5 (sin in 2i, cos in
  2i+1). GPT-NeoX pairs coordinate i with i + d_head/2 ("rotate half") instead; the two are the
  same up to a fixed permutation of the columns of W_q and W_k, so they train equally well, but
  weights trained with one cannot be loaded into the other without permuting those columns.
  ``scale`` multiplies the positions before the rotation: position interpolation (Chen et al.
  2023) runs a model trained at length L on length L' > L with scale = L / L'.
- **ALiBi** (Press et al. 2022): no position vectors at all; each head adds
  -m_h * (distance from query to key) to its scores, with a fixed slope m_h per head.
- **Learned** positions: a table of vectors, one per position, trained with the model; a
  position past the table has no vector, and says so.
"""
import math

import numpy as np

from ._checks import check_int
from .functional import require_float
from .nn import Embedding, Module, sinusoidal_table

__all__ = ["rope_frequencies", "rope_angles", "apply_rope", "apply_rope_backward", "RotaryEmbedding",
           "alibi_slopes", "alibi_bias", "LearnedPositions", "SinusoidalPositions", "check_positions",
           "POSITION_METHODS", "TABLE_METHODS"]

POSITION_METHODS = ("learned", "none", "sinusoidal", "rope", "alibi")   # GPTConfig.pos
TABLE_METHODS = ("learned", "sinusoidal")    # absolute vectors from a table of a fixed number of rows


# ----------------------------------------------------------------------------
# checks

def check_positions(positions, name="positions", length=None):
    """positions as a 1-D int64 array of non-negative integers (of the given length)."""
    p = np.asarray(positions)
    if p.ndim != 1 or not (np.issubdtype(p.dtype, np.integer) or p.size == 0):
        raise ValueError(f"{name} must be a 1-D array of integer positions, one per row (T,), got shape "
                         f"{p.shape} and dtype {p.dtype}; pass np.arange(offset, offset + T)")
    if p.size and p.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {p.min()}; positions count from 0")
    if length is not None and p.shape[0] != length:
        raise ValueError(f"{name} has {p.shape[0]} entries but the input has T={length} rows; give one "
                         "position per row")
    return p.astype(np.int64, copy=False)


def _check_base_scale(base, scale):
    if not (isinstance(base, (int, float, np.floating, np.integer)) and math.isfinite(base) and base > 1):
        raise ValueError(f"base must be a number > 1 (10000.0 in RoFormer and Llama 2), got {base!r}")
    if not (isinstance(scale, (int, float, np.floating, np.integer)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number (1.0 for plain RoPE, train_len / eval_len for "
                         f"position interpolation), got {scale!r}")


# ----------------------------------------------------------------------------
# rotary position embeddings

def rope_frequencies(d_head, base=10000.0):
    """theta_i = base^(-2i / d_head) for i = 0 .. d_head/2 - 1, in radians per position: (d_head/2,)."""
    d_head = check_int(d_head, "d_head", 2)
    if d_head % 2:
        raise ValueError(f"RoPE rotates coordinates in pairs: d_head must be even, got {d_head}; "
                         "choose d_model / num_heads even")
    _check_base_scale(base, 1.0)
    return float(base) ** (-np.arange(0, d_head, 2) / d_head)          # (d_head/2,)


def rope_angles(positions, d_head, base=10000.0, scale=1.0):
    """cos and sin of the angles (p * scale) * theta_i, each (T, d_head/2), in float64."""
    _check_base_scale(base, scale)
    p = check_positions(positions)
    angle = (p[:, None] * float(scale)) * rope_frequencies(d_head, base)[None, :]  # (T, d_head/2)
    return np.cos(angle), np.sin(angle)                                 # (T, d_head/2) each


def _rotate(x, positions, base, scale, sign):
    x = require_float(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., T, d_head), got {x.shape}")
    T, d = x.shape[-2:]
    p = check_positions(positions, length=T)
    cos, sin = rope_angles(p, d, base, scale)                           # (T, d/2) each
    cos, sin = cos.astype(x.dtype), (sign * sin).astype(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]                                 # (..., T, d/2) each: the pairs
    out = np.empty_like(x)                                              # (..., T, d)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def apply_rope(x, positions, base=10000.0, scale=1.0):
    """Rotate each pair (x[2i], x[2i+1]) of row t by the angle positions[t] * scale * theta_i.

    x: (..., T, d_head) with d_head even; positions: (T,) non-negative integers (absolute
    positions: in a cached decoder, the offset is part of them). Returns (..., T, d_head) in
    x's dtype. The rotation keeps every row's norm, and for queries and keys rotated this way
    <apply_rope(q, [m]), apply_rope(k, [n])> depends on m - n only."""
    return _rotate(x, positions, base, scale, 1.0)


def apply_rope_backward(dout, positions, base=10000.0, scale=1.0):
    """Gradient of apply_rope: dout (..., T, d_head) -> dx, the same shape. A rotation's
    Jacobian is the rotation matrix R, and dx = R^T dout is the rotation by minus the angle."""
    return _rotate(dout, positions, base, scale, -1.0)


class RotaryEmbedding(Module):
    """Rotary position embeddings as the MultiHeadAttention.rotary hook: no parameters."""

    def __init__(self, d_head, base=10000.0, scale=1.0):
        super().__init__()
        rope_frequencies(d_head, base)                                  # checks d_head and base
        _check_base_scale(base, scale)
        self.d_head, self.base, self.scale = int(d_head), float(base), float(scale)

    def _check(self, x):
        if np.shape(x)[-1:] != (self.d_head,):
            raise ValueError(f"RotaryEmbedding was built for d_head={self.d_head}, got an input of shape "
                             f"{np.shape(x)}; build it with d_head = d_model / num_heads")

    def forward(self, x, positions):
        """x: (B, h, T, d_head), positions: (T,) -> x rotated, (B, h, T, d_head)."""
        self._check(x)
        return apply_rope(x, positions, self.base, self.scale)

    def backward(self, dx, positions):
        """dx: (B, h, T, d_head) -> the gradient before the rotation (the inverse rotation)."""
        self._check(dx)
        return apply_rope_backward(dx, positions, self.base, self.scale)

    def __repr__(self):
        return f"RotaryEmbedding(d_head={self.d_head}, base={self.base:g}, scale={self.scale:g})"


# ----------------------------------------------------------------------------
# ALiBi: linear biases on the scores

def alibi_slopes(h):
    """The h slopes m_1 > ... > m_h of ALiBi (Press et al. 2022), (h,) float64.

    For h a power of two: m_i = 2^(-8 i / h), i = 1 .. h (h = 8: 1/2, 1/4, ..., 1/256). Otherwise
    the paper's rule: the slopes of the largest power of two n < h, then every other slope of 2n
    (the odd-numbered ones, which fall between them) until there are h."""
    h = check_int(h, "h", 1, " (the number of heads)")

    def power_of_two(n):
        return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)                  # (n,)

    n = 2 ** int(math.floor(math.log2(h)))
    if n == h:
        return power_of_two(h)
    return np.concatenate([power_of_two(n), power_of_two(2 * n)[0::2][:h - n]])  # (h,)


def alibi_bias(h, q_positions, k_positions, dtype=np.float64):
    """ALiBi's additive score bias, -m_head * |q - k|: (h, T_q, T_k).

    bias[i, a, b] = -alibi_slopes(h)[i] * |q_positions[a] - k_positions[b]|. Under a causal mask
    only keys at or before the query count, where this is the paper's -m (q - k); for keys after
    the query (no mask) the absolute value keeps the penalty growing with distance."""
    slopes = alibi_slopes(h)                                            # (h,)
    q = check_positions(q_positions, "q_positions")
    k = check_positions(k_positions, "k_positions")
    dist = np.abs(q[:, None] - k[None, :])                              # (T_q, T_k)
    return (-slopes[:, None, None] * dist[None]).astype(dtype)          # (h, T_q, T_k)


# ----------------------------------------------------------------------------
# learned absolute positions

def _check_table(positions, rows, kind):
    p = np.asarray(positions)
    if p.size and np.issubdtype(p.dtype, np.integer) and p.max() >= rows:
        raise ValueError(f"position {int(p.max())} is past the {kind} table of {rows} positions "
                         f"(0 .. {rows - 1}): {kind} positions have no vector beyond the table; build the "
                         f"model with a table of at least {int(p.max()) + 1} rows (GPTConfig.position_table), "
                         "or use a relative method (rope, alibi)")


class LearnedPositions(Embedding):
    """A learned table of max_len position vectors (GPT's position embedding); W (max_len, d_model)."""

    def forward(self, positions):
        """positions: (T,) or (B, T) integers in [0, max_len) -> (..., T, d_model)."""
        _check_table(positions, self.vocab_size, "learned")
        return super().forward(positions)

    @property
    def max_len(self):
        return self.vocab_size


class SinusoidalPositions(Module):
    """The fixed sinusoidal table of chapter 5, divided by sqrt(d_model), looked up by position.

    Not a parameter (nothing to learn or save). The division keeps the 2017 paper's ratio of
    token to position vectors (the paper multiplies the embeddings by sqrt(d_model) instead),
    with GPT's token embeddings of norm about 1: each position vector has norm sqrt(1/2)."""

    def __init__(self, max_len, d_model, dtype=np.float32):
        super().__init__()
        self.max_len, self.d_model = check_int(max_len, "max_len", 1), check_int(d_model, "d_model", 1)
        self.table = (sinusoidal_table(max_len, d_model) / math.sqrt(d_model)).astype(dtype)  # (max_len, d)

    def forward(self, positions):
        """positions: (T,) or (B, T) integers in [0, max_len) -> (..., T, d_model), not learned."""
        p = np.asarray(positions)
        if not np.issubdtype(p.dtype, np.integer) or (p.size and p.min() < 0):
            raise ValueError(f"positions must be non-negative integers, got {p.dtype} {p.ravel()[:5]}")
        _check_table(p, self.max_len, "sinusoidal")
        return self.table[p]                                            # (..., T, d_model)

    def backward(self, dout):
        """A fixed table: no gradient to keep."""
        return None


# ----------------------------------------------------------------------------
# the pieces GPT(config) uses for config.pos (attnkit.models.GPT calls these)

def table_rows(config):
    """Rows of the learned or sinusoidal table (config.position_table, default context_length);
    None for the methods without a table."""
    if config.pos not in TABLE_METHODS:
        return None
    return config.context_length if config.position_table is None else config.position_table


def check_position_config(config):
    """The position fields of a GPTConfig: ValueError naming the field and the fix."""
    if config.pos not in POSITION_METHODS:
        raise ValueError(f"pos must be one of {', '.join(map(repr, POSITION_METHODS))}, got {config.pos!r}")
    if config.pos == "rope":
        rope_frequencies(config.d_model // config.num_heads, config.rope_base)
        _check_base_scale(config.rope_base, config.rope_scale)
    if config.position_table is not None:
        if config.pos not in TABLE_METHODS:
            raise ValueError(f"position_table sets the rows of a learned or sinusoidal table; pos={config.pos!r} "
                             "has none: leave position_table=None")
        check_int(config.position_table, "position_table", config.context_length,
                  f" (at least context_length={config.context_length}, the training windows)")


def make_position_modules(model, rng):
    """Build what config.pos needs on a GPT under construction: the table (model.pos_embed) for
    learned and sinusoidal; a RotaryEmbedding on every block's attention for rope (call after the
    blocks exist)."""
    c = model.config
    if c.pos == "learned":
        model.pos_embed = LearnedPositions(table_rows(c), c.d_model, rng=rng, dtype=c.dtype)
    elif c.pos == "sinusoidal":
        model.pos_embed = SinusoidalPositions(table_rows(c), c.d_model, dtype=c.dtype)


def attach_rotary(model):
    """pos="rope": every block's self-attention rotates its queries and keys (one shared object)."""
    c = model.config
    if c.pos != "rope":
        return
    rope = RotaryEmbedding(c.d_model // c.num_heads, c.rope_base, c.rope_scale)
    for layer in model.blocks.layers:
        layer.self_attn.rotary = rope


def score_bias(config, q_positions, k_positions):
    """pos="alibi": the (h, T_q, T_k) ALiBi bias in the model's dtype, shared by every layer; else None."""
    if config.pos != "alibi":
        return None
    return alibi_bias(config.num_heads, q_positions, k_positions, dtype=config.dtype)  # (h, T_q, T_k)