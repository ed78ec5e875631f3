"""Layers with hand-written backward passes: the building blocks of a Transformer.

Shapes (see attnkit.functional for the names): B batch, T sequence length, d_model model width,
h heads, d_k = d_model / h head size, d_ff feed-forward width, V vocabulary size.

Every layer is a Module:
  - ``forward(...)`` computes the output and keeps in ``self.cache`` what ``backward`` needs
    (one cache: call backward after the forward it belongs to);
  - ``backward(dout)`` returns the gradient with respect to the input(s) and *adds* (+=) the
    parameter gradients into ``self.grads``, so a weight used twice gets both contributions;
    ``zero_grad()`` clears them;
  - ``params`` and ``grads`` are dicts with the same keys; ``parameters()`` lists
    (param, grad) pairs of this module and its children, which optimizers update in place;
  - ``train()`` / ``eval()`` switch dropout on and off.
Weights multiply from the right, ``x @ W`` with W of shape (d_in, d_out). Layers are created
in float32 by default (pass dtype=np.float64 for gradient checks); outputs keep the dtype of
the parameters and inputs.

Initialization: every weight matrix (Linear, the four projections of MultiHeadAttention, the two
layers of FeedForward) is Xavier/Glorot uniform, U(-a, a) with a = sqrt(6 / (d_in + d_out));
biases start at 0; embeddings are N(0, 1/d_model); LayerNorm starts as gamma = 1, beta = 0.
Randomness, two streams:
  - initialization draws from ``rng`` (a np.random.Generator, shared by the layers of a model so
    they differ) or ``seed``; with neither, from DEFAULT_SEED = 0. The default is deterministic
    on purpose (a chapter's cell gives the same numbers on every run), and it means that two
    layers built without rng or seed are identical: ``Linear(4, 4)`` twice gives the same W.
    Pass one Generator to several layers to make them differ.
  - dropout (Dropout, attention dropout) draws from ``dropout_rng``. Unless one is given, it is
    the initialization Generator, continued after the initial weights (the behaviour the stored
    chapter outputs were made with); ``seed_dropout(s)`` gives every dropout of a module tree a
    fresh ``make_rng(s)``, so the next forward replays the same masks (gradient checks).
Every Generator is made by attnkit.seeding.make_rng, so ATTNKIT_SEED_SHIFT shifts them all.
"""
import math

import numpy as np

from .functional import (attention_backward, attention_forward, check_bias, check_mask,
                         linear_attention_backward, linear_attention_forward, require_float)
from ._checks import check_int
from .seeding import make_rng

__all__ = ["Module", "ModuleList", "Linear", "Embedding", "SinusoidalPositionalEncoding",
           "LayerNorm", "FeedForward", "Dropout", "MultiHeadAttention", "KVCache", "split_heads",
           "merge_heads", "xavier_uniform",
           "DEFAULT_SEED"]


ATTENTION_KERNELS = ("softmax", "linear")   # MultiHeadAttention(kernel=...)
DEFAULT_SEED = 0   # the seed of a module built with neither rng nor seed (see the module docstring)


def _rng(rng=None, seed=None):
    """A numpy Generator from an existing one, a seed, or (neither given) DEFAULT_SEED."""
    if rng is not None:
        return make_rng(rng)
    return make_rng(DEFAULT_SEED if seed is None else seed)


def _dropout_rng(dropout_rng, init_rng):
    """The dropout stream: dropout_rng (a Generator or a seed) if given, else the init Generator."""
    return init_rng if dropout_rng is None else make_rng(dropout_rng)


def xavier_uniform(rng, d_in, d_out, dtype):
    """Glorot/Xavier uniform init, U(-a, a) with a = sqrt(6 / (d_in + d_out)).

    It keeps the variance of activations and gradients roughly constant across layers.
    Unscaled N(0, 1) weights, as in many copied snippets, make q.k scores of size ~d_model,
    which saturate the softmax into one-hot weights with vanishing gradients.
    """
    a = np.sqrt(6.0 / (d_in + d_out))
    return rng.uniform(-a, a, size=(d_in, d_out)).astype(dtype)


class Module:
    """Base class: parameters, their gradients, child modules and the train/eval switch."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = True
        self.cache = None

    def add_param(self, name, value):
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def children(self):
        """(name, module) for every direct child module (attributes and ModuleList items)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix=""):
        """(dotted name, param, grad) for this module and its children, each array once."""
        seen = set()
        for name, p in self.params.items():
            if id(p) not in seen:
                seen.add(id(p))
                yield prefix + name, p, self.grads[name]
        for cname, child in self.children():
            for name, p, g in child.named_parameters(f"{prefix}{cname}."):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield name, p, g

    def parameters(self):
        """List of (param, grad) pairs: optimizers update param in place from grad."""
        return [(p, g) for _, p, g in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p, _ in self.parameters())

    def zero_grad(self):
        for _, g in self.parameters():
            g.fill(0)

    def train(self, mode=True):
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self):
        """{dotted name: copy of the parameter}."""
        return {name: p.copy() for name, p, _ in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters in place; a missing, extra or mis-shaped entry raises
        ValueError."""
        own = {name: p for name, p, _ in self.named_parameters()}
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"state does not match the model: missing {missing}, unexpected {extra}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(
                    f"parameter '{name}' has shape {p.shape} in the model but {value.shape} in the state: "
                    "was it saved from a model with another configuration?")
            p[...] = value

    def modules(self):
        """This module and every module below it (a module reached twice is listed twice)."""
        yield self
        for _, child in self.children():
            yield from child.modules()

    def seed_dropout(self, seed):
        """Give every dropout stream in this module tree a fresh make_rng(seed); returns self.

        Calling it before each forward replays the same masks (finite differences with dropout
        on, comparing two runs). Initial weights are not touched."""
        for m in self.modules():
            if hasattr(m, "dropout_rng"):
                m.dropout_rng = make_rng(seed)
        return self

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)


class ModuleList(Module):
    """An ordered list of modules whose parameters are found by their parent."""

    def __init__(self, modules):
        super().__init__()
        self.items = list(modules)

    def children(self):
        for i, m in enumerate(self.items):
            yield str(i), m

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


class Linear(Module):
    """Affine map y = x @ W + b on the last axis; W (d_in, d_out) Xavier uniform, b (d_out,) zeros."""

    def __init__(self, d_in, d_out, bias=True, rng=None, seed=None, dtype=np.float32, weight=None):
        """weight: an initial W (d_in, d_out) to use instead of drawing one (no random draw)."""
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        if weight is None:
            weight = xavier_uniform(_rng(rng, seed), d_in, d_out, dtype)
        elif np.shape(weight) != (d_in, d_out):
            raise ValueError(f"weight must have shape (d_in, d_out) = {(d_in, d_out)}, got "
                             f"{np.shape(weight)}")
        self.add_param("W", np.asarray(weight, dtype=dtype))               # (d_in, d_out)
        if bias:
            self.add_param("b", np.zeros(d_out, dtype=dtype))           # (d_out,)

    @classmethod
    def columns(cls, parent, start, stop):
        """A Linear computing columns start:stop of parent's output: its W, b and their gradients
        are views into parent's, so both update the same numbers (fused projections)."""
        lin = cls.__new__(cls)
        Module.__init__(lin)
        lin.d_in, lin.d_out = parent.d_in, stop - start
        for name in parent.params:
            cols = (slice(None), slice(start, stop)) if name == "W" else slice(start, stop)
            lin.params[name], lin.grads[name] = parent.params[name][cols], parent.grads[name][cols]
        return lin

    def forward(self, x):
        """x: (..., d_in) -> (..., d_out)."""
        x = require_float(x, "x")
        if x.shape[-1] != self.d_in:
            raise ValueError(f"Linear expects inputs with last dimension d_in={self.d_in}, got shape "
                             f"{x.shape}")
        self.cache = x
        # one 2-D matmul: numpy runs (B, T, d_in) @ W as B separate small products, ~2x slower
        out = x.reshape(-1, self.d_in) @ self.params["W"]              # (N, d_out)
        if "b" in self.params:
            out += self.params["b"]
        return out.reshape(*x.shape[:-1], self.d_out)                   # (..., d_out)

    def backward(self, dout):
        """dout: (..., d_out) -> dx (..., d_in)."""
        x = self.cache
        x2, d2 = x.reshape(-1, self.d_in), dout.reshape(-1, self.d_out)  # (N, d_in), (N, d_out)
        self.grads["W"] += x2.T @ d2                                      # (d_in, d_out)
        if "b" in self.params:
            self.grads["b"] += d2.sum(axis=0)                             # (d_out,)
        return (d2 @ self.params["W"].T).reshape(x.shape)                 # (..., d_in)


class Embedding(Module):
    """Lookup table: integer token ids -> d_model vectors, W of shape (V, d_model), init N(0, 1/d_model)."""

    def __init__(self, vocab_size, d_model, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.vocab_size, self.d_model = vocab_size, d_model
        self.add_param("W", (rng.standard_normal((vocab_size, d_model)) / np.sqrt(d_model)).astype(dtype))

    def forward(self, ids):
        """ids: (B, T) integers in [0, V) -> (B, T, d_model)."""
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Embedding needs integer token ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)]
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}) (the vocabulary size); found "
                f"{bad[:5].tolist()}")
        self.cache = ids
        return self.params["W"][ids]                                      # (B, T, d_model)

    def backward(self, dout):
        """Accumulate dW; token ids have no gradient, so this returns None."""
        ids = self.cache
        np.add.at(self.grads["W"], ids.reshape(-1), dout.reshape(-1, self.d_model))
        return None


