"""attnkit.recipes: the helpers chapters 16 and 17 share (source batches, translating pairs)."""
import numpy as np
import pytest

from attnkit.data.translation import make_translation_task
from attnkit.decoding import beam_search, greedy_decode
from attnkit.recipes import make_translator, source_batch, translate


@pytest.fixture(scope="module")
def task():
    return make_translation_task("numbers", n_train=150, n_valid=10, n_test=10, seed=0)


def test_source_batch_pads_every_source_to_the_longest(task):
    pairs = task.test[:5]
    src_ids, _ = task.encode(pairs)
    batch = source_batch(task, pairs)                                   # (B, S)
    S = max(map(len, src_ids))
    assert batch.shape == (5, S) and np.issubdtype(batch.dtype, np.integer)
    for row, ids in zip(batch.tolist(), src_ids):                       # the copy chapters 16-17 had
        assert row == ids + [task.src_vocab.pad_id] * (S - len(ids))


@pytest.mark.parametrize("beam_size", [None, 2])
def test_translate_is_the_search_on_the_source_batch(task, beam_size):
    model = make_translator(task, seed=0).eval()
    pairs = task.test[:4]
    outputs, tokens, scores = translate(model, task, pairs, beam_size=beam_size, max_len=12)
    src, bos, eos = source_batch(task, pairs), task.tgt_vocab.bos_id, task.tgt_vocab.eos_id
    if beam_size is None:
        ref_tokens, ref_scores = greedy_decode(model, src, bos, eos, 12)
    else:
        ref_tokens, ref_scores = beam_search(model, src, bos, eos, beam_size, 12)
    assert np.array_equal(tokens, ref_tokens) and np.array_equal(scores, ref_scores)
    assert outputs == [task.tgt_vocab.decode(row) for row in ref_tokens] and len(outputs) == 4
