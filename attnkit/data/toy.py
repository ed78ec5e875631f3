"""Synthetic sequence tasks whose answer is known exactly: the reversal task of chapter 13.

A source is ``min_len`` to ``max_len`` random "letters" (ids 3 to ``vocab_size - 1``), padded
with PAD; the target is the same letters in reverse order, then EOS. The decoder reads the target
shifted right by one (BOS first, no EOS), as in teacher forcing. Ids 0, 1, 2 are PAD, BOS, EOS.

B = batch size, L = max_len (longest source), L + 1 = target length (the letters and EOS).
"""
import numpy as np

from ..seeding import make_rng

__all__ = ["PAD_ID", "BOS_ID", "EOS_ID", "FIRST_LETTER", "reversal_batch", "reversal_batches"]

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_LETTER = 3          # ids FIRST_LETTER .. vocab_size - 1 are the letters


def _check_sizes(batch_size, min_len, max_len, vocab_size):
    for name, value in (("batch_size", batch_size), ("min_len", min_len),
                        ("max_len", max_len), ("vocab_size", vocab_size)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")
    if vocab_size <= FIRST_LETTER:
        raise ValueError(f"vocab_size must exceed {FIRST_LETTER} (ids 0-2 are PAD, BOS, "
                         f"EOS; the letters come after), got {vocab_size}")


def reversal_batch(rng, batch_size, min_len=8, max_len=12, vocab_size=20):
    """One batch of the reversal task: ``((src, tgt_in), tgt_out)``.

    rng: a Generator, or an integer seed (made into one by attnkit.seeding.make_rng).
    src: (B, L) letters then PAD; tgt_out: (B, L + 1) the letters reversed, EOS, then PAD;
    tgt_in: (B, L + 1) BOS then tgt_out without its EOS (EOS replaced by PAD).
    Lengths are drawn uniformly from min_len..max_len, letters uniformly from the letter ids.
    """
    _check_sizes(batch_size, min_len, max_len, vocab_size)
    rng = make_rng(rng)
    B = batch_size
    lengths = rng.integers(min_len, max_len + 1, size=B)             # (B,)
    pos = np.arange(max_len)                                         # (L,)
    real = pos < lengths[:, None]                                    # (B, L)
    letters = rng.integers(FIRST_LETTER, vocab_size, size=(B, max_len))   # (B, L)
    src = np.where(real, letters, PAD_ID)                            # (B, L)
    back = np.clip(lengths[:, None] - 1 - pos, 0, None)              # (B, L) source index
    rev = np.where(real, np.take_along_axis(src, back, 1), PAD_ID)   # (B, L)
    column = np.full((B, 1), PAD_ID)                                 # (B, 1)
    tgt_out = np.concatenate([rev, column], axis=1)                  # (B, L + 1)
    tgt_out[np.arange(B), lengths] = EOS_ID                          # right after the letters
    tgt_in = np.concatenate([column + BOS_ID, rev], axis=1)          # (B, L + 1)
    return (src, tgt_in), tgt_out


def reversal_batches(seed, batch_size, min_len=8, max_len=12, vocab_size=20):
    """An endless stream of reversal batches drawn from one Generator, ``make_rng(seed)``.

    Two streams with the same seed (and the same robustness shift) are identical. Bad sizes
    raise here, not at the first ``next()``.
    """
    _check_sizes(batch_size, min_len, max_len, vocab_size)
    return _stream(make_rng(seed), batch_size, min_len, max_len, vocab_size)


def _stream(rng, batch_size, min_len, max_len, vocab_size):
    while True:
        yield reversal_batch(rng, batch_size, min_len, max_len, vocab_size)