def sinusoidal_table(max_len, d_model, dtype=np.float64):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), PE[pos, 2i+1] = cos(...); shape (max_len, d_model)."""
    pos = np.arange(max_len)[:, None]                                     # (max_len, 1)
    i2 = np.arange(0, d_model, 2)[None, :]                                # (1, ceil(d_model/2))
    angle = pos / np.power(10000.0, i2 / d_model)                         # (max_len, ceil(d_model/2))
    pe = np.zeros((max_len, d_model))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe.astype(dtype)


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal position table of "Attention Is All You Need" to its input."""

    def __init__(self, max_len, d_model, dtype=np.float32):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.table = sinusoidal_table(max_len, d_model, dtype)            # (max_len, d_model), not learned

    def forward(self, x, offset=0):
        """x: (B, T, d_model) -> x + PE[offset : offset + T]. `offset` serves incremental decoding."""
        x = require_float(x, "x")
        if x.ndim < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"expected x of shape (..., T, d_model={self.d_model}), got shape {x.shape}")
        if int(offset) != offset or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        T = x.shape[-2]
        if offset + T > self.max_len:
            raise ValueError(f"sequence of length {T} at offset {offset} exceeds max_len={self.max_len}; "
                             "build the encoding with a larger max_len")
        return x + self.table[offset:offset + T].astype(x.dtype, copy=False)

    def backward(self, dout):
        """dout: (B, T, d_model) -> dx, the same: adding a constant passes the gradient through."""
        return dout


class LayerNorm(Module):
    """Normalizes each vector over its last axis to zero mean and unit variance, then scales by gamma (init
    1) and shifts by beta (init 0)."""

    def __init__(self, d_model, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.add_param("gamma", np.ones(d_model, dtype=dtype))            # (d_model,)
        self.add_param("beta", np.zeros(d_model, dtype=dtype))            # (d_model,)

    def forward(self, x):
        """x: (..., d_model) -> (..., d_model)."""
        x = require_float(x, "x")
        if x.shape[-1] != self.d_model:
            raise ValueError(f"LayerNorm expects last dimension d_model={self.d_model}, got shape {x.shape}")
        mean = x.mean(axis=-1, keepdims=True)                              # (..., 1)
        xc = x - mean
        var = np.mean(xc * xc, axis=-1, keepdims=True)                     # (..., 1)
        rstd = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)            # (..., 1)
        xhat = xc * rstd                                                  # (..., d_model)
        self.cache = (xhat, rstd)
        return xhat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout):
        """dout: (..., d_model) -> dx (..., d_model)."""
        xhat, rstd = self.cache
        d = self.d_model
        self.grads["gamma"] += (dout * xhat).reshape(-1, d).sum(axis=0)
        self.grads["beta"] += dout.reshape(-1, d).sum(axis=0)
        dxhat = dout * self.params["gamma"]                               # (..., d_model)
        # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
        return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                       - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


# a Python float, not np.sqrt(...): a NumPy float64 scalar would turn float32 arrays into float64
GELU_C = math.sqrt(2.0 / math.pi)


