"""Offline data sets and tokenizers: nothing is downloaded, data come from installed packages.

- :mod:`attnkit.data.text`: tokenizers, ``Vocab``, ``pad_batch``, ``iterate_batches``.
- :mod:`attnkit.data.sentiment`: Rotten Tomatoes critic snippets split by movie.
- :mod:`attnkit.data.translation`: generated date and number-word translation tasks, TSV pairs.
- :mod:`attnkit.data.surnames`: surnames labelled by language (Faker's locale lists).
"""
from .text import (PAD, UNK, BOS, EOS, tokenize_words, tokenize_chars, Vocab, pad_batch,
                   Batch, iterate_batches)
