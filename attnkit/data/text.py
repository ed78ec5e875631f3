"""Text basics: tokenizers, a vocabulary, padding and a batch iterator.

Dimension names used in shape comments:

    B    batch size
    T    padded sequence length (the longest sequence in the batch, or ``max_len``)

Ids are int64. The padding token ``<pad>`` always has id 0, so a padding mask is simply
``ids != 0`` (or ``np.arange(T) < lengths[:, None]``).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..seeding import make_rng

__all__ = [
    "PAD", "UNK", "BOS", "EOS", "tokenize_words", "tokenize_chars", "Vocab",
    "pad_batch", "Batch", "iterate_batches",
]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"

# A word is a run of letters/digits/underscores, possibly with inner apostrophes ("don't",
# "o'brien"); any other non-space character (punctuation, hyphens, quotes) is a token by itself.
# The "\w" classes are Unicode-aware, so "café" and "zwölf" stay single words.
_WORD_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize_words(text: str) -> list[str]:
    """Lowercase ``text`` and split it into words and single punctuation marks.

    >>> tokenize_words("It's a low-wattage, crass endeavor!")
    ["it's", 'a', 'low', '-', 'wattage', ',', 'crass', 'endeavor', '!']

    Whitespace is dropped, so ``" ".join(tokens)`` is a normalized version of the text,
    not the original.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize_words expects a str, got {type(text).__name__}")
    return _WORD_RE.findall(text.lower())