def _gelu(x):
    """GELU, tanh approximation (as in BERT and GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    # x * x * x, not x ** 3: numpy's float32 power is ~1000x slower (96 against 0.08 ms on (768, 512))
    t = np.tanh(GELU_C * (x + 0.044715 * (x * x * x)))                  # (..., d_ff)
    return 0.5 * x * (1.0 + t), t


class FeedForward(Module):
    """Position-wise feed-forward network: Linear(d_model, d_ff) -> ReLU or GELU (tanh form) ->
    Linear(d_ff, d_model)."""

    def __init__(self, d_model, d_ff, activation="relu", rng=None, seed=None, dtype=np.float32):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        rng = _rng(rng, seed)
        self.activation = activation
        self.fc1 = Linear(d_model, d_ff, rng=rng, dtype=dtype)
        self.fc2 = Linear(d_ff, d_model, rng=rng, dtype=dtype)

    def forward(self, x):
        """x: (..., d_model) -> (..., d_model); every position is transformed independently."""
        a = self.fc1.forward(x)                                           # (..., d_ff)
        if self.activation == "relu":
            hdn = np.maximum(a, 0)
            self.cache = a
        else:
            hdn, t = _gelu(a)
            self.cache = (a, t)
        return self.fc2.forward(hdn)                                      # (..., d_model)

    def backward(self, dout):
        """dout: (..., d_model) -> dx (..., d_model)."""
        dh = self.fc2.backward(dout)                                      # (..., d_ff)
        if self.activation == "relu":
            da = dh * (self.cache > 0)
        else:
            a, t = self.cache
            dt = (1.0 - t * t) * GELU_C * (1.0 + 3 * 0.044715 * a * a)      # (..., d_ff) d tanh / da
            da = dh * (0.5 * (1.0 + t) + 0.5 * a * dt)
        return self.fc1.backward(da)                                      # (..., d_model)


class Dropout(Module):
    """Inverted dropout: in training, zero each entry with probability p and scale the rest by 1/(1-p)."""

    def __init__(self, p, rng=None, seed=None):
        """rng or seed: the dropout stream (default DEFAULT_SEED); see the module docstring."""
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.dropout_rng = _rng(rng, seed)

    def forward(self, x):
        """x: any shape -> the same shape; the identity in eval mode."""
        x = require_float(x, "x")
        if not self.training or self.p == 0:
            self.cache = None
            return x
        keep = self.dropout_rng.random(x.shape, dtype=np.float32) >= self.p
        scale = x.dtype.type(1.0 / (1.0 - self.p))
        self.cache = keep * scale                                         # same shape as x
        return x * self.cache

    def backward(self, dout):
        """dout: the shape of x -> dx: the gradient flows through the kept entries, scaled alike."""
        return dout if self.cache is None else dout * self.cache


def split_heads(x, num_heads):
    """(B, T, d_model) -> (B, h, T, d_k); head i gets columns i d_k .. (i+1) d_k - 1 (a view)."""
    B, T, d = x.shape
    return x.reshape(B, T, num_heads, d // num_heads).transpose(0, 2, 1, 3)  # (B, h, T, d_k)


def merge_heads(x):
    """(B, h, T, d_k) -> (B, T, h d_k): the heads side by side, the inverse of split_heads."""
    B, h, T, d_k = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, h * d_k)               # (B, T, d_model)


class MultiHeadAttention(Module):
    """Multi-head attention for self-attention (x_kv=None) and cross-attention.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_o + b_o, head_i = Attention(Q W_q^i, K W_k^i, V W_v^i),
    where W_q^i is the i-th block of d_k columns of W_q. W_q, W_k, W_v, W_o are (d_model, d_model)
    (W_k, W_v: (d_model, h_kv d_k) with grouped queries, below), Xavier uniform; the biases start at 0. After each forward, ``attn_weights`` holds
    the weights used, (B, h, T_q, T_k) (after attention dropout in training mode).
    The steps of forward are public (project, split_heads, merge_heads, project_qkv,
    keys_values) and attend_cached reuses keys and values computed earlier; forward(cache=...)
    keeps them in a KVCache (decoding).

    Grouped-query attention (Ainslie et al. 2023): num_kv_heads = h_kv < h heads of keys and
    values, each shared by a group of g = h / h_kv query heads (query head i reads key/value
    head i // g); W_k and W_v are then (d_model, h_kv d_k), and a cache holds h_kv heads.
    num_kv_heads = 1 is multi-query attention (Shazeer 2019); None or h is the layer above,
    parameter for parameter. The g query heads of a group are stacked as g T_q query rows of one
    attention over their shared keys (no copy of the keys, and their gradients add up there).

    kernel="linear": causal linear attention (Katharopoulos et al. 2020, feature map elu + 1)
    instead of the softmax, self-attention only, causal by construction (pass no mask); with
    a LinearStateCache, every decoded token costs the same (attnkit.kvcache).

    Hooks for the chapters on positions and on what heads do:
      rotary: None, or an object with forward(x, positions) and backward(dx, positions) on
         (B, h, T, d_k) arrays (rotary position embeddings), applied in self-attention to the
         queries and keys after the projection, before the cache (the cache keeps rotated keys);
      head_gate: (h,) multipliers on each head's output, ones by default (not a parameter, not
         in checkpoints; ``head_gate[i] = 0`` removes head i); every backward sets
         head_gate_grad (h,), dL/dgate for that batch (head importance, Michel et al. 2019).
    """

    def __init__(self, d_model, num_heads, dropout=0.0, bias=True, rng=None, seed=None, dtype=np.float32,
                 dropout_rng=None, num_kv_heads=None, kernel="softmax"):
        """rng or seed: initialization; dropout_rng: attention dropout (default: rng, continued);
        num_kv_heads: key/value heads (None: num_heads); kernel: "softmax" or "linear"."""
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads} "
                             "(each head gets d_model / num_heads dimensions)")
        h_kv = num_heads if num_kv_heads is None else num_kv_heads
        if isinstance(h_kv, bool) or int(h_kv) != h_kv or h_kv < 1 or num_heads % h_kv != 0:
            raise ValueError(f"num_kv_heads={num_kv_heads!r} must be a positive divisor of num_heads="
                             f"{num_heads} (each key/value head serves num_heads / num_kv_heads query heads)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"attention dropout must be in [0, 1), got {dropout}")
        if kernel not in ATTENTION_KERNELS:
            raise ValueError(f"kernel must be one of {ATTENTION_KERNELS}, got {kernel!r}")
        if kernel == "linear" and dropout > 0:
            raise ValueError("linear attention has no attention weights to drop: use dropout=0 "
                             "(residual dropout lives in the blocks)")
        rng = _rng(rng, seed)
        d = self.d_model = d_model
        self.h, self.d_k = num_heads, d_model // num_heads
        self.h_kv = int(h_kv)
        self.group = num_heads // self.h_kv                               # g query heads per key/value head
        d_kv = self.d_kv = self.h_kv * self.d_k                            # width of the keys and values
        self.dropout, self.bias, self.kernel = dropout, bias, kernel
        self.dropout_rng = _dropout_rng(dropout_rng, rng)
        # W_q, W_k, W_v side by side in one (d, d + 2 d_kv) Linear: self-attention projects its one
        # input with one matmul; cross-attention uses column views of it (q from x_q, k, v from x_kv)
        w_qkv = np.concatenate([xavier_uniform(rng, d, width, dtype) for width in (d, d_kv, d_kv)],
                               axis=1)                                     # (d, d + 2 d_kv)
        self.in_proj = Linear(d, d + 2 * d_kv, bias=bias, dtype=dtype, weight=w_qkv)
        bounds = (0, d, d + d_kv, d + 2 * d_kv)
        self.q_proj, self.k_proj, self.v_proj = (Linear.columns(self.in_proj, bounds[i], bounds[i + 1])
                                                 for i in range(3))
        self.out_proj = Linear(d, d, bias=bias, rng=rng, dtype=dtype)
        # the parameters under the names checkpoints and chapters use: W_q, b_q, ..., W_o, b_o
        for name, lin in zip("qkvo", self._projections()):
            for p in lin.params:
                self.params[f"{p}_{name}"], self.grads[f"{p}_{name}"] = lin.params[p], lin.grads[p]
        self.attn_weights = None
        self.rotary = None
        self.positions = None
        self.head_gate = np.ones(num_heads, dtype=dtype)                  # (h,)
        self.head_gate_grad = np.zeros(num_heads, dtype=dtype)            # (h,) set by backward

    def _projections(self):
        return self.q_proj, self.k_proj, self.v_proj, self.out_proj

    def children(self):
        # the Linear layers' parameters are this module's own (W_q, ...): list them once, by those names
        return iter(())

    def project(self, x, name):
        """x (..., d_model) @ W_name + b_name, for name "q", "k", "v" or "o" -> (..., d_model)
        ((..., h_kv d_k) for "k" and "v")."""
        return self._projections()["qkvo".index(name)].forward(x)       # (..., d_model)

    def split_heads(self, x):
        """(B, T, n d_k) -> (B, n, T, d_k), n = h for queries, h_kv for keys and values; head i
        gets columns i d_k .. (i+1) d_k - 1 (a view)."""
        return split_heads(x, x.shape[-1] // self.d_k)                   # (B, n, T, d_k)

    def merge_heads(self, x):
        """(B, n, T, d_k) -> (B, T, n d_k): the heads side by side, the inverse of split_heads."""
        return merge_heads(x)                                            # (B, T, n d_k)

    def project_qkv(self, x):
        """Queries, keys and values of one input (self-attention) in one matmul:
        x (B, T, d_model) -> q (B, h, T, d_k), k and v (B, h_kv, T, d_k)."""
        qkv = self.in_proj.forward(x)                                     # (B, T, d + 2 d_kv)
        parts = np.split(qkv, [self.d_model, self.d_model + self.d_kv], axis=-1)
        return tuple(self.split_heads(y) for y in parts)                  # (B, h | h_kv, T, d_k)

    def keys_values(self, x_kv):
        """Keys and values of x_kv (B, T_k, d_model) -> k, v, each (B, h_kv, T_k, d_k): what a
        key/value cache keeps (see attnkit.decoding)."""
        return self.split_heads(self.project(x_kv, "k")), self.split_heads(self.project(x_kv, "v"))

    def _check_input(self, x, name):
        x = require_float(x, name)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"{name} must have shape (B, T, d_model={self.d_model}), got {x.shape}")
        return x

    # --- grouped queries: the g query heads sharing one key/value head become g T_q query rows

    def group_queries(self, q):
        """(B, h, T_q, d_k) -> (B, h_kv, g T_q, d_k): row r of group j is query head j g + r // T_q
        at position r % T_q. A reshape (a copy of q, which is a transposed view); q when g = 1."""
        B, h, T_q, d_k = q.shape
        return q.reshape(B, self.h_kv, self.group * T_q, d_k)            # (B, h_kv, g T_q, d_k)

    def ungroup(self, x, T_q):
        """(B, h_kv, g T_q, n) -> (B, h, T_q, n), the inverse of group_queries (outputs, weights)."""
        return x.reshape(x.shape[0], self.h, T_q, x.shape[-1])            # (B, h, T_q, n)

    def _group_scores_arg(self, a, B, T_q, T_k, check):
        """A mask or bias broadcastable to (B, h, T_q, T_k) -> broadcastable to (B, h_kv, g T_q, T_k)."""
        a = check(a, (B, self.h, T_q, T_k))
        a = a.reshape((1,) * (4 - a.ndim) + a.shape)                      # (B | 1, h | 1, T_q | 1, T_k | 1)
        if a.shape[1] == self.h:                                          # per head: regroup like the queries
            a = np.broadcast_to(a, (a.shape[0], self.h, T_q, a.shape[3]))
            return a.reshape(a.shape[0], self.h_kv, self.group * T_q, a.shape[3])
        if a.shape[2] == 1:                                               # the same for every query row
            return a
        return np.tile(a, (1, 1, self.group, 1))                          # (B | 1, 1, g T_q, T_k | 1)

    def _attend(self, q, k, v, mask, bias, dropout_p=0.0, rng=None):
        """Softmax attention of q (B, h, T_q, d_k) over k, v (B, h_kv, T_k, d_k), grouped when
        h_kv < h. Returns (heads (B, h, T_q, d_k), weights (B, h, T_q, T_k), cache)."""
        if self.group == 1:
            out, cache = attention_forward(q, k, v, mask=mask, dropout_p=dropout_p, rng=rng, bias=bias)
            return out, cache["weights"], cache                            # (B, h, T_q, d_k), (B, h, T_q, T_k)
        B, _, T_q, _ = q.shape
        T_k = k.shape[2]
        if mask is not None:
            mask = self._group_scores_arg(mask, B, T_q, T_k, check_mask)
        if bias is not None:
            bias = self._group_scores_arg(bias, B, T_q, T_k, lambda b, s: check_bias(b, s, q.dtype))
        out, cache = attention_forward(self.group_queries(q), k, v, mask=mask, dropout_p=dropout_p,
                                       rng=rng, bias=bias)                # (B, h_kv, g T_q, d_k)
        return self.ungroup(out, T_q), self.ungroup(cache["weights"], T_q), cache

    def _attend_backward(self, dheads, cache):
        """dheads (B, h, T_q, d_k) -> dq (B, h, T_q, d_k), dk, dv (B, h_kv, T_k, d_k)."""
        if self.group == 1:
            return attention_backward(dheads, cache)
        T_q = dheads.shape[2]
        dq, dk, dv = attention_backward(self.group_queries(dheads), cache)  # the group's rows sum into dk, dv
        return self.ungroup(dq, T_q), dk, dv

    # --- linear attention: causal, keys and values repeated to the h query heads

    def _repeat_kv(self, x):
        """(B, h_kv, T, d_k) -> (B, h, T, d_k): key/value head j serves query heads j g .. j g + g - 1."""
        return x if self.group == 1 else np.repeat(x, self.group, axis=1)

    def _sum_groups(self, dx):
        """(B, h, T, d_k) -> (B, h_kv, T, d_k): the backward of _repeat_kv adds a group's gradients."""
        if self.group == 1:
            return dx
        B, _, T, d_k = dx.shape
        return dx.reshape(B, self.h_kv, self.group, T, d_k).sum(axis=2)   # (B, h_kv, T, d_k)

    def _linear_args(self, self_attn, mask, bias):
        if not self_attn:
            raise ValueError("kernel='linear' is causal self-attention: it has no cross-attention form here")
        if mask is not None or bias is not None:
            raise ValueError("kernel='linear' is causal by construction and takes no mask or bias: pass "
                             "mask=None (a softmax layer needs the causal mask, this one does not)")

    def forward(self, x_q, x_kv=None, mask=None, cache=None, positions=None, bias=None):
        """x_q: (B, T_q, d_model); x_kv: (B, T_k, d_model) or None for self-attention;
        mask: boolean, broadcastable to (B, h, T_q, T_k), True = may attend. Returns (B, T_q, d_model).

        positions: (T_q,) ints, the absolute positions of the query rows (and in self-attention
        of the new keys), read by ``rotary``; default arange(offset, offset + T_q) with offset
        cache.position (0 without a cache). bias: float, broadcastable to (B, h, T_q, T_k),
        added to the scaled scores (ALiBi); it gets no gradient.

        cache: a KVCache while decoding (inference only: no dropout, no backward). Self-attention
        appends the keys and values of the T_q new positions and attends over every cached one
        (mask then covers (T_q, t + T_q): the caller passes the causal part when T_q > 1);
        cross-attention projects x_kv (the memory) on the first call and reuses it after.
        A RollingKVCache keeps a sliding window (and sinks) and makes its own mask; kernel
        "linear" takes a LinearStateCache instead (both in attnkit.kvcache).
        """
        x_q = self._check_input(x_q, "x_q")
        self_attn = x_kv is None
        x_kv = x_q if self_attn else self._check_input(x_kv, "x_kv")
        if x_kv.shape[0] != x_q.shape[0]:
            raise ValueError(f"x_q and x_kv must have the same batch size, got {x_q.shape} and {x_kv.shape}")
        if self.kernel == "linear":
            self._linear_args(self_attn, mask, bias)
        positions = self._positions(positions, x_q.shape[1], cache)        # (T_q,)
        if cache is not None:
            if self.kernel == "linear":
                return self._forward_linear_cached(x_q, cache, positions)
            return self._forward_cached(x_q, None if self_attn else x_kv, mask, cache, positions, bias)
        if self_attn:
            q, k, v = self.project_qkv(x_q)                                # (B, h, T, d_k), 2 x (B, h_kv, T, d_k)
            q, k = self._rotate(q, positions), self._rotate(k, positions)  # rotated alike
        else:
            q = self.split_heads(self.project(x_q, "q"))                   # (B, h, T_q, d_k)
            k, v = self.keys_values(x_kv)                                  # (B, h_kv, T_k, d_k) each
        if self.kernel == "linear":
            heads, attn_cache = linear_attention_forward(
                q, self._repeat_kv(k), self._repeat_kv(v), causal=True)   # (B, h, T, d_k)
            self.attn_weights = None                                       # linear attention forms none
        else:
            p = self.dropout if self.training else 0.0
            heads, self.attn_weights, attn_cache = self._attend(
                q, k, v, mask, bias, dropout_p=p, rng=self.dropout_rng)    # (B, h, T_q, d_k), (B, h, T_q, T_k)
        concat = self.merge_heads(self._gate(heads))                       # (B, T_q, d_model)
        out = self.out_proj.forward(concat)                                # (B, T_q, d_model)
        # the Linear layers keep x_q, x_kv and concat for their backward; named here as well, so
        # that this layer's cache shows all it holds (the backpropagation chapter counts it)
        self.cache = (x_q, x_kv, self_attn, concat, attn_cache)          # attn_cache["out"]: the heads
        self.positions = positions                                         # (T_q,) for the rotary backward
        return out

    def _positions(self, positions, T_q, cache):
        """The absolute positions (T_q,) of the query rows: given, or counted from the cache."""
        if positions is None:
            offset = 0 if cache is None or getattr(cache, "fixed", False) else cache.position
            return np.arange(offset, offset + T_q)                         # (T_q,)
        positions = np.asarray(positions)
        if positions.shape != (T_q,) or not np.issubdtype(positions.dtype, np.integer):
            raise ValueError(f"positions must be {T_q} integers, one per query row, got "
                             f"{positions.dtype} array of shape {positions.shape}")
        return positions

    def _rotate(self, x, positions, backward=False):
        """The rotary hook on (B, n, T, d_k) queries or keys (or their gradients); identity without one."""
        if self.rotary is None:
            return x
        return self.rotary.backward(x, positions) if backward else self.rotary.forward(x, positions)

    def _gate(self, heads):
        """Each head's output times its gate: (B, h, T_q, d_k) -> (B, h, T_q, d_k)."""
        if np.all(self.head_gate == 1):
            return heads                                                   # the default: no copy
        return heads * self.head_gate.astype(heads.dtype)[:, None, None]   # (B, h, T_q, d_k)

    def _forward_cached(self, x_q, memory, mask, cache, positions=None, bias=None):
        if not isinstance(cache, KVCache):
            raise TypeError(f"cache must be an attnkit.nn.KVCache, got {type(cache).__name__}")
        if memory is None:
            k_new, v_new = self.keys_values(x_q)                           # (B, h_kv, T_q, d_k) each
            k, v = cache.append(self._rotate(k_new, positions), v_new)     # (B, h_kv, t + T_q, d_k) each
            mask = cache.visible(mask)                                     # a rolling cache's own mask
        else:
            if cache.k is None:  # the memory is the same at every step
                cache.set_fixed(*self.keys_values(memory))                 # (B, h_kv, S, d_k) each
            k, v = cache.k, cache.v                                        # (B, h_kv, S, d_k) each
            positions = None                                               # no rotation across sequences
        out = self.attend_cached(x_q, k, v, mask=mask, positions=positions, bias=bias)  # (B, T_q, d_model)
        cache.record(self.attn_weights, x_q.shape[1])
        return out

    def _forward_linear_cached(self, x_q, cache, positions):
        from .kvcache import LinearStateCache                              # (kvcache imports this module)
        if not isinstance(cache, LinearStateCache):
            raise TypeError(f"kernel='linear' decodes with an attnkit.kvcache.LinearStateCache, got "
                            f"{type(cache).__name__}")
        q, k, v = self.project_qkv(x_q)                                    # (B, h, T_q, d_k), 2 x (B, h_kv, T_q, d_k)
        q, k = self._rotate(q, positions), self._rotate(k, positions)
        heads = cache.attend(self, q, k, v)                                # (B, h, T_q, d_k)
        self.cache = self.attn_weights = None                              # nothing to backpropagate
        return self.out_proj.forward(self.merge_heads(self._gate(heads)))  # (B, T_q, d_model)

    def backward(self, dout):
        """dout: (B, T_q, d_model) -> dx for self-attention, or (dx_q, dx_kv) for cross-attention."""
        _, _, self_attn, _, attn_cache = self.cache
        positions = self.positions                                         # (T_q,)
        dconcat = self.out_proj.backward(dout)                             # (B, T_q, d_model)
        dgated = self.split_heads(dconcat)                                 # (B, h, T_q, d_k)
        heads = attn_cache["out"]                                          # (B, h, T_q, d_k) or grouped
        if self.kernel == "softmax" and self.group > 1:
            heads = self.ungroup(heads, dgated.shape[2])                   # (B, h, T_q, d_k)
        # gate: gated_i = g_i heads_i, so dL/dg_i = sum(dgated_i * heads_i), dheads_i = g_i dgated_i
        self.head_gate_grad = np.einsum("bhtd,bhtd->h", dgated, heads).astype(self.head_gate.dtype)
        dheads = self._gate(dgated)                                        # (B, h, T_q, d_k)
        if self.kernel == "linear":
            dq, dk, dv = linear_attention_backward(dheads, attn_cache)    # (B, h, T, d_k) each
            dk, dv = self._sum_groups(dk), self._sum_groups(dv)            # (B, h_kv, T, d_k) each
        else:
            dq, dk, dv = self._attend_backward(dheads, attn_cache)         # (B, h, T_q, d_k), 2 x (B, h_kv, T_k, d_k)
        if self_attn:
            dq = self._rotate(dq, positions, backward=True)                # (B, h, T, d_k)
            dk = self._rotate(dk, positions, backward=True)                # (B, h_kv, T, d_k)
        dq, dk, dv = self.merge_heads(dq), self.merge_heads(dk), self.merge_heads(dv)  # (B, T, d), 2 x (B, T, d_kv)
        if self_attn:
            # the three projections read one input: one (d, d + 2 d_kv) weight gradient, one matmul for dx
            return self.in_proj.backward(np.concatenate([dq, dk, dv], axis=-1))  # (B, T, d_model)
        dx_kv = self.k_proj.backward(dk) + self.v_proj.backward(dv)        # (B, T_k, d_model)
        return self.q_proj.backward(dq), dx_kv                             # (B, T_q, d), (B, T_k, d)

    def attend_cached(self, x_q, k, v, mask=None, positions=None, bias=None):
        """Inference with keys and values computed earlier (a key/value cache), no dropout, no backward.

        x_q: (B, T_q, d_model) new query positions; k, v: (B, h_kv, T_k, d_k) as keys_values or
        project_qkv return them (keys already rotated when ``rotary`` is set); mask: boolean,
        broadcastable to (B, h, T_q, T_k); positions (T_q,): the queries' positions for
        ``rotary`` (None: not rotated); bias: added to the scores, as in forward.
        Returns (B, T_q, d_model); ``attn_weights`` holds the weights (B, h, T_q, T_k).
        """
        x_q = self._check_input(x_q, "x_q")
        if self.kernel == "linear":
            raise ValueError("kernel='linear' keeps no keys and values to attend over: decode with "
                             "forward(x, cache=LinearStateCache())")
        q = self.split_heads(self.project(x_q, "q"))                       # (B, h, T_q, d_k)
        if positions is not None:
            q = self._rotate(q, positions)                                 # (B, h, T_q, d_k)
        heads, self.attn_weights, _ = self._attend(q, k, v, mask, bias)    # (B, h, T_q, d_k), (B, h, T_q, T_k)
        self.cache = None                                                  # nothing to backpropagate
        return self.project(self.merge_heads(self._gate(heads)), "o")      # (B, T_q, d_model)


