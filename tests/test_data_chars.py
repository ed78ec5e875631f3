"""Character-level data: the Shakespeare text, vocabulary, contiguous split, windows, n-gram baselines."""
import math

import numpy as np
import pytest

from attnkit.data.chars import (CharVocab, bigram_cross_entropy, char_data, iterate_windows,
                                load_shakespeare, markdown_play_to_text, sample_windows,
                                unigram_cross_entropy)


@pytest.fixture(scope="module")
def plays():
    return char_data()


def test_markdown_play_to_text_keeps_speeches_and_drops_markup():
    md = ("# Hamlet\n\n## ACT I\n\n_FRANCISCO at his post. Enter to him\nBERNARDO_\n\n"
          "**BERNARDO**  \nWho's there?\n\n**FRANCISCO**  \nNay, answer me:  \n"
          "stand, and unfold yourself. __\\[Aside]_  \n\n*Exit,\npursued.*\n\n**GHOST**  \n_Exit_\n")
    assert markdown_play_to_text(md) == ("BERNARDO:\nWho's there?\n\n"
                                         "FRANCISCO:\nNay, answer me:\nstand, and unfold yourself.\n")


def test_the_plays_load_without_markup(plays):
    text = load_shakespeare()
    assert len(text) > 4_000_000                        # 37 plays, far more than Hamlet alone
    assert text.startswith("THESEUS:\nNow, fair Hippolyta")
    for markup in ("**", "#", "\\", "*"):
        assert markup not in text
    assert plays.summary()["vocab_size"] < 80


def test_hamlet_source_also_loads():
    d = char_data(source="hamlet")
    assert d.source == "hamlet" and 150_000 < d.train.size + d.valid.size < 200_000


def test_split_is_contiguous_last_tenth():
    text = "abcdefghij" * 10                                  # 100 characters
    d = char_data(text, min_freq=1)
    assert d.train.size == 90 and d.valid.size == 10
    assert d.vocab.decode_text(d.train) == text[:90]
    assert d.vocab.decode_text(d.valid) == text[90:]


def test_vocab_unknown_and_rare_characters():
    v = CharVocab.from_text("aaaaabbbbbc", min_freq=2)      # 'c' is rare: <unk> even in training
    assert v.tokens[:2] == ["<pad>", "<unk>"] and "c" not in v
    ids = v.encode_text("abcz")
    assert ids.tolist() == [v.index["a"], v.index["b"], v.unk_id, v.unk_id]
    assert v.decode_text(ids) == "ab??"
    with pytest.raises(ValueError, match=r"\['c', 'z'\] are not in the vocabulary"):
        v.encode_text("abcz", strict=True)
    with pytest.raises(TypeError):
        CharVocab.from_text(["a"])


def test_sample_windows_shift_by_one_and_stay_in_range():
    ids = np.arange(50, dtype=np.int64)
    stream = sample_windows(ids, context=8, batch_size=16, seed=3)
    seen = set()
    for _ in range(40):
        x, y = next(stream)
        assert x.shape == y.shape == (16, 8)
        assert np.array_equal(y[:, :-1], x[:, 1:])                 # next-token targets
        assert np.array_equal(y[:, -1], x[:, -1] + 1)              # the character after the window
        assert x.min() >= 0 and y.max() <= 49
        seen.update(x[:, 0].tolist())
    assert seen == set(range(50 - 8))                              # every start is drawn
    # seeded: the same seed gives the same batches, another seed others
    a, b = next(sample_windows(ids, 8, 16, seed=3)), next(sample_windows(ids, 8, 16, seed=4))
    assert np.array_equal(a[0], next(sample_windows(ids, 8, 16, seed=3))[0])
    assert not np.array_equal(a[0], b[0])


def test_iterate_windows_covers_the_split_once():
    ids = np.arange(103, dtype=np.int64)
    batches = list(iterate_windows(ids, context=10, batch_size=4))
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.shape == (10, 10)                                     # (103 - 1) // 10 windows
    assert np.array_equal(x.ravel(), np.arange(100)) and np.array_equal(y.ravel(), np.arange(1, 101))
    few = np.concatenate([b[0] for b in iterate_windows(ids, 10, 4, max_windows=3)])
    assert few.shape == (3, 10) and few[0, 0] == 0 and few[-1, 0] == 90


@pytest.mark.parametrize("bad, match", [
    (dict(context=0), "context must be a positive integer"),
    (dict(context=200), "too few for one window"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
])
def test_windows_reject_bad_arguments(bad, match):
    kwargs = dict(context=8, batch_size=2) | bad
    with pytest.raises(ValueError, match=match):
        next(sample_windows(np.arange(50), **kwargs))


def test_ngram_baselines_equal_hand_counts():
    train = np.array([2, 3, 2, 3, 2, 2])
    valid = np.array([2, 3, 3])
    V = 4
    # unigram, add-one: counts (0, 0, 4, 2), N = 6 -> p(3) = 3/10 on the two scored characters
    assert unigram_cross_entropy(train, valid, V) == pytest.approx(-math.log(3 / 10))
    # bigram, add-one: from 2: {3: 2, 2: 1} of 3 -> p(3|2) = 3/7; from 3: {2: 2} of 2 -> p(3|3) = 1/6
    assert bigram_cross_entropy(train, valid, V) == pytest.approx(-(math.log(3 / 7) + math.log(1 / 6)) / 2)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        bigram_cross_entropy(train, valid, V, alpha=0)


def test_bigram_beats_unigram_on_shakespeare(plays):
    V = len(plays.vocab)
    uni = unigram_cross_entropy(plays.train, plays.valid, V)
    bi = bigram_cross_entropy(plays.train, plays.valid, V)
    assert 2.0 < bi < uni - 0.5 < math.log(V)
