"""Offline data sets and tokenizers: nothing is downloaded, data come from installed packages.

- :mod:`attnkit.data.text`: tokenizers, ``Vocab``, ``pad_batch``, ``iterate_batches``.
- :mod:`attnkit.data.sentiment`: Rotten Tomatoes critic snippets split by movie.
- :mod:`attnkit.data.translation`: generated date and number-word translation tasks, TSV pairs.
- :mod:`attnkit.data.surnames`: surnames labelled by language (Faker's locale lists).
- :mod:`attnkit.data.toy`: synthetic tasks with a known answer (sequence reversal, ch. 13).
"""
from .text import (PAD, UNK, BOS, EOS, tokenize_words, tokenize_chars, Vocab, pad_batch,
                   Batch, iterate_batches)
from .sentiment import (SentimentData, SentimentSplit, load_rotten_tomatoes, rotten_tomatoes_split,
                        split_by_movie, split_random, load_polarity_files, bag_of_words_baseline)
from .translation import (TranslationTask, make_translation_task, load_tsv_pairs, split_pairs,
                          split_german_number, generate_date_pairs, generate_number_pairs)
from .surnames import SurnameData, SurnameSplit, load_surnames, char_ngram_baseline
from .toy import reversal_batch, reversal_batches
