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

__all__ = ["SKIPPED_LOCALES", "surname_lists", "SurnameData", "SurnameSplit", "load_surnames",
           "char_ngram_baseline"]

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
                  fractions=(0.8, 0.1, 0.1)) -> SurnameSplit:
    """Surnames by language, split per class 80/10/10 with ``np.random.default_rng(seed)``.

    Surnames listed under two or more languages are dropped; languages with fewer than
    ``min_per_class`` remaining surnames are dropped. Each class is shuffled and cut by
    ``fractions`` separately (a stratified split), so every part has the same class mix.
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
        order = rng.permutation(len(names))
        a = int(round(fractions[0] * len(names)))
        b = a + int(round(fractions[1] * len(names)))
        for k, idx in enumerate((order[:a], order[a:b], order[b:])):
            parts[k].extend((names[i], label) for i in idx)
    data = []
    for part in parts:
        part = [part[i] for i in rng.permutation(len(part))]   # mix the classes
        data.append(SurnameData([n for n, _ in part], np.array([y for _, y in part], dtype=np.int64),
                                languages))
    return SurnameSplit(*data, languages)


def char_ngram_baseline(split: SurnameSplit, *, ngram_range=(1, 4), C: float = 10.0) -> dict:
    """A classical baseline: TF-IDF of character 1-4-grams + logistic regression (scikit-learn).

    Names are lowercased and padded with spaces (``analyzer="char_wb"``), so n-grams at the
    start and end of a name ('-ov ', ' mc') count as such; n-grams seen once in training are
    dropped. The saga solver with a loose tolerance fits in seconds (lbfgs takes minutes here)
    and is seeded. Fits on train; reports accuracies and the majority-class accuracy on test.
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError("char_ngram_baseline needs scikit-learn: pip install scikit-learn==1.9.1, "
                          "or run make") from None
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(ngram_range), lowercase=True,
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