class KVCache:
    """One attention layer's keys and values while decoding, what forward(cache=...) reuses.

    Self-attention (``append``): the keys and values of every position decoded so far, one slot
    per position. The buffers are allocated once at full capacity and filled in place: growing
    them with np.concatenate would copy the whole cache at every step. Cross-attention
    (``set_fixed``): the memory's keys and values, projected once. keep_weights: also keep the
    attention weights of every query position, (N, h, capacity, T_k), for alignment plots.
    A decoder-only model, rotary positions (whose offset is ``length``) or a sliding window
    build on the same object.
    """

    def __init__(self, capacity, keep_weights=False):
        self.capacity = check_int(capacity, "capacity", 1, " (the most positions to hold)")
        self.keep_weights = keep_weights
        self.k = self.v = None        # (N, h, capacity or S, d_k) once filled
        self.fixed = False            # True: keys and values of a memory, set once
        self.length = 0               # key positions held (self-attention: positions decoded)
        self.position = 0             # positions appended so far (absolute): the next one's position
        self.queries = 0              # query positions attended so far
        self.weights = None           # (N, h, capacity, T_k) when keep_weights

    def append(self, k_new, v_new):
        """Write the keys and values of n new positions, (N, h, n, d_k) each; return those of all
        positions so far, views of shape (N, h, t + n, d_k)."""
        if self.fixed:
            raise ValueError("this cache holds a memory's keys and values (set_fixed); self-attention needs "
                             "its own")
        N, h, n, d_k = k_new.shape
        t = self.length
        if t + n > self.capacity:
            raise ValueError(f"the cache is full ({self.capacity} positions); build it with a larger "
                             f"capacity")
        if self.k is None:
            self.k = np.zeros((N, h, self.capacity, d_k), dtype=k_new.dtype)  # (N, h, capacity, d_k)
            self.v = np.zeros((N, h, self.capacity, d_k), dtype=v_new.dtype)  # (N, h, capacity, d_k)
        self.k[:, :, t:t + n] = k_new                                     # (N, h, n, d_k)
        self.v[:, :, t:t + n] = v_new                                     # (N, h, n, d_k)
        self.length = t + n
        self.position += n
        return self.k[:, :, :t + n], self.v[:, :, :t + n]                 # (N, h, t + n, d_k) each

    def visible(self, mask):
        """The mask the new queries attend with after append: the caller's (this cache holds
        every position; a RollingKVCache builds its own)."""
        return mask

    def set_fixed(self, k, v):
        """Keep the keys and values of a memory, (N, h, S, d_k) each, for every later step."""
        self.k, self.v, self.fixed = k, v, True
        self.length = k.shape[2]

    def record(self, weights, n):
        """After attending with n new queries: count them, and keep their weights (N, h, n, T_k) if asked."""
        t = self.queries
        if self.keep_weights:
            if self.weights is None:
                N, h, _, T_k = weights.shape
                self.weights = np.zeros((N, h, self.capacity, T_k if self.fixed else self.capacity),
                                        dtype=weights.dtype)              # (N, h, capacity, T_k)
            self.weights[:, :, t:t + n, :weights.shape[3]] = weights      # (N, h, n, T_k)
        self.queries = t + n

    def reorder(self, index, keys=True):
        """Row r becomes old row index[r] (N,): beam search keeps its parents' keys and values.

        keys=False moves only the recorded weights (a memory's keys and values are the same for
        every beam of a sentence). Cost: a copy of the filled part."""
        bufs = [self.weights] + ([self.k, self.v] if keys and not self.fixed else [])
        for buf in bufs:
            if buf is not None:
                t = self.queries if buf is self.weights else self.length
                buf[:, :, :t] = buf[index, :, :t]                         # (N, h, t, ...), gathered rows
