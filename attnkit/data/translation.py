"""Translation tasks generated offline, and a reader for tab-separated sentence pairs.

Two generated tasks, both seeded, with train/valid/test sharing no source string:

- ``"dates"``: a date written the way a CLDR locale writes it (Babel, BSD-3), to ISO 8601.
  'Sonntag, 4. Oktober 1959' -> '1959-10-04', '4 de out. de 1959' -> '1959-10-04'.
  Character level on both sides. Locales en_US, en_GB, de_DE, fr_FR, es_ES, it_IT, pt_BR,
  nl_NL; CLDR's full, long and medium formats plus a few custom patterns. Short formats are
  left out: '04/10/59' is 4 October in London and 10 April in New York, and the two-digit
  year hides the century. Every pattern kept has a four-digit year and either a month name or
  German's day.month order, so the source alone determines the answer (checked as we generate).
  Days are drawn uniformly from 1900-01-01 to 2099-12-31.
- ``"numbers"``: English number words (num2words, LGPL) to German number words, word level.
  'twenty - one thousand' -> 'ein und zwanzig tausend'. German writes numbers below a million
  as one compound ('einundzwanzigtausend'); we split compounds into their stems with a regex
  (:func:`split_german_number`), checking that the pieces join back into the word, so the
  model has to reorder ('twenty one' -> 'ein und zwanzig') rather than only map words.
  Range: 0 to 999,999,999, with the number of digits (1 to 9) drawn uniformly and then the
  number uniformly among those with that many digits. Up to 999,999 a tiny seq2seq model
  is ~100% right in 30 s; nine-digit numbers give outputs of up to 17 tokens (English up to
  22) whose middle is easy to get locally right and globally wrong, where beam search can
  beat greedy decoding. The digit-count sampling keeps short numbers in the mix.

Vocabularies and unseen words. Each number (and each date string) appears once, so a word
could end up only in the validation or test split: 'zero' -> 'null' is a single pair, and if it
landed in test, both words would be ``<unk>``, unknown to the model whatever it learned. Two
measures prevent that. The numbers 0 to 99 (``NUMBER_CORE``: every unit, teen and tens word and
every 'ein und zwanzig' pattern) always go to the training split, so valid and test hold only
numbers from 100 up; and both tasks build their vocabularies from the training pairs *plus* the
closed set of tokens the generator can produce (:func:`number_words`, :func:`date_characters`),
so no test token is ever ``<unk>``. A token that only the closed set contributes gets an id but
was never trained on.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ._optional import need
from .text import Vocab, iterate_batches, tokenize_chars, tokenize_words
from ..seeding import make_rng

__all__ = [
    "DATE_LOCALES", "DATE_FORMATS", "format_date_pair", "generate_date_pairs",
    "date_characters", "split_german_number", "number_pair", "draw_numbers",
    "generate_number_pairs", "number_words", "NUMBER_CORE", "split_pairs",
    "TranslationTask", "make_translation_task", "load_tsv_pairs",
]

Pair = tuple[list[str], list[str]]   # (source tokens, target tokens)

DATE_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL")
# CLDR names ("full", "long", "medium") and custom CLDR patterns; never "short" (ambiguous).
DATE_FORMATS = ("full", "long", "medium", "d MMM y", "EEEE, MMMM d, y", "EEE d MMM y")
_FIRST_DAY = datetime.date(1900, 1, 1)
_LAST_DAY = datetime.date(2099, 12, 31)


def _need(module, pip_name):
    """Import a data package or fail with the command that installs it."""
    return need(module, pip_name)


# ----------------------------------------------------------------------------
# dates

def format_date_pair(day: datetime.date, locale: str, fmt: str) -> tuple[str, str]:
    """(the date as ``locale`` writes it with format ``fmt``, its ISO form 'YYYY-MM-DD')."""
    babel_dates = _need("babel.dates", "babel==2.19.0")
    return babel_dates.format_date(day, fmt, locale=locale), day.isoformat()


def generate_date_pairs(n: int, seed: int = 0, locales: Sequence[str] = DATE_LOCALES,
                        formats: Sequence[str] = DATE_FORMATS,
                        origin: dict | None = None) -> list[tuple[str, str]]:
    """``n`` distinct (formatted date, ISO date) string pairs, drawn with ``default_rng(seed)``.

    Each draw picks a day, a locale and a format uniformly; a source string already drawn is
    drawn again (so sources are unique). Raises ValueError if one source string would need two
    different answers (an ambiguous format). If ``origin`` is a dict, it receives
    ``source -> (locale, format)`` of each pair's first draw (en_US and en_GB can write a date
    the same way: the first draw's locale is kept).
    """
    if "short" in formats:
        raise ValueError("the 'short' formats (d/M/yy vs M/d/yy) are ambiguous; leave them out")
    rng = make_rng(seed)
    span = (_LAST_DAY - _FIRST_DAY).days + 1
    pairs: dict[str, str] = {}
    for _ in range(50 * n + 1000):
        if len(pairs) == n:
            break
        day = _FIRST_DAY + datetime.timedelta(days=int(rng.integers(span)))
        locale, fmt = locales[rng.integers(len(locales))], formats[rng.integers(len(formats))]
        src, tgt = format_date_pair(day, locale, fmt)
        if origin is not None and src not in pairs:
            origin[src] = (locale, fmt)
        if pairs.setdefault(src, tgt) != tgt:
            raise ValueError(f"ambiguous date format: {src!r} means {pairs[src]} and {tgt}")
    if len(pairs) < n:
        raise ValueError(f"could only draw {len(pairs)} distinct dates, asked for {n}")
    return list(pairs.items())


def date_characters(locales: Sequence[str] = DATE_LOCALES,
                    formats: Sequence[str] = DATE_FORMATS) -> list[str]:
    """Every character the date task can produce: all month and weekday names in every locale
    and format (12 months and 7 consecutive days of 2001 cover them), the digits and '-'."""
    days = [datetime.date(2001, m, 1) for m in range(1, 13)]
    days += [datetime.date(2001, 1, 1) + datetime.timedelta(days=i) for i in range(7)]
    days += [datetime.date(2099, 12, 28)]                     # every digit in day and year
    chars = set("0123456789-")
    for day in days:
        for loc in locales:
            for fmt in formats:
                chars.update(format_date_pair(day, loc, fmt)[0])
    return sorted(chars)


# ----------------------------------------------------------------------------
# number words

# German number stems, longest first so the regex takes 'sechzehn' before 'sechs' and 'eins'
# before 'ein'. Teens stay whole (as English 'thirteen' does): 'sechzehn' is not 'sechs'+'zehn'.
_GERMAN_STEMS = sorted(
    "null ein eins eine zwei drei vier fünf sechs sieben acht neun zehn elf zwölf "
    "dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn "
    "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig "
    "hundert tausend und Million Millionen Milliarde Milliarden".split(), key=lambda s: (-len(s), s))
_GERMAN_STEM_RE = re.compile("|".join(_GERMAN_STEMS))


def split_german_number(text: str) -> list[str]:
    """Split German number words into stems: 'dreihunderteinundzwanzig' -> 'drei hundert ein und zwanzig'.

    Words (separated by spaces) are cut left to right into the longest matching stem. Raises
    ValueError if a word does not split completely into stems, so ``"".join`` of a word's pieces
    always gives the word back (the split is lossless).
    """
    tokens = []
    for word in text.split():
        pos, pieces = 0, []
        while pos < len(word):
            m = _GERMAN_STEM_RE.match(word, pos)
            if m is None:
                raise ValueError(f"cannot split German number word {word!r} at {word[pos:]!r}")
            pieces.append(m.group())
            pos = m.end()
        if "".join(pieces) != word:          # cannot happen with match(); kept as the stated check
            raise ValueError(f"split of {word!r} is not lossless: {pieces}")
        tokens += pieces
    return tokens


def number_pair(n: int) -> Pair:
    """(English words tokenized by ``tokenize_words``, German words split into stems) for ``n``.

    >>> number_pair(21)
    (['twenty', '-', 'one'], ['ein', 'und', 'zwanzig'])
    """
    num2words = _need("num2words", "num2words==0.5.14").num2words
    return tokenize_words(num2words(n, lang="en")), split_german_number(num2words(n, lang="de"))


def draw_numbers(n: int, seed: int = 0, max_digits: int = 9) -> list[int]:
    """``n`` distinct integers drawn with ``default_rng(seed)``, in the order first drawn.

    The digit count is uniform in 1..``max_digits`` and the number uniform among numbers with
    that many digits (0 counts as one digit); a number drawn again is skipped.
    """
    if not 1 <= max_digits <= 12:
        raise ValueError(f"max_digits must be in 1..12, got {max_digits}")
    if n > 10 ** max_digits:
        raise ValueError(f"only {10 ** max_digits} numbers have at most {max_digits} digits; asked for {n}")
    rng = make_rng(seed)
    seen: dict[int, None] = {}
    while len(seen) < n:
        d = int(rng.integers(1, max_digits + 1))
        low = 0 if d == 1 else 10 ** (d - 1)
        seen.setdefault(int(rng.integers(low, 10 ** d)), None)
    return list(seen)


def generate_number_pairs(n: int, seed: int = 0, max_digits: int = 9) -> list[Pair]:
    """``n`` distinct numbers as (English tokens, German tokens), drawn as :func:`draw_numbers` does."""
    return [number_pair(k) for k in draw_numbers(n, seed, max_digits)]


# Always in the training split of the numbers task: every word below a hundred, and every
# 'unit und tens' reordering, is seen in training at least once.
NUMBER_CORE = range(100)


def number_words(max_digits: int = 9) -> tuple[list[str], list[str]]:
    """The closed sets of (English, German) tokens that numbers below 10**max_digits produce.

    Numbers are written three digits at a time, so the words of 0..999 and of a few numbers
    with a 1 or a 2 before each scale word ('one million' / 'eine Million', 'two million' /
    'zwei Millionen', 'one thousand and one' / 'ein tausend eins') cover them all.
    """
    numbers = list(range(1000))
    for power in range(3, max_digits, 3):
        numbers += [10 ** power, 2 * 10 ** power, 10 ** power + 1, 21 * 10 ** power + 121]
    english, german = set(), set()
    for k in numbers:
        en, de = number_pair(k)
        english.update(en)
        german.update(de)
    return sorted(english), sorted(german)


# ----------------------------------------------------------------------------
# splits and tasks

def split_pairs(pairs: Sequence, n_train: int, n_valid: int, n_test: int, seed: int = 0,
                key: Callable = lambda p: tuple(p[0]) if isinstance(p[0], list) else p[0]):
    """Shuffle pairs into train/valid/test so that no source appears in two parts.

    Pairs are grouped by ``key`` (the source), groups are shuffled with ``default_rng(seed)``
    and dealt out in order until each part is full (a part may end a few pairs over its size if
    one source has several translations). Raises ValueError if there are too few pairs.
    """
    groups: dict = {}
    for p in pairs:
        groups.setdefault(key(p), []).append(p)
    keys = list(groups)
    order = make_rng(seed).permutation(len(keys))
    parts, sizes, k = ([], [], []), (n_train, n_valid, n_test), 0
    for i in order:
        while k < 3 and len(parts[k]) >= sizes[k]:
            k += 1
        if k == 3:
            break
        parts[k].extend(groups[keys[i]])
    if any(len(p) < s for p, s in zip(parts, sizes)):
        raise ValueError(f"{len(pairs)} pairs in {len(keys)} distinct sources are too few for "
                         f"{n_train}/{n_valid}/{n_test}")
    return parts


@dataclass
class TranslationTask:
    """A translation task: tokenized splits, vocabularies built on train, and how to join tokens."""
    name: str
    train: list[Pair]     # (source tokens, target tokens) pairs
    valid: list[Pair]
    test: list[Pair]
    src_vocab: Vocab      # built from train sources (<pad>, <unk>, <bos>, <eos> first)
    tgt_vocab: Vocab      # built from train targets
    src_sep: str          # "" for characters, " " for words: src_sep.join(tokens) is readable text
    tgt_sep: str
    origin: dict = field(default_factory=dict)   # dates: source text -> (locale, format)

    def encode(self, pairs: Sequence[Pair]) -> tuple[list[list[int]], list[list[int]]]:
        """Source ids (with a final ``<eos>``) and target ids (``<bos>`` ... ``<eos>``)."""
        src = [self.src_vocab.encode(s, add_eos=True) for s, _ in pairs]
        tgt = [self.tgt_vocab.encode(t, add_bos=True, add_eos=True) for _, t in pairs]
        return src, tgt

    def decode_target(self, ids) -> str:
        """Target ids (e.g. a decoder's output) as text, stopping at ``<eos>``."""
        return self.tgt_sep.join(self.tgt_vocab.decode(ids))

    def batches(self, batch_size: int, rng, pairs: Sequence[Pair] | None = None,
                bucket: bool = True) -> Iterator:
        """An endless stream of teacher-forcing batches ``((src, tgt_in), tgt_out)`` for ``train``.

        src (B, S): source ids ending in ``<eos>``; tgt_in (B, T): ``<bos>`` y_1 ... y_n, the
        decoder's inputs; tgt_out (B, T): y_1 ... y_n ``<eos>``, the tokens to predict, i.e. the
        target shifted left by one. Padding is 0 (``<pad>``). pairs: the training split unless
        given; rng: a seeded Generator (or int seed), reused across epochs so every epoch has a
        new, reproducible order; bucket: group similar lengths (less padding, see
        :func:`~attnkit.data.text.iterate_batches`).
        """
        src, tgt = self.encode(self.train if pairs is None else pairs)
        rng = make_rng(rng)
        while True:
            for b in iterate_batches(src, batch_size, targets=tgt, rng=rng, bucket=bucket):
                yield (b.x, b.y[:, :-1]), b.y[:, 1:]          # (B, S), (B, T), (B, T)


def make_translation_task(name: str, n_train: int = 20000, n_valid: int = 1000,
                          n_test: int = 1000, seed: int = 0) -> TranslationTask:
    """Generate the ``"dates"`` or ``"numbers"`` task with disjoint splits and vocabularies.

    The same seed gives the same data. For "numbers", the 100 numbers of ``NUMBER_CORE``
    (0 to 99) are part of the training split (so ``n_train >= 100``) and the other splits
    hold numbers from 100 up. Vocabularies: the training tokens, most frequent first, then
    the tokens of the task's closed set never seen in training (:func:`number_words`,
    :func:`date_characters`), so that no valid or test token is ``<unk>``.
    """
    total = n_train + n_valid + n_test
    if name == "dates":
        origin: dict = {}
        strings = generate_date_pairs(total, seed, origin=origin)
        pairs = [(tokenize_chars(s), tokenize_chars(t)) for s, t in strings]
        train, valid, test = split_pairs(pairs, n_train, n_valid, n_test, seed)
        closed_src, closed_tgt = date_characters(), list("0123456789-")
        seps = ("", "")
    elif name == "numbers":
        core = list(NUMBER_CORE)
        if n_train < len(core):
            raise ValueError(f"the numbers task puts 0..{core[-1]} in the training split: "
                             f"n_train must be at least {len(core)}, got {n_train}")
        # draw 100 extra numbers: after removing the core, at least `total` remain
        rest = [k for k in draw_numbers(total + len(core), seed) if k > core[-1]]
        pairs = [number_pair(k) for k in rest[:total - len(core)]]
        train, valid, test = split_pairs(pairs, n_train - len(core), n_valid, n_test, seed)
        train = [number_pair(k) for k in core] + train
        order = make_rng(seed).permutation(len(train))
        train = [train[i] for i in order]            # the core spread through the list
        closed_src, closed_tgt = number_words()
        seps = (" ", " ")
        origin = {}
    else:
        raise ValueError(f"unknown translation task {name!r}: choose 'dates' or 'numbers'")
    src_vocab = _vocab_with_closed_set([s for s, _ in train], closed_src)
    tgt_vocab = _vocab_with_closed_set([t for _, t in train], closed_tgt)
    return TranslationTask(name, train, valid, test, src_vocab, tgt_vocab, *seps, origin)


def _vocab_with_closed_set(texts, closed):
    """Vocab.build on the training texts, then the closed-set tokens they lack, in sorted order."""
    vocab = Vocab.build(texts, seq2seq=True)
    return Vocab(vocab.tokens + [t for t in sorted(closed) if t not in vocab])


# ----------------------------------------------------------------------------
# sentence pairs from a file

def load_tsv_pairs(path, src_col: int = 0, tgt_col: int = 1,
                   max_pairs: int | None = None) -> tuple[list[tuple[str, str]], int]:
    """Read tab-separated sentence pairs, e.g. a Tatoeba/ManyThings ``deu.txt``.

    Each line is "source<TAB>target[<TAB>more columns...]" ("Go.\\tGeh.\\tCC-BY 2.0 ..."): extra
    columns are ignored. Blank lines, lines with too few columns and lines with an empty source
    or target are skipped and counted. Returns ``(pairs, n_skipped)`` with pairs as stripped
    strings, at most ``max_pairs`` of them. Tokenize and split them yourself, e.g. with
    ``tokenize_words`` and :func:`split_pairs` (which keeps repeated sources on one side).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no such file: {path}. Sentence pairs are not bundled: download e.g. deu-eng.zip from "
            f"https://www.manythings.org/anki/ (Tatoeba, CC-BY 2.0), unzip it and pass deu.txt")
    if min(src_col, tgt_col) < 0 or src_col == tgt_col:
        raise ValueError(f"src_col and tgt_col must be two different column numbers >= 0, "
                         f"got {src_col} and {tgt_col}")
    pairs, skipped = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if max_pairs is not None and len(pairs) >= max_pairs:
                break
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) <= max(src_col, tgt_col):
                skipped += 1
                continue
            src, tgt = cols[src_col].strip(), cols[tgt_col].strip()
            if not src or not tgt:
                skipped += 1
                continue
            pairs.append((src, tgt))
    return pairs, skipped
