"""Training recipes shared by the application chapters.

"Machine translation: model and decoding" (chapter 16) builds this recipe step by step, explains
every choice, and asserts that it agrees with the functions here; "Evaluating translations"
(chapter 17) calls them to train its own models, so that each notebook runs on its own without
copying the other's code.
"""
import itertools

from .data.text import pad_batch
from .decoding import beam_search, greedy_decode
from .losses import CrossEntropyLoss
from .models import Transformer, TransformerConfig
from .optim import Adam, cosine_schedule
from .train import evaluate, train

__all__ = ["make_translator", "train_translator", "source_batch", "translate"]


def make_translator(task, seed=0):
    """A small post-LN encoder-decoder Transformer sized for a TranslationTask's vocabularies.

    d_model 64, 4 heads, 2 encoder and 2 decoder layers, d_ff 256, dropout 0.1, separate source
    and target embeddings; the seed fixes the initial weights and the dropout masks.
    """
    config = TransformerConfig(
        src_vocab_size=len(task.src_vocab), tgt_vocab_size=len(task.tgt_vocab),
        d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
        d_ff=256, max_len=128, dropout=0.1, seed=seed)
    return Transformer(config)


def train_translator(task, steps, seed=0, batch_size=64, peak_lr=3e-3, label_smoothing=0.1,
                     eval_every=None, progress=True):
    """Train make_translator(task, seed) with teacher forcing; returns (model in eval mode, History).

    Adam(0.9, 0.98, eps 1e-9) with linear warmup over the first 10% of the steps and cosine
    decay from peak_lr, gradient clipping at global norm 1, cross-entropy with label smoothing
    and padding (id 0) ignored. With eval_every, the teacher-forced loss on the first five
    batches of 100 validation pairs is recorded every eval_every steps (it does not change the
    training run).
    """
    model = make_translator(task, seed)
    loss_fn = CrossEntropyLoss(ignore_index=0, label_smoothing=label_smoothing)
    optimizer = Adam(model.parameters(), betas=(0.9, 0.98), eps=1e-9)
    eval_fn = None
    if eval_every:
        valid = list(itertools.islice(task.batches(100, rng=0, pairs=task.valid, bucket=False), 5))
        eval_fn = lambda m: evaluate(m, loss_fn, valid)  # noqa: E731
    history = train(model, loss_fn, optimizer, task.batches(batch_size, rng=seed),
                    num_steps=steps, clip_norm=1.0,
                    schedule=cosine_schedule(peak_lr, steps // 10, steps),
                    eval_every=eval_every, eval_fn=eval_fn, progress=progress)
    model.eval()
    return model, history


def source_batch(task, pairs):
    """Padded source ids (B, S) int64 of a list of (source, target) pairs, padded with the
    source vocabulary's pad_id to the longest source."""
    src_ids, _ = task.encode(pairs)
    return pad_batch(src_ids, task.src_vocab.pad_id)[0]                 # (B, S)


def translate(model, task, pairs, beam_size=None, max_len=40, **kwargs):
    """Decode the sources of pairs: greedy search (beam_size None) or beam search.

    Returns (outputs, tokens, scores): outputs a list of B target token lists (cut at EOS,
    special tokens removed), tokens (B, L) and scores (B,) as greedy_decode / beam_search
    return them. kwargs go to the search (length_penalty, use_cache, ...).
    """
    src = source_batch(task, pairs)                                      # (B, S)
    bos, eos = task.tgt_vocab.bos_id, task.tgt_vocab.eos_id
    if beam_size is None:
        tokens, scores = greedy_decode(model, src, bos, eos, max_len, **kwargs)
    else:
        tokens, scores = beam_search(model, src, bos, eos, beam_size, max_len, **kwargs)
    return [task.tgt_vocab.decode(row) for row in tokens], tokens, scores