# ----------------------------------------------------------------------------
# recurrent layers and the attention that came before the Transformer
#
# Shapes: B batch, T time steps (source length S for the keys), d_in input width, H = d_hidden
# the GRU's state width, d_q query width, d_key key width, d_v value width, d_a the hidden width
# of the additive score. A mask is boolean, True on real steps (or keys that may be attended).

__all__ += ["GRU", "AdditiveAttention", "BilinearAttention", "masked_softmax", "step_mask"]


def _sigmoid(x):
    """1 / (1 + exp(-x)) written as (1 + tanh(x / 2)) / 2: the same function, no overflow, fewer operations."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def step_mask(B, T, lengths=None, mask=None):
    """(B, T) bool, True on real steps, from lengths (B,) (a prefix of each row) or a mask (B, T).

    Neither given: every step is real. Raises ValueError on a wrong shape, a length outside
    [0, T], or both given."""
    if lengths is not None and mask is not None:
        raise ValueError("pass lengths or mask, not both: they say the same thing")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (B, T) or mask.dtype != bool:
            raise ValueError(f"mask must be a boolean array of shape (B, T) = {(B, T)} (True on real "
                             f"steps), got shape {mask.shape}, dtype {mask.dtype}")
        return mask
    if lengths is None:
        return np.ones((B, T), dtype=bool)
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be {B} integers (one per sequence), got shape {lengths.shape}, "
                         f"dtype {lengths.dtype}")
    if np.any(lengths < 0) or np.any(lengths > T):
        raise ValueError(f"every length must lie in [0, T={T}], got {lengths.tolist()}")
    return np.arange(T)[None, :] < lengths[:, None]                       # (B, T)


class GRU(Module):
    """A single-layer gated recurrent unit (Cho et al. 2014) run over a sequence, with backward through time.

    The gate equations are PyTorch's (torch.nn.GRU), for input x_t and previous state h:

        r = sigmoid(x_t W_ir + b_ir + h W_hr + b_hr)          reset gate
        z = sigmoid(x_t W_iz + b_iz + h W_hz + b_hz)          update gate
        n = tanh(x_t W_in + b_in + r * (h W_hn + b_hn))       candidate state
        h_t = (1 - z) * n + z * h

    The reset gate multiplies the hidden projection *with its bias* b_hn, which is why there are
    two bias vectors. Parameters, gates side by side in the order r | z | n as in PyTorch:
        W_ih (d_in, 3H) = weight_ih_l0.T      b_ih (3H,) = bias_ih_l0
        W_hh (H, 3H)    = weight_hh_l0.T      b_hh (3H,) = bias_hh_l0
    (transposed because attnkit multiplies from the right, x @ W). Initialization as PyTorch's:
    every entry U(-1/sqrt(H), 1/sqrt(H)).

    Padding: a step whose mask is False leaves the state unchanged (h_t = h_{t-1}), so a padded
    row ends in the state after its last real step, whatever the padding, and a reversed padded
    row (pads first) starts from h0. The step is public (``cell_forward``/``cell_backward``) so
    that a decoder whose input at step t depends on step t-1 can run it one step at a time.
    """

    def __init__(self, d_in, d_hidden, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        if d_in < 1 or d_hidden < 1:
            raise ValueError(f"d_in and d_hidden must be positive, got {d_in} and {d_hidden}")
        rng = _rng(rng, seed)
        self.d_in, self.H = d_in, d_hidden
        a = 1.0 / math.sqrt(d_hidden)
        H3 = 3 * d_hidden
        self.add_param("W_ih", rng.uniform(-a, a, (d_in, H3)).astype(dtype))   # (d_in, 3H)
        self.add_param("W_hh", rng.uniform(-a, a, (d_hidden, H3)).astype(dtype))  # (H, 3H)
        self.add_param("b_ih", rng.uniform(-a, a, H3).astype(dtype))           # (3H,)
        self.add_param("b_hh", rng.uniform(-a, a, H3).astype(dtype))           # (3H,)

    # --- the input projection, done for all steps at once when the inputs are known

    def project_input(self, x):
        """x (..., d_in) -> x @ W_ih + b_ih (..., 3H): the input's share of all three gates."""
        N = x.reshape(-1, self.d_in)                                      # (N, d_in)
        return (N @ self.params["W_ih"] + self.params["b_ih"]).reshape(*x.shape[:-1], 3 * self.H)

    def project_input_backward(self, dgx, x):
        """dgx (..., 3H), x (..., d_in) -> dx (..., d_in); adds dW_ih and db_ih."""
        d2, x2 = dgx.reshape(-1, 3 * self.H), x.reshape(-1, self.d_in)     # (N, 3H), (N, d_in)
        self.grads["W_ih"] += x2.T @ d2                                   # (d_in, 3H)
        self.grads["b_ih"] += d2.sum(axis=0)                              # (3H,)
        return (d2 @ self.params["W_ih"].T).reshape(x.shape)              # (..., d_in)

    # --- one step

    def cell_forward(self, gx, h, m=None):
        """One step. gx (B, 3H) the input projection of x_t; h (B, H) the previous state;
        m (B,) bool or None, False where this step is padding. Returns (h_t (B, H), cache)."""
        H = self.H
        gh = h @ self.params["W_hh"] + self.params["b_hh"]                # (B, 3H)
        rz = _sigmoid(gx[:, :2 * H] + gh[:, :2 * H])                      # (B, 2H) both gates in one call
        r, z = rz[:, :H], rz[:, H:]                                       # (B, H) each
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])                    # (B, H)
        h_new = n + z * (h - n)                                           # (B, H) = (1 - z) n + z h
        if m is not None:
            h_new = np.where(m[:, None], h_new, h)                        # (B, H) pads keep h
        return h_new, (h, rz, n, gh[:, 2 * H:], m)

    def cell_backward(self, dh_new, cache):
        """dh_new (B, H), the gradient of h_t -> (dgx (B, 3H), dh (B, H)); adds dW_hh and db_hh."""
        h, rz, n, ghn, m = cache
        H = self.H
        r, z = rz[:, :H], rz[:, H:]                                       # (B, H) each
        dh_skip = None
        if m is not None:
            dh_skip = np.where(m[:, None], 0, dh_new)                     # (B, H) pads pass it on
            dh_new = np.where(m[:, None], dh_new, 0)                      # (B, H)
        da_n = dh_new * (1 - z) * (1 - n * n)                             # (B, H) through n's weight and tanh
        dgx = np.empty((h.shape[0], 3 * H), dtype=da_n.dtype)             # (B, 3H) = [da_r | da_z | da_n]
        dgx[:, :H] = da_n * ghn                                           # dr
        dgx[:, H:2 * H] = dh_new * (h - n)                                # dz
        dgx[:, :2 * H] *= rz * (1 - rz)                                   # through both sigmoids
        dgx[:, 2 * H:] = da_n
        dgh = dgx.copy()                                                  # (B, 3H) the same, but
        dgh[:, 2 * H:] *= r                                               # the reset gate scales h W_hn + b_hn
        self.grads["W_hh"] += h.T @ dgh                                   # (H, 3H)
        self.grads["b_hh"] += dgh.sum(axis=0)                             # (3H,)
        dh = dh_new * z + dgh @ self.params["W_hh"].T                     # (B, H)
        if dh_skip is not None:
            dh += dh_skip
        return dgx, dh

    # --- the whole sequence

    def _check_inputs(self, x, h0):
        x = require_float(x, "x")
        if x.ndim != 3 or x.shape[-1] != self.d_in:
            raise ValueError(f"GRU expects x of shape (B, T, d_in={self.d_in}), got {x.shape}; "
                             "a single sequence is x[None]")
        B = x.shape[0]
        if h0 is None:
            h0 = np.zeros((B, self.H), dtype=x.dtype)
        else:
            h0 = require_float(h0, "h0")
            if h0.shape != (B, self.H):
                raise ValueError(f"h0 must have shape (B, H) = {(B, self.H)}, got {h0.shape}")
        return x, h0

    def forward(self, x, h0=None, lengths=None, mask=None):
        """x: (B, T, d_in); h0: (B, H) initial state (zeros if None); lengths (B,) or mask (B, T)
        bool, True on real steps (neither: all real).

        Returns (hs (B, T, H), h_last (B, H)): the state after every step (a padded step repeats
        the previous state) and the state after the last step."""
        x, h0 = self._check_inputs(x, h0)
        B, T, _ = x.shape
        m = step_mask(B, T, lengths, mask)                                # (B, T)
        masked = not m.all()
        gx = self.project_input(x)                                        # (B, T, 3H) one matmul for all steps
        hs = np.empty((B, T, self.H), dtype=np.result_type(x, self.params["W_hh"]))  # (B, T, H)
        h, caches = h0, []
        for t in range(T):
            h, c = self.cell_forward(gx[:, t], h, m[:, t] if masked else None)  # (B, H)
            hs[:, t] = h
            caches.append(c)
        self.cache = (x, caches)
        return hs, h

    def backward(self, dhs=None, dh_last=None):
        """dhs: (B, T, H) gradient of the states, dh_last: (B, H) of the last state (either may be
        None: no gradient). Returns (dx (B, T, d_in), dh0 (B, H))."""
        x, caches = self.cache
        B, T, _ = x.shape
        dh = np.zeros((B, self.H), dtype=x.dtype) if dh_last is None else dh_last.copy()  # (B, H)
        dgx = np.empty((B, T, 3 * self.H), dtype=dh.dtype)                # (B, T, 3H)
        for t in reversed(range(T)):
            if dhs is not None:
                dh = dh + dhs[:, t]                                       # (B, H) h_t feeds output t and step t+1
            dgx[:, t], dh = self.cell_backward(dh, caches[t])             # (B, 3H), (B, H)
        dx = self.project_input_backward(dgx, x)                          # (B, T, d_in)
        return dx, dh


