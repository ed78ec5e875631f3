"""What attention keeps while a model generates: the key/value cache, its size, and two caches
of fixed size (a sliding window with attention sinks, and linear attention's recurrent state).

Shapes: N sequences decoded together, h query heads, h_kv key/value heads, d_k head size,
n new positions in one call, t positions held, W window, s sinks.

  kv_cache_bytes        the memory of a full key/value cache (the formula of the GQA papers)
  cache_nbytes          the memory an actual cache object holds now
  window_visible        which keys a query may see under a sliding window with sinks
  sliding_window_mask   the (T, T) banded causal mask of the same rule (training, full forward)
  RollingKVCache        a KVCache of fixed size s + W: the first s positions and the last W
  LinearStateCache      causal linear attention as an RNN: a (d_k, d_k + 1) state per head

The rolling cache evicts the oldest window position when a new one arrives; with s > 0 the
first s positions are never evicted (StreamingLLM's attention sinks, Xiao et al. 2023). Keys
are stored as they were computed, at their absolute positions: exact for a model without
position embeddings (GPTConfig(pos="none")); StreamingLLM's rule for rotary models, which
re-numbers the positions inside the cache, is not implemented here.
"""
import numpy as np

from ._checks import check_int
from .functional import elu_feature_map
from .functional import linear_sums
from .nn import KVCache

__all__ = ["kv_cache_bytes", "cache_nbytes", "window_visible", "sliding_window_mask", "RollingKVCache",
           "LinearStateCache", "BYTES_PER_VALUE"]

BYTES_PER_VALUE = {"float32": 4, "bf16": 2, "bfloat16": 2, "float16": 2, "fp16": 2, "int8": 1}


