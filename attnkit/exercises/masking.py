"""Checkers for chapter 8: causal and padding masks, and a softmax that respects them.

    from attnkit.exercises.masking import check_causal_mask
    check_causal_mask(my_causal_mask)   # -> PASSED ... or NOT YET ... with a hint

Convention (as in attnkit.functional): masks are boolean and True means "may attend".
"""
import numpy as np

from .core import Hint, call, cases_rng, check

__all__ = ["check_causal_mask", "check_combined_mask", "check_masked_softmax", "check_cross_attention_mask"]


def _bool_mask(out, shape=None, what="the mask"):
    if out is None:
        raise NotImplementedError
    out = np.asarray(out)
    if out.dtype != np.bool_:
        raise Hint(f"{what} should be a boolean array (True = may attend), got dtype {out.dtype}; "
                   "build it from comparisons or with dtype=bool.")
    if shape is not None and out.shape != tuple(shape):
        raise Hint(f"{what} has shape {out.shape}, expected {tuple(shape)}")
    return out


def _causal_cases(fn):
    for T in (5, 1, 8):
        out = _bool_mask(call(fn, T), (T, T))
        ref = np.tril(np.ones((T, T), dtype=bool))
        if np.array_equal(out, ref):
            continue
        if np.array_equal(out, ~ref):
            raise Hint("the convention is inverted: True must mean 'may attend', so True on and below "
                       "the diagonal (np.tril), False above it.")
        if np.array_equal(out, ref.T):
            raise Hint("that is the transpose: row t is query t and may see keys 0..t, so the True "
                       "entries sit on and *below* the diagonal (np.tril, not np.triu).")
        if np.array_equal(out, np.tril(ref, -1)):
            raise Hint("wrong diagonal: a position may attend to itself, so the diagonal is True "
                       "(np.tril with k=0).")
        if np.array_equal(out, np.tril(np.ones((T, T), dtype=bool), 1)):
            raise Hint("wrong diagonal: your mask lets every position see one step into the future "
                       "(k=1); use np.tril with k=0.")
        raise Hint(f"for T={T} expected True exactly on and below the diagonal (np.tril), "
                   f"got\n{out.astype(int)}")


def check_causal_mask(fn):
    """Check fn(T) -> (T, T) boolean mask, True where key position <= query position."""
    return check("causal_mask", fn, _causal_cases)


def _combined_cases(fn):
    # B != T first, so that masks that broadcast by accident fail loudly; then B == T.
    for lengths, T in (([5, 3, 1], 5), ([2, 4, 4, 0], 4)):
        lengths = np.array(lengths)
        B = len(lengths)
        causal = np.tril(np.ones((T, T), dtype=bool))                      # (T, T)
        keys = np.arange(T)[None, :] < lengths[:, None]                     # (B, T)
        ref = causal[None, None] & keys[:, None, None, :]                   # (B, 1, T, T)
        out = _bool_mask(call(fn, lengths, T))
        if out.shape != ref.shape:
            if out.shape == (B, T, T) or out.shape == (T, T) or out.shape == (B, T):
                raise Hint(f"your mask has shape {out.shape}; it must broadcast against scores of shape "
                           f"(B, h, T, T), so give it shape (B, 1, T, T): a size-1 head axis "
                           "(causal[None, None] & padding[:, None, None, :]).")
            if out.shape == (B, 1, 1, T):
                raise Hint("that is the padding mask alone: combine it with the causal mask using &.")
            raise Hint(f"your mask has shape {out.shape}, expected (B, 1, T, T) = {ref.shape}")
        if np.array_equal(out, ref):
            continue
        if np.array_equal(out, ~ref):
            raise Hint("the convention is inverted: True must mean 'may attend'.")
        if np.array_equal(out, causal[None, None] | keys[:, None, None, :]):
            raise Hint("you combined with | (or): a key may be attended only if it is in the past "
                       "AND a real token, so combine with &.")
        if np.array_equal(out, causal[None, None] & keys[:, None, :, None]):
            raise Hint("you masked padded *queries* (rows): a padding mask hides padded *keys*, the "
                       "last axis: padding[:, None, None, :].")
        if np.array_equal(out, np.broadcast_to(causal, ref.shape)):
            raise Hint("that is the causal mask alone: padded keys must be hidden too (combine with &).")
        if np.array_equal(out, np.broadcast_to(keys[:, None, None, :], ref.shape)):
            raise Hint("that is the padding mask alone: future keys must be hidden too (combine with &).")
        raise Hint(f"for lengths {lengths.tolist()} and T={T} the mask differs from causal & padding.")


def check_combined_mask(fn):
    """Check fn(lengths, T) -> (B, 1, T, T) boolean mask: causal and hiding padded keys."""
    return check("combined_mask", fn, _combined_cases)