def masked_softmax(scores, mask=None):
    """Softmax over the last axis of scores (..., T_k), keys where mask (broadcastable) is False weighted 0.

    Every row needs one key it may attend to: a row with none raises ValueError."""
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise ValueError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
        try:
            allowed = np.broadcast_to(mask, scores.shape)
        except ValueError:
            raise ValueError(f"mask of shape {mask.shape} does not broadcast to the scores "
                             f"{scores.shape} (..., T_q, T_k); a key mask (B, T_k) needs [:, None]") from None
        if not allowed.any(axis=-1).all():
            raise ValueError("a query has no key it may attend to (a mask row is all False): "
                             "every sequence needs at least one real token")
        scores = np.where(allowed, scores, -np.inf)
    w = np.exp(scores - scores.max(axis=-1, keepdims=True))               # (..., T_k), exp(-inf) = 0
    return w / w.sum(axis=-1, keepdims=True)


class _RNNAttention(Module):
    """What additive and bilinear attention share: keys projected once, then any number of queries.

    forward(query, keys, values, mask) = project_keys, then attend. A decoder whose query at
    step t is its state after step t-1 projects the keys once and calls attend at every step;
    ``attend`` returns its cache instead of keeping it, so the decoder can keep one per step.
    """

    def _check(self, query, keys, values, mask):
        query, keys = require_float(query, "query"), require_float(keys, "keys")
        values = keys if values is None else require_float(values, "values")
        if query.ndim != 3 or query.shape[-1] != self.d_query:
            raise ValueError(f"query must have shape (B, T_q, d_query={self.d_query}), got {query.shape}")
        if keys.ndim != 3 or keys.shape[-1] != self.d_key:
            raise ValueError(f"keys must have shape (B, T_k, d_key={self.d_key}), got {keys.shape}")
        if values.ndim != 3 or values.shape[:2] != keys.shape[:2] or query.shape[0] != keys.shape[0]:
            raise ValueError(f"query {query.shape}, keys {keys.shape} and values {values.shape} must share "
                             "the batch size, and keys and values the length T_k")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape == keys.shape[:2]:
                mask = mask[:, None, :]                                   # (B, 1, T_k) a key mask
        return query, keys, values, mask

    def forward(self, query, keys, values=None, mask=None):
        """query: (B, T_q, d_query); keys: (B, T_k, d_key); values: (B, T_k, d_v) (None: the keys);
        mask: bool (B, T_k) or broadcastable to (B, T_q, T_k), True = may attend.
        Returns the context (B, T_q, d_v); ``weights`` holds the attention weights (B, T_q, T_k)."""
        query, keys, values, mask = self._check(query, keys, values, mask)
        kp = self.project_keys(keys)                                      # (B, T_k, *)
        context, self.weights, c = self.attend(query, kp, values, mask)   # (B, T_q, d_v)
        self.cache = (keys, c, values is keys)
        return context

    def backward(self, dcontext):
        """dcontext: (B, T_q, d_v) -> (dquery, dkeys, dvalues); dvalues is None when values were the keys
        (its gradient is then included in dkeys)."""
        keys, c, shared = self.cache
        dquery, dkp, dvalues = self.attend_backward(dcontext, c)          # (B, T_q, d_q), (B, T_k, *), (B, T_k, d_v)
        dkeys = self.project_keys_backward(dkp, keys)                     # (B, T_k, d_key)
        if shared:
            return dquery, dkeys + dvalues, None
        return dquery, dkeys, dvalues

    def attend(self, query, kp, values, mask=None):
        """query (B, T_q, d_query), kp = project_keys(keys), values (B, T_k, d_v), mask broadcastable
        to (B, T_q, T_k). Returns (context (B, T_q, d_v), weights (B, T_q, T_k), cache)."""
        s, score_cache = self.score(query, kp)                            # (B, T_q, T_k)
        w = masked_softmax(s, mask)                                       # (B, T_q, T_k)
        context = w @ values                                              # (B, T_q, d_v)
        return context, w, (w, values, score_cache)

    def attend_backward(self, dcontext, cache):
        """dcontext (B, T_q, d_v) -> (dquery (B, T_q, d_query), dkp, dvalues (B, T_k, d_v))."""
        w, values, score_cache = cache
        dvalues = w.transpose(0, 2, 1) @ dcontext                         # (B, T_k, d_v)
        dw = dcontext @ values.transpose(0, 2, 1)                         # (B, T_q, T_k)
        ds = w * (dw - np.sum(w * dw, axis=-1, keepdims=True))            # (B, T_q, T_k) softmax backward
        dquery, dkp = self.score_backward(ds, score_cache)
        return dquery, dkp, dvalues


