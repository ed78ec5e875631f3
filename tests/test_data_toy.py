"""Tests for attnkit.data.toy: the reversal task's batches are what the docstring says (checked
against a per-sequence loop), streams are seeded through make_rng, and bad sizes raise."""
import itertools

import numpy as np
import pytest

from attnkit.data.toy import (BOS_ID, EOS_ID, FIRST_LETTER, PAD_ID, reversal_batch,
                              reversal_batches)
from attnkit.seeding import make_rng


def reference_batch(src):
    """The targets built one sequence at a time from a padded source (B, L)."""
    B, L = src.shape
    tgt_out = np.full((B, L + 1), PAD_ID)
    tgt_in = np.full((B, L + 1), PAD_ID)
    for b in range(B):
        letters = src[b][src[b] != PAD_ID]
        n = len(letters)
        tgt_out[b, :n] = letters[::-1]
        tgt_out[b, n] = EOS_ID
        tgt_in[b, 0] = BOS_ID
        tgt_in[b, 1:n + 1] = letters[::-1]
    return tgt_in, tgt_out


@pytest.mark.parametrize("min_len, max_len, vocab", [(8, 12, 20), (1, 1, 4), (2, 6, 9)])
def test_batch_reverses_the_source_and_ends_with_eos(min_len, max_len, vocab):
    (src, tgt_in), tgt_out = reversal_batch(make_rng(3), 64, min_len, max_len, vocab)
    assert src.shape == (64, max_len)
    assert tgt_in.shape == tgt_out.shape == (64, max_len + 1)
    lengths = (src != PAD_ID).sum(axis=1)                           # (B,)
    assert lengths.min() >= min_len and lengths.max() <= max_len
    # the letters come first, then only padding
    assert np.array_equal(src != PAD_ID, np.arange(max_len) < lengths[:, None])
    letters = src[src != PAD_ID]
    assert letters.min() >= FIRST_LETTER and letters.max() < vocab
    ref_in, ref_out = reference_batch(src)
    assert np.array_equal(tgt_out, ref_out) and np.array_equal(tgt_in, ref_in)
    # teacher forcing: the decoder input is the target shifted right, EOS dropped
    assert np.all(tgt_in[:, 0] == BOS_ID)
    assert np.array_equal(tgt_in[:, 1:], np.where(tgt_out[:, :-1] == EOS_ID, PAD_ID,
                                                   tgt_out[:, :-1]))


def test_lengths_and_letters_cover_their_ranges():
    (src, _), _ = reversal_batch(0, 2000, 8, 12, 20)
    lengths = (src != PAD_ID).sum(axis=1)
    assert set(lengths.tolist()) == set(range(8, 13))
    assert set(src[src != PAD_ID].tolist()) == set(range(FIRST_LETTER, 20))


def test_seed_and_generator_give_the_same_batch():
    (a, _), _ = reversal_batch(7, 5)
    (b, _), _ = reversal_batch(make_rng(7), 5)
    (c, _), _ = reversal_batch(8, 5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_streams_are_seeded_and_draw_fresh_batches():
    first = [b[1] for b in itertools.islice(reversal_batches(5, 16), 3)]
    again = [b[1] for b in itertools.islice(reversal_batches(5, 16), 3)]
    other = [b[1] for b in itertools.islice(reversal_batches(6, 16), 3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], other[0])
    # the stream is successive draws from one generator made by make_rng(seed)
    rng = make_rng(5)
    reversal_batch(rng, 16)
    assert np.array_equal(first[1], reversal_batch(rng, 16)[1])


def test_seed_shift_changes_the_stream(monkeypatch):
    """The robustness run's shift moves seed s to s + shift."""
    monkeypatch.delenv("ATTNKIT_SEED_SHIFT", raising=False)
    plain = next(reversal_batches(0, 8))[1]
    monkeypatch.setenv("ATTNKIT_SEED_SHIFT", "1")
    shifted = next(reversal_batches(0, 8))[1]
    monkeypatch.delenv("ATTNKIT_SEED_SHIFT")
    assert not np.array_equal(plain, shifted)
    assert np.array_equal(shifted, next(reversal_batches(1, 8))[1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=4, min_len=0), "min_len"),
    (dict(batch_size=4, min_len=5, max_len=4), "min_len <= max_len"),
    (dict(batch_size=4, vocab_size=3), "vocab_size"),
])
def test_bad_sizes_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        reversal_batch(0, **kwargs)
    with pytest.raises(ValueError, match=match):
        reversal_batches(0, **kwargs)       # at once, not at the first next()


def test_non_integer_sizes_raise_type_error():
    with pytest.raises(TypeError, match="batch_size"):
        reversal_batch(0, 4.0)
    with pytest.raises(TypeError, match="max_len"):
        reversal_batches(0, 4, max_len=True)