def _masked_softmax_ref(scores, mask):
    s = np.where(mask, scores, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def _masked_softmax_cases(fn):
    rng = cases_rng(1234)
    T = 5
    mask = np.tril(np.ones((T, T), dtype=bool))
    scores = rng.normal(size=(2, T, T))                                    # (B, T, T)

    # 1. ordinary rows: every query has at least one key
    out = call(fn, scores, mask)
    if out is None:
        raise NotImplementedError
    out = np.asarray(out)
    if out.shape != scores.shape:
        raise Hint(f"the weights have shape {out.shape}, expected the scores' shape {scores.shape}")
    ref = _masked_softmax_ref(scores, mask)
    if not np.allclose(out, ref, atol=1e-6):
        if np.nansum(np.abs(out[..., ~mask])) > np.nansum(np.abs(out[..., mask])):
            raise Hint("the weights sit on the masked positions: True means 'may attend', so set "
                       "the scores where mask is False to -inf.")
        if np.all(np.isfinite(out)):
            if np.any(np.abs(out[..., ~mask]) > 1e-6):
                raise Hint("masked positions got nonzero weight: set their scores to -inf before the "
                           "softmax.")
            if not np.allclose(out.sum(-1), 1, atol=1e-6):
                raise Hint("rows do not sum to 1: mask the scores before the softmax (so it renormalizes "
                           "over the allowed keys), not the weights after it.")
        raise Hint("the weights differ from softmax over the allowed keys "
                   f"(largest difference {np.nanmax(np.abs(out - ref)):.3g}).")

    # 2. large scores: the softmax must be stable
    big = scores * 1000
    out = np.asarray(call(fn, big, mask))
    if not np.all(np.isfinite(out)):
        raise Hint("large scores give nan or inf: subtract each row's maximum (over the allowed keys) "
                   "before np.exp.")
    if not np.allclose(out, _masked_softmax_ref(big, mask), atol=1e-6):
        raise Hint("the weights for large scores are wrong: subtract each row's maximum before np.exp.")

    # 3. a query with no key at all (a padded query under causal & padding masks)
    mask2 = mask.copy()
    mask2[1:, 1:] = False
    mask2[3, :] = False                                                   # row 3: every key masked
    out = np.asarray(call(fn, scores, mask2))
    ref = _masked_softmax_ref(scores, mask2)
    if np.any(np.isnan(out[..., 3, :])):
        raise Hint("a fully masked row gives nan: with every score at -inf, the maximum is -inf and "
                   "-inf - (-inf) = nan. Such a row has nothing to attend to: give it all-zero weights "
                   "(replace a -inf maximum by 0, and divide only where the sum is > 0).")
    if np.allclose(out[..., 3, :], 1 / T):
        raise Hint("a fully masked row got a uniform distribution over the keys it must not see "
                   "(what masking with -1e9 does): it should get all-zero weights.")
    if not np.allclose(out, ref, atol=1e-6):
        raise Hint("with a fully masked row the weights are wrong: that row should be all zeros and "
                   "the other rows unchanged.")


def check_masked_softmax(fn):
    """Check fn(scores, mask) -> softmax over the keys where mask is True; fully masked rows all zeros."""
    return check("masked_softmax", fn, _masked_softmax_cases)


# ----------------------------------------------------------------------------
# transfer task: the mask of cross-attention (decoder queries over the encoder's keys)

def _cross_mask_cases(fn):
    for src_lengths, T_q, T_k in (([4, 2, 3], 3, 4), ([5, 5], 2, 5), ([1, 3], 4, 3)):
        lengths = np.array(src_lengths)
        B = len(src_lengths)
        out = _bool_mask(call(fn, lengths, T_q, T_k), None,
                         f"the mask for source lengths {src_lengths}, T_q={T_q}, T_k={T_k}")
        want = np.broadcast_to((np.arange(T_k)[None, :] < lengths[:, None])[:, None, None, :],
                               (B, 1, T_q, T_k))
        if out.shape == (B, T_k):
            raise Hint(f"shape {out.shape} is one row per sequence: attention needs (B, 1, T_q, T_k) "
                       "(the 1 broadcasts over the heads); add the axes with [:, None, None, :] and "
                       "broadcast over the queries.")
        if out.shape != want.shape:
            raise Hint(f"the mask has shape {out.shape}, expected {want.shape} = (B, 1, T_q, T_k)")
        if np.array_equal(out, want):
            continue
        if np.array_equal(out, want & np.tril(np.ones((T_q, T_k), dtype=bool))):
            raise Hint("cross-attention is not causal: every target position may read the whole "
                       "source; the causal mask belongs to the decoder's self-attention.")
        if np.array_equal(out, ~want):
            raise Hint("True means 'may attend': the real source tokens (j < length) are True, "
                       "the padding False.")
        raise Hint(f"entry [b, 0, i, j] should be True exactly when source position j is real, "
                   f"j < src_lengths[b]; for lengths {src_lengths} it is not.")


def check_cross_attention_mask(fn):
    """Check fn(src_lengths (B,), T_q, T_k) -> boolean (B, 1, T_q, T_k) mask of cross-attention."""
    return check("cross-attention mask", fn, _cross_mask_cases,
                 "only the source's padding is hidden; no causal part, and every target row the same.")