def tokenize_chars(text: str) -> list[str]:
    """Split ``text`` into characters (spaces included, case kept): ``"".join(tokens) == text``."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize_chars expects a str, got {type(text).__name__}")
    return list(text)


class Vocab:
    """A token <-> id mapping with special tokens first (``<pad>`` = 0, ``<unk>`` = 1, ...)."""

    def __init__(self, tokens: Sequence[str]):
        """Make a vocabulary from its id-ordered token list (``tokens[i]`` has id i).

        ``tokens[0]`` must be ``<pad>`` and ``<unk>`` must be present. Use :meth:`build` to
        count tokens in training texts; use this constructor to restore a saved ``vocab.tokens``.
        """
        tokens = list(tokens)
        if not tokens or tokens[0] != PAD:
            raise ValueError(f"tokens[0] must be {PAD!r} (id 0 is padding), got {tokens[:1]}")
        if UNK not in tokens:
            raise ValueError(f"the vocabulary needs an {UNK!r} token for unseen words")
        if len(set(tokens)) != len(tokens):
            dup = [t for t, c in Counter(tokens).items() if c > 1]
            raise ValueError(f"duplicate tokens in vocabulary: {dup[:10]}")
        self.tokens = tokens                                     # id -> token
        self.index = {t: i for i, t in enumerate(tokens)}        # token -> id
        self.pad_id = 0
        self.unk_id = self.index[UNK]
        self.bos_id = self.index.get(BOS)                        # None without seq2seq specials
        self.eos_id = self.index.get(EOS)
        self.special_ids = frozenset(self.index[t] for t in (PAD, UNK, BOS, EOS) if t in self.index)

    @classmethod
    def build(cls, tokenized_texts: Iterable[Sequence[str]], *, min_freq: int = 1,
              max_size: int | None = None, seq2seq: bool = False) -> "Vocab":
        """Count tokens in training texts (lists of tokens) and keep the frequent ones.

        Build it from the training split only, so validation and test words the model never saw
        map to ``<unk>`` as they would in use. Specials come first: ``<pad>`` 0, ``<unk>`` 1 and,
        with ``seq2seq=True``, ``<bos>`` 2 and ``<eos>`` 3. Then tokens seen at least ``min_freq``
        times, most frequent first, ties in alphabetical order (so the ids are deterministic);
        ``max_size`` caps the total size, specials included.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        specials = [PAD, UNK] + ([BOS, EOS] if seq2seq else [])
        if max_size is not None and max_size < len(specials):
            raise ValueError(f"max_size={max_size} leaves no room for the {len(specials)} special tokens")
        counts = Counter()
        for toks in tokenized_texts:
            if isinstance(toks, str):
                raise TypeError("Vocab.build expects tokenized texts (lists of tokens), got a str: "
                                "tokenize first, e.g. Vocab.build(tokenize_words(t) for t in texts)")
            counts.update(toks)
        for s in specials:
            counts.pop(s, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(specials)]
        return cls(specials + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, first={self.tokens[:8]})"

    def encode(self, tokens: Sequence[str], *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Map tokens to ids (unknown tokens to ``<unk>``), optionally adding ``<bos>``/``<eos>``."""
        if isinstance(tokens, str):
            raise TypeError("encode expects a list of tokens, got a str: tokenize it first")
        if (add_bos and self.bos_id is None) or (add_eos and self.eos_id is None):
            raise ValueError("this vocabulary has no <bos>/<eos>: build it with Vocab.build(..., seq2seq=True)")
        ids = [self.index.get(t, self.unk_id) for t in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], *, strip_special: bool = True) -> list[str]:
        """Map ids back to tokens.

        With ``strip_special`` (the default), reading stops at the first ``<eos>`` and ``<pad>``
        and ``<bos>`` are dropped (``<unk>`` is kept: it is a prediction). Use it on padded rows
        and on decoder outputs alike.
        """
        out = []
        for i in np.asarray(ids).ravel().tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self)})")
            if strip_special:
                if i == self.eos_id:
                    break
                if i == self.pad_id or i == self.bos_id:
                    continue
            out.append(self.tokens[i])
        return out


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0,
              max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack id lists into one right-padded int64 array.

    Inputs: ``sequences``, B lists of ids; ``max_len`` optional: pad (or truncate) every row to
    exactly this length, otherwise T is the longest sequence.
    Returns ``ids`` of shape (B, T) and ``lengths`` of shape (B,) (after truncation), so
    ``np.arange(T) < lengths[:, None]`` marks the real tokens.
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)         # (B,)
    T = int(lengths.max()) if max_len is None else int(max_len)
    if T < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    lengths = np.minimum(lengths, T)                                          # (B,)
    ids = np.full((len(sequences), T), pad_id, dtype=np.int64)               # (B, T)
    for b, s in enumerate(sequences):   # one copy per row: ragged lists cannot be vectorized
        ids[b, : lengths[b]] = s[: lengths[b]]
    return ids, lengths


@dataclass
class Batch:
    """One mini-batch: padded inputs, optional targets, and which examples they are."""
    x: np.ndarray                  # (B, T_x) int64 input ids, right-padded
    x_lengths: np.ndarray          # (B,) real lengths of the rows of x
    y: np.ndarray | None           # (B,) labels, or (B, T_y) padded target ids, or None
    y_lengths: np.ndarray | None   # (B,) real lengths of the rows of y (sequence targets only)
    index: np.ndarray              # (B,) positions of these examples in the data set


def iterate_batches(inputs: Sequence[Sequence[int]], batch_size: int, *,
                    targets: Sequence | np.ndarray | None = None,
                    rng: np.random.Generator | int | None = None, shuffle: bool = True,
                    bucket: bool = False, bucket_batches: int = 20, pad_id: int = 0,
                    drop_last: bool = False) -> Iterator[Batch]:
    """Yield padded mini-batches of ``inputs`` (id lists) and, optionally, ``targets``.

    ``targets`` is either one label per example (array of shape (N,)) or one id list per example
    (seq2seq; padded like the inputs). Shuffling draws from ``rng``: pass one Generator and
    reuse it across epochs to get a new, reproducible order each epoch (an int seed gives the
    same order every call). With ``bucket=True``, the shuffled examples are cut into pools of
    ``bucket_batches * batch_size``, each pool is sorted by input length and cut into batches,
    and the batch order is shuffled: rows of similar length travel together, which cuts padding
    (the price is batches that are less random). Yields :class:`Batch` objects.
    """
    n = len(inputs)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if targets is not None and len(targets) != n:
        raise ValueError(f"inputs ({n}) and targets ({len(targets)}) must have the same length")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs a seeded rng, e.g. rng=np.random.default_rng(0) "
                         "(or pass shuffle=False)")
    rng = make_rng(rng) if shuffle else None
    order = rng.permutation(n) if shuffle else np.arange(n)                  # (N,)

    if bucket:
        lengths = np.array([len(s) for s in inputs])                          # (N,)
        pool = batch_size * bucket_batches
        chunks = []
        for start in range(0, n, pool):
            part = order[start: start + pool]
            part = part[np.argsort(lengths[part], kind="stable")]             # sort the pool by length
            chunks += [part[i: i + batch_size] for i in range(0, len(part), batch_size)]
        if shuffle:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    else:
        chunks = [order[i: i + batch_size] for i in range(0, n, batch_size)]

    # labels (one number per example) or sequences (one id list per example)?
    label_targets = targets is not None and n > 0 and np.ndim(targets[0]) == 0
    if label_targets:
        targets = np.asarray(targets)
    for idx in chunks:
        if drop_last and len(idx) < batch_size:
            continue
        x, x_len = pad_batch([inputs[i] for i in idx], pad_id)                # (B, T_x), (B,)
        y = y_len = None
        if targets is not None:
            if label_targets:
                y = targets[idx]                                              # (B,)
            else:
                y, y_len = pad_batch([targets[i] for i in idx], pad_id)      # (B, T_y), (B,)
        yield Batch(x, x_len, y, y_len, np.asarray(idx))
