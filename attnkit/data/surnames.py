"""Surnames labelled by language, from Faker's per-locale name lists (offline).

Faker (MIT) ships surname lists for ~85 locales in ``faker.providers.person.<locale>.Provider``
(attributes such as ``last_names``, ``last_names_male``, ``unisex_last_names``). We merge the
locales of one language (de_AT, de_CH, de_DE, ... -> German), romanize non-Latin scripts with
``anyascii`` ('Смирнов' -> 'Smirnov', '王' -> 'Wang'; Japanese uses Faker's own romaji),
and keep a language when it has at least ``min_per_class`` surnames.

Left out, because their lists are not surnames of their language: is_IS (generated
patronymics), zu_ZA (its "surnames" are first names), and the English- or French-language
locales of other countries (en_IN, en_KE, en_NG, en_PK, en_TH, fr_DZ), whose names come from
other languages. A surname found under two languages (romanized 'Abramov' is Estonian-Russian
and Russian) is ambiguous and dropped. The result is a character-level classification task in
the style of the PyTorch "classifying names" tutorial, with a stratified, seeded split.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..seeding import make_rng, shifted

__all__ = ["SKIPPED_LOCALES", "GENDER_ENDINGS", "surname_lists", "variant_pairs", "variant_groups",
           "SurnameData", "SurnameSplit", "load_surnames", "char_ngrams", "char_ngram_baseline"]

SKIPPED_LOCALES = frozenset({"is_IS", "zu_ZA", "en_IN", "en_KE", "en_NG", "en_PK", "en_TH", "fr_DZ"})


def _need(module, pip_name):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"the surnames data set needs {pip_name}: pip install {pip_name}, "
                          "or run make") from None


def _locale_surnames(provider, locale) -> set[str]:
    """Every surname a Faker person provider lists, in its own script."""
    if locale == "ja_JP":     # kanji would be romanized with Chinese readings: use Faker's romaji
        return {romaji for _, _, romaji in provider.last_name_pairs}
    names = set()
    for attr in dir(provider):
        if attr.startswith("_") or "last_name" not in attr:
            continue
        value = getattr(provider, attr)
        if isinstance(value, (list, tuple, dict)):      # dicts map name -> sampling weight
            names.update(v for v in value if isinstance(v, str))
    names.discard("Doe")      # the placeholder of locales without a real list (es, pl_PL, is_IS)
    return names


def surname_lists() -> dict[str, set[str]]:
    """Romanized surnames per language (English name of the language -> set), before filtering."""
    _need("faker", "Faker==40.63.0")
    anyascii = _need("anyascii", "anyascii==0.3.3").anyascii
    babel = _need("babel", "babel==2.19.0")
    person = importlib.import_module("faker.providers.person")
    by_language: dict[str, set[str]] = {}
    for info in sorted(pkgutil.iter_modules(person.__path__), key=lambda m: m.name):
        locale = info.name
        if locale in SKIPPED_LOCALES:
            continue
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        language = babel.Locale.parse(locale.split("_")[0]).english_name
        romanized = {" ".join(anyascii(n).split()) for n in _locale_surnames(provider, locale)}
        by_language.setdefault(language, set()).update(n for n in romanized if n)
    return by_language


# (masculine, feminine) endings: how Slavic, Baltic and Greek surnames mark a woman's form of
# a man's name (Kowalski/Kowalska, Ivanov/Ivanova, Novotny/Novotna, Kovac/Kovacova,
# Papadakis/Papadaki, Papadopoulos/Papadopoulou, Liepins/Liepina).
GENDER_ENDINGS = (("ski", "ska"), ("cki", "cka"), ("sky", "ska"), ("ov", "ova"), ("ev", "eva"),
                  ("in", "ina"), ("y", "a"), ("", "ova"), ("is", "i"), ("os", "ou"), ("s", "a"))


def variant_pairs(names, labels, endings=GENDER_ENDINGS, min_stem=3):
    """Pairs (i, j) of positions whose names are gender forms of one surname in one language.

    Names i and j are variants when they have the same label and, for some (m, f) in
    ``endings``, name i is stem + m and name j is stem + f with a stem of at least ``min_stem``
    characters (Kowalski and Kowalska, Tatar and Tatarova). The rule is deliberately simple: it
    also pairs a few unrelated names that happen to end so (English Mears and Meara), which only
    makes a split that keeps pairs together a little more cautious.
    """
    labels = np.asarray(labels)
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} labels")
    where = {(n, int(y)): i for i, (n, y) in enumerate(zip(names, labels))}
    pairs = set()
    for (name, y), i in where.items():
        for m, f in endings:
            if name.endswith(m) and len(name) - len(m) >= min_stem:
                j = where.get((name[: len(name) - len(m)] + f, y))
                if j is not None and j != i:
                    pairs.add((i, j))
    return sorted(pairs)


def variant_groups(names, labels, endings=GENDER_ENDINGS, min_stem=3) -> np.ndarray:
    """Group id (N,) of every name: names linked by :func:`variant_pairs` share one group."""
    parent = list(range(len(names)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in variant_pairs(names, labels, endings, min_stem):
        parent[root(i)] = root(j)
    _, group = np.unique([root(i) for i in range(len(names))], return_inverse=True)
    return group.astype(np.int64)


@dataclass
class SurnameData:
    """Surnames with integer labels indexing ``languages``."""
    names: list[str]          # N romanized surnames
    labels: np.ndarray        # (N,) int64 class ids
    languages: list[str]      # class id -> language name (sorted alphabetically)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class SurnameSplit:
    """Stratified train / validation / test parts of the surname data."""
    train: SurnameData
    valid: SurnameData
    test: SurnameData
    languages: list[str]

    def class_counts(self) -> dict[str, int]:
        """Surnames per language over all three parts, largest first."""
        counts = Counter()
        for part in (self.train, self.valid, self.test):
            counts.update(self.languages[i] for i in part.labels)
        return dict(counts.most_common())


def load_surnames(seed: int = 0, min_per_class: int = 100,
                  fractions=(0.8, 0.1, 0.1), group_variants: bool = True) -> SurnameSplit:
    """Surnames by language, split per class 80/10/10 with ``make_rng(seed)``.

    Surnames listed under two or more languages are dropped; languages with fewer than
    ``min_per_class`` remaining surnames are dropped. Each class is shuffled and cut by
    ``fractions`` separately (a stratified split), so every part has nearly the same class mix.
    With ``group_variants`` (the default), the gender forms of one surname
    (:func:`variant_groups`: Kowalski and Kowalska) are cut as one unit and land in the same
    part, so a test name's other form is never in training; False splits names one by one.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    lists = surname_lists()
    seen = Counter(n for names in lists.values() for n in names)
    kept = {lang: sorted(n for n in names if seen[n] == 1) for lang, names in lists.items()}
    languages = sorted(lang for lang, names in kept.items() if len(names) >= min_per_class)
    if not languages:
        raise ValueError(f"no language has {min_per_class} surnames; lower min_per_class")
    rng = make_rng(seed)
    parts = ([], [], [])
    for label, lang in enumerate(languages):
        names = kept[lang]
        if group_variants:
            group = variant_groups(names, np.zeros(len(names), dtype=np.int64))      # (n,)
        else:
            group = np.arange(len(names))
        members = [[] for _ in range(group.max() + 1)]
        for i, g in enumerate(group):
            members[g].append(i)
        order = rng.permutation(len(members))
        # cut where the running count of names passes 80% and 90%: parts of the given
        # fractions of names, whole groups in each
        ends = np.cumsum([len(members[g]) for g in order])                           # (groups,)
        n_a = int(round(fractions[0] * len(names)))
        n_b = n_a + int(round(fractions[1] * len(names)))
        a = int(np.searchsorted(ends, n_a, side="right"))
        b = int(np.searchsorted(ends, n_b, side="right"))
        for k, gs in enumerate((order[:a], order[a:b], order[b:])):
            parts[k].extend((names[i], label) for g in gs for i in members[g])
    data = []
    for part in parts:
        part = [part[i] for i in rng.permutation(len(part))]   # mix the classes
        data.append(SurnameData([n for n, _ in part], np.array([y for _, y in part], dtype=np.int64),
                                languages))
    return SurnameSplit(*data, languages)