class AdditiveAttention(_RNNAttention):
    """Bahdanau's additive attention: score(q, k) = v^T tanh(q W_q + k W_k), softmax over the keys.

    W_q (d_query, d_a), W_k (d_key, d_a) Xavier uniform, v (d_a,) U(-1/sqrt(d_a), 1/sqrt(d_a)).
    The score is a one-hidden-layer network of the query and the key, so queries and keys may
    have different widths. ``project_keys`` computes k W_k once per source sentence.
    """

    def __init__(self, d_query, d_key, d_hidden, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.d_query, self.d_key, self.d_hidden = d_query, d_key, d_hidden
        self.add_param("W_q", xavier_uniform(rng, d_query, d_hidden, dtype))   # (d_query, d_a)
        self.add_param("W_k", xavier_uniform(rng, d_key, d_hidden, dtype))     # (d_key, d_a)
        a = 1.0 / math.sqrt(d_hidden)
        self.add_param("v", rng.uniform(-a, a, d_hidden).astype(dtype))        # (d_a,)
        self.weights = None

    def project_keys(self, keys):
        """keys (B, T_k, d_key) -> keys @ W_k (B, T_k, d_a)."""
        B, T, _ = keys.shape
        return (keys.reshape(B * T, -1) @ self.params["W_k"]).reshape(B, T, self.d_hidden)

    def project_keys_backward(self, dkp, keys):
        """dkp (B, T_k, d_a) -> dkeys (B, T_k, d_key); adds dW_k."""
        B, T, _ = keys.shape
        d2 = dkp.reshape(B * T, self.d_hidden)                            # (B T_k, d_a)
        self.grads["W_k"] += keys.reshape(B * T, -1).T @ d2               # (d_key, d_a)
        return (d2 @ self.params["W_k"].T).reshape(keys.shape)            # (B, T_k, d_key)

    def score(self, query, kp):
        """query (B, T_q, d_query), kp (B, T_k, d_a) -> (scores (B, T_q, T_k), cache)."""
        B, Tq, _ = query.shape
        qp = (query.reshape(B * Tq, -1) @ self.params["W_q"]).reshape(B, Tq, self.d_hidden)  # (B, T_q, d_a)
        e = np.tanh(qp[:, :, None, :] + kp[:, None, :, :])                # (B, T_q, T_k, d_a)
        return e @ self.params["v"], (query, e)                           # (B, T_q, T_k)

    def score_backward(self, ds, cache):
        """ds (B, T_q, T_k) -> (dquery (B, T_q, d_query), dkp (B, T_k, d_a)); adds dW_q and dv."""
        query, e = cache
        B, Tq, _ = query.shape
        self.grads["v"] += (ds.reshape(1, -1) @ e.reshape(-1, self.d_hidden))[0]  # (d_a,)
        da = 1 - e * e                                                    # (B, T_q, T_k, d_a) through tanh,
        da *= self.params["v"]                                            # in place: the largest tensor here
        da *= ds[..., None]
        dqp = da.sum(axis=2)                                              # (B, T_q, d_a)
        dkp = da.sum(axis=1)                                              # (B, T_k, d_a)
        self.grads["W_q"] += query.reshape(B * Tq, -1).T @ dqp.reshape(B * Tq, -1)  # (d_query, d_a)
        dquery = (dqp.reshape(B * Tq, -1) @ self.params["W_q"].T).reshape(query.shape)  # (B, T_q, d_query)
        return dquery, dkp


class BilinearAttention(_RNNAttention):
    """Luong's "general" multiplicative attention: score(q, k) = q W k^T, softmax over the keys.

    W (d_query, d_key) Xavier uniform. Unscaled, as in Luong et al. 2015; with W = I (and
    d_query = d_key) it is the plain dot product, and dividing by sqrt(d) gives the Transformer's
    scaled dot product. ``project_keys`` computes k W^T once per source sentence.
    """

    def __init__(self, d_query, d_key, rng=None, seed=None, dtype=np.float32):
        super().__init__()
        rng = _rng(rng, seed)
        self.d_query, self.d_key = d_query, d_key
        self.add_param("W", xavier_uniform(rng, d_query, d_key, dtype))         # (d_query, d_key)
        self.weights = None

    def project_keys(self, keys):
        """keys (B, T_k, d_key) -> keys @ W^T (B, T_k, d_query)."""
        B, T, _ = keys.shape
        return (keys.reshape(B * T, -1) @ self.params["W"].T).reshape(B, T, self.d_query)

    def project_keys_backward(self, dkp, keys):
        """dkp (B, T_k, d_query) -> dkeys (B, T_k, d_key); adds dW."""
        B, T, _ = keys.shape
        d2 = dkp.reshape(B * T, self.d_query)                             # (B T_k, d_query)
        self.grads["W"] += d2.T @ keys.reshape(B * T, -1)                 # (d_query, d_key)
        return (d2 @ self.params["W"]).reshape(keys.shape)                # (B, T_k, d_key)

    def score(self, query, kp):
        """query (B, T_q, d_query), kp (B, T_k, d_query) -> (scores (B, T_q, T_k), cache)."""
        return query @ kp.transpose(0, 2, 1), (query, kp)                 # (B, T_q, T_k)

    def score_backward(self, ds, cache):
        """ds (B, T_q, T_k) -> (dquery (B, T_q, d_query), dkp (B, T_k, d_query))."""
        query, kp = cache
        return ds @ kp, ds.transpose(0, 2, 1) @ query                     # (B, T_q, d_q), (B, T_k, d_q)