def kv_cache_bytes(num_layers, d_model, num_heads, context_length, num_kv_heads=None, dtype="bf16",
                   batch=1):
    """Bytes of a full key/value cache: 2 (keys and values) x layers x batch x context x h_kv x d_k
    x bytes per value, with d_k = d_model / num_heads and h_kv = num_kv_heads (None: num_heads).

    dtype: a name in BYTES_PER_VALUE ("bf16", "float32", ...) or a number of bytes.
    Example: 32 layers, d_model 4096, 32 heads, a 32,768-token context in bf16 need 17.18 GB
    (decimal) with multi-head attention, 4.29 GB with 8 key/value heads.
    """
    for name, value, low in (("num_layers", num_layers, 1), ("d_model", d_model, 1),
                             ("num_heads", num_heads, 1), ("context_length", context_length, 0),
                             ("batch", batch, 1)):
        check_int(value, name, low)
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
    h_kv = num_heads if num_kv_heads is None else check_int(num_kv_heads, "num_kv_heads", 1)
    if num_heads % h_kv:
        raise ValueError(f"num_kv_heads={h_kv} must divide num_heads={num_heads}")
    if isinstance(dtype, str):
        if dtype not in BYTES_PER_VALUE:
            raise ValueError(f"dtype must be one of {sorted(BYTES_PER_VALUE)} or a number of bytes, got {dtype!r}")
        size = BYTES_PER_VALUE[dtype]
    else:
        size = check_int(dtype, "dtype (bytes per value)", 1)
    return 2 * num_layers * batch * context_length * h_kv * (d_model // num_heads) * size


def cache_nbytes(cache):
    """Bytes held now by a cache: a KVCache, RollingKVCache, LinearStateCache, or anything with
    ``layers`` of them (models.GPTCache). Buffers count at their allocated size."""
    if hasattr(cache, "layers"):
        return sum(cache_nbytes(layer) for layer in cache.layers)
    arrays = (cache.state,) if isinstance(cache, LinearStateCache) else (cache.k, cache.v)
    return sum(a.nbytes for a in arrays if a is not None)


def window_visible(q_pos, k_pos, window, sinks=0):
    """(n_q, n_k) bool: query at position q_pos[i] may see the key at k_pos[j] when it is not in
    the future and is one of the last `window` positions (the query's own included) or one of
    the first `sinks` positions."""
    q_pos, k_pos = np.asarray(q_pos)[:, None], np.asarray(k_pos)[None, :]   # (n_q, 1), (1, n_k)
    return (k_pos <= q_pos) & ((q_pos - k_pos < window) | (k_pos < sinks))


def sliding_window_mask(T, window, sinks=0):
    """(T, T) banded causal mask, True = may attend: position i sees i - window + 1 .. i, and
    the first `sinks` positions. window >= T is causal_mask(T)."""
    T = check_int(T, "T", 1)
    window = check_int(window, "window", 1, " (positions each query sees, itself included)")
    sinks = check_int(sinks, "sinks", 0)
    pos = np.arange(T)
    return window_visible(pos, pos, window, sinks)                           # (T, T)


class RollingKVCache(KVCache):
    """A self-attention KVCache of fixed size sinks + window: the first `sinks` positions and the
    last `window` ones, written in place (a ring over the window slots).

    append() of one position writes it over the oldest window position and returns every held
    slot (slot order is not position order: attention does not care without position
    embeddings); append() of n > 1 positions (a prefill) returns the held and the new keys
    and sets the window mask of the new queries, which visible() hands to the attention.
    """

    def __init__(self, window, sinks=0):
        window = check_int(window, "window", 1, " (positions each query sees, itself included)")
        sinks = check_int(sinks, "sinks", 0, " (first positions kept for ever)")
        super().__init__(sinks + window)
        self.window, self.sinks = window, sinks
        self.slot_pos = np.full(self.capacity, -1)   # (capacity,) absolute position in each slot
        self._mask = None                            # (n, t + n) of the last append, or None

    def slot_of(self, pos):
        """The slot of absolute positions pos: a sink keeps its own, the others share the ring."""
        pos = np.asarray(pos)
        return np.where(pos < self.sinks, pos, self.sinks + (pos - self.sinks) % self.window)

    def key_positions(self, n):
        """The absolute positions of the keys that append() of the next n positions returns, in
        its order (slot order for one position, held then new for a prefill): (t,) or (t + n,).
        What a position-dependent score bias (ALiBi) needs, since slots are not in position order."""
        new_pos = np.arange(self.position, self.position + n)             # (n,)
        if n > 1:
            return np.concatenate([self.slot_pos[:self.length], new_pos])  # (t + n,)
        held = self.slot_pos.copy()                                       # (capacity,)
        held[self.slot_of(new_pos)] = new_pos
        return held[:min(self.position + 1, self.capacity)]               # (t,) after the write

    def append(self, k_new, v_new):
        """Keys and values of n new positions, (N, h, n, d_k) each -> the keys and values the new
        queries attend over: (N, h, t, d_k) after writing (n = 1), or (N, h, t + n, d_k)."""
        if self.fixed:
            raise ValueError("a RollingKVCache holds self-attention keys; cross-attention needs a KVCache")
        N, h, n, d_k = k_new.shape
        if self.k is None:
            self.k = np.zeros((N, h, self.capacity, d_k), dtype=k_new.dtype)  # (N, h, s + W, d_k)
            self.v = np.zeros((N, h, self.capacity, d_k), dtype=v_new.dtype)  # (N, h, s + W, d_k)
        p0, t = self.position, self.length
        new_pos = np.arange(p0, p0 + n)                                   # (n,)
        if n == 1:
            self._write(new_pos, k_new, v_new)
            self._mask = None                                             # every held slot is visible
            return self.k[:, :, :self.length], self.v[:, :, :self.length]  # (N, h, t, d_k) each
        key_pos = np.concatenate([self.slot_pos[:t], new_pos])            # (t + n,)
        k = np.concatenate([self.k[:, :, :t], k_new], axis=2)             # (N, h, t + n, d_k) a copy:
        v = np.concatenate([self.v[:, :, :t], v_new], axis=2)             # a prefill, not every step
        self._mask = window_visible(new_pos, key_pos, self.window, self.sinks)  # (n, t + n)
        self._write(new_pos, k_new, v_new)
        return k, v

    def _write(self, new_pos, k_new, v_new):
        """Store the new positions that stay: sinks, and the last `window` of them."""
        last = new_pos[-1]
        keep = (new_pos < self.sinks) | (new_pos > last - self.window)    # (n,)
        slots = self.slot_of(new_pos[keep])                               # distinct slots
        self.k[:, :, slots] = k_new[:, :, keep]
        self.v[:, :, slots] = v_new[:, :, keep]
        self.slot_pos[slots] = new_pos[keep]
        self.position = int(last) + 1
        self.length = min(self.position, self.capacity)

    def visible(self, mask):
        """The window mask of the last append ((n, t + n), or None for one new position); the
        caller's causal mask is replaced, since this one is causal too."""
        return self._mask

    def record(self, weights, n):
        self.queries += n                                                 # no weights kept: slots move


class LinearStateCache:
    """One causal linear-attention layer while decoding: its state, not its keys and values.

    state (N, h_kv, d_k, d_v + 1) = sum over the past of phi(k_j) [v_j, 1]^T (the numerator's
    and the normaliser's sums side by side), phi = elu + 1: the same size after 10 tokens or
    10 million, and each new token costs the same (Katharopoulos et al. 2020's RNN form).
    """

    fixed = False

    def __init__(self):
        self.state = None             # (N, h_kv, d_k, d_v + 1) once the first token arrived
        self.position = 0             # positions seen so far (absolute)
        self.length = 0               # key positions held: none, the state replaces them

    def attend(self, mha, q, k, v, chunk=64):
        """Causal linear attention of n new positions given the past's state, then add them to it.

        mha: the MultiHeadAttention (its grouping); q (N, h, n, d_k); k, v (N, h_kv, n, d_k).
        Returns the heads (N, h, n, d_v), equal to linear_attention_forward over the whole prefix."""
        N, _, n, d_k = q.shape
        fq, fk = elu_feature_map(q), elu_feature_map(k)                   # (N, h, n, d_k), (N, h_kv, n, d_k)
        v1 = np.concatenate([v, np.ones((*v.shape[:-1], 1), dtype=v.dtype)], axis=-1)  # (N, h_kv, n, d_v + 1)
        if self.state is None:
            self.state = np.zeros((N, mha.h_kv, d_k, v1.shape[-1]), dtype=q.dtype)
        # the new positions among themselves (causal), then everything before them, from the state
        num = linear_sums(fq, mha._repeat_kv(fk), mha._repeat_kv(v1), True, chunk)  # (N, h, n, d_v + 1)
        num += mha.ungroup(np.matmul(mha.group_queries(fq), self.state), n)        # (N, h, n, d_v + 1)
        self.state += np.matmul(np.swapaxes(fk, -1, -2), v1)              # (N, h_kv, d_k, d_v + 1)
        self.position += n
        return num[..., :-1] / num[..., -1:]                              # (N, h, n, d_v)