def char_ngrams(name: str, n: int, boundary: str = " ") -> list[str]:
    """The character n-grams of ``name`` with a boundary marker at both ends of every word.

    'Van Dyk' with n = 3 -> [' Va', 'Van', 'an ', ' Dy', 'Dyk', 'yk ']: each word (split on
    whitespace) is read as boundary + word + boundary, so beginnings and endings are n-grams of
    their own; a marked word shorter than n has none. Over n = 1..k these are the n-grams of
    scikit-learn's ``analyzer="char_wb"`` with ``ngram_range=(1, k)`` (without lower-casing).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    grams = []
    for word in name.split():
        w = boundary + word + boundary
        grams.extend(w[i: i + n] for i in range(len(w) - n + 1))
    return grams


def char_ngram_baseline(split: SurnameSplit, *, ngram_range=(1, 4), C: float = 10.0,
                        lowercase: bool = True) -> dict:
    """A classical baseline: TF-IDF of character 1-4-grams + logistic regression (scikit-learn).

    Names are padded with spaces (``analyzer="char_wb"``), so n-grams at the start and end of
    a name ('-ov ', ' mc') count as such, and lower-cased unless ``lowercase=False``; n-grams
    seen once in training are dropped. The saga solver with a loose tolerance fits in seconds
    (lbfgs takes minutes here)
    and is seeded. Fits on train; reports accuracies and the majority-class accuracy on test.
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError("char_ngram_baseline needs scikit-learn: pip install scikit-learn==1.9.1, "
                          "or run make") from None
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(ngram_range), lowercase=lowercase,
                          sublinear_tf=True, min_df=2)
    X = vec.fit_transform(split.train.names)
    clf = LogisticRegression(C=C, solver="saga", max_iter=200, tol=1e-3, random_state=shifted(0))
    clf.fit(X, split.train.labels)

    def acc(d):
        return float((clf.predict(vec.transform(d.names)) == d.labels).mean())

    majority = int(np.bincount(split.train.labels).argmax())
    return {"accuracy": acc(split.test), "valid_accuracy": acc(split.valid),
            "train_accuracy": acc(split.train),
            "majority_accuracy": float((split.test.labels == majority).mean()),
            "n_classes": len(split.languages), "n_train": len(split.train), "n_test": len(split.test)}
