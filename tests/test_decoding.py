"""Tests for attnkit.decoding: the key/value cache equals recomputation, greedy and beam search
agree with independent references (a per-sentence loop, exhaustive search), EOS and max_len
handling, batching with source padding, and clear errors."""
import itertools

import numpy as np
import pytest

from attnkit import decoding
from attnkit.decoding import (DecoderCache, beam_search, decoder_step, gnmt_length_penalty, greedy_decode,
                              sequence_log_probs, trim_at_eos)
from attnkit.functional import log_softmax
from attnkit.losses import CrossEntropyLoss
from attnkit.models import Transformer, TransformerConfig
from attnkit.optim import Adam

PAD, BOS, EOS = 0, 1, 2
V = 9                                  # 3 special ids, then 6 symbols 3..8


def make_model(norm_first=False, dtype=np.float64, tie=False, vocab=V, d_model=16, layers=2, seed=0,
               max_len=16, dropout=0.0):
    cfg = TransformerConfig(src_vocab_size=vocab, tgt_vocab_size=vocab, d_model=d_model, num_heads=2,
                            num_encoder_layers=layers, num_decoder_layers=layers, d_ff=2 * d_model,
                            max_len=max_len, dropout=dropout, norm_first=norm_first, tie_embeddings=tie,
                            dtype=dtype, seed=seed)
    return Transformer(cfg).eval()


def reverse_batch(rng, B, lo=2, hi=6):
    """Source: lo..hi random symbols, padded; target: the source reversed, then EOS, padded."""
    lengths = rng.integers(lo, hi + 1, size=B)                       # (B,)
    real = np.arange(hi)[None, :] < lengths[:, None]                 # (B, hi)
    src = np.where(real, rng.integers(3, V, size=(B, hi)), PAD)      # (B, hi)
    tgt = np.full((B, hi + 1), PAD)
    for b in range(B):
        tgt[b, :lengths[b]] = src[b, :lengths[b]][::-1]
        tgt[b, lengths[b]] = EOS
    tgt_in = np.concatenate([np.full((B, 1), BOS), tgt[:, :-1]], axis=1)
    return src, tgt_in, tgt


def train_reverse(norm_first, dtype, steps=150):
    model = make_model(norm_first=norm_first, dtype=dtype, d_model=32, layers=1).train()
    loss_fn, opt = CrossEntropyLoss(ignore_index=PAD), Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        src, tgt_in, tgt = reverse_batch(rng, 32)
        model.zero_grad()
        loss_fn.forward(model.forward(src, tgt_in), tgt)
        model.backward(loss_fn.backward())
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained():
    """Two models briefly trained to reverse a sequence (about 2 s each): post-LN float64, pre-LN float32."""
    return {"post64": train_reverse(False, np.float64), "pre32": train_reverse(True, np.float32)}


@pytest.fixture(scope="module")
def test_batch():
    src, _, tgt = reverse_batch(np.random.default_rng(7), 12)
    return src, tgt


def all_models(trained):
    return [trained["post64"], trained["pre32"], make_model(False), make_model(True),
            make_model(True, np.float32, tie=True)]


# ----------------------------------------------------------------------------
# the cache

@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("tie", [False, True])
def test_decoder_step_equals_full_decode(norm_first, dtype, tol, tie):
    model = make_model(norm_first, dtype, tie=tie)
    rng = np.random.default_rng(0)
    src = rng.integers(3, V, size=(3, 5))
    src[1, 3:] = PAD                                                 # source padding
    memory, src_mask = model.encode(src)
    T = 7
    tgt = rng.integers(0, V, size=(3, T))                            # any ids, PAD included
    full = model.decode(tgt, memory, src_mask, tgt_lengths=np.full(3, T))  # (3, T, V)
    cache = DecoderCache(model, memory, src_mask, capacity=T)
    steps = np.stack([decoder_step(model, cache, tgt[:, t]) for t in range(T)], axis=1)  # (3, T, V)
    assert steps.dtype == dtype and cache.length == T
    assert np.abs(steps - full).max() < tol * np.abs(full).max()


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_cross_attention_weights_equal_full_decode(norm_first):
    model = make_model(norm_first)
    rng = np.random.default_rng(1)
    src = rng.integers(3, V, size=(2, 5))
    src[0, 4:] = PAD
    memory, src_mask = model.encode(src)
    tgt = rng.integers(3, V, size=(2, 4))
    model.decode(tgt, memory, src_mask)
    full = model.attention_weights()["decoder_cross"]                # per layer (2, h, 4, 5)
    cache = DecoderCache(model, memory, src_mask, capacity=6, keep_cross_weights=True)
    for t in range(4):
        decoder_step(model, cache, tgt[:, t])
    got = cache.cross_attention_weights()                            # per layer (2, h, 4, 5)
    assert len(got) == len(full)
    for g, f in zip(got, full):
        assert g.shape == f.shape
        np.testing.assert_allclose(g, f, rtol=0, atol=1e-12)
    assert np.all(got[0][0, :, :, 4] == 0)                           # the padded source position
    with pytest.raises(ValueError, match="keep_cross_weights"):
        DecoderCache(model, memory, src_mask, capacity=6).cross_attention_weights()


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_prefill_then_steps_equals_full_decode(norm_first):
    """decode(cache=...) on several positions at once (prefill, with the causal mask at the cache's
    offset), then one position at a time, gives the logits of the whole prefix decoded at once."""
    model = make_model(norm_first)
    rng = np.random.default_rng(2)
    memory, src_mask = model.encode(rng.integers(3, V, size=(2, 5)))
    tgt = rng.integers(3, V, size=(2, 7))
    full = model.decode(tgt, memory, src_mask)                       # (2, 7, V)
    cache = model.make_cache(memory, src_mask, capacity=8)
    first = model.decode(tgt[:, :4], memory, src_mask, cache=cache)  # (2, 4, V) positions 0..3
    second = model.decode(tgt[:, 4:6], memory, src_mask, cache=cache)  # (2, 2, V) positions 4, 5
    last = decoder_step(model, cache, tgt[:, 6])                     # (2, V) position 6
    got = np.concatenate([first, second, last[:, None]], axis=1)     # (2, 7, V)
    np.testing.assert_allclose(got, full, rtol=0, atol=1e-10)
    assert cache.length == 7
    with pytest.raises(ValueError, match="cache is full"):
        model.decode(tgt[:, :2], memory, src_mask, cache=cache)
    with pytest.raises(ValueError, match="tgt_lengths"):
        model.decode(tgt[:, :1], memory, src_mask, tgt_lengths=[1, 1], cache=cache)


def test_reorder_gathers_parents_rows():
    """After reorder, a step equals decoding the reordered prefixes from scratch."""
    model = make_model(True)
    rng = np.random.default_rng(3)
    src = np.repeat(rng.integers(3, V, size=(2, 4)), 2, axis=0)      # 2 sentences x 2 beams
    memory, src_mask = model.encode(src)
    cache = DecoderCache(model, memory, src_mask, capacity=4, beam_size=2, keep_cross_weights=True)
    prefix = rng.integers(3, V, size=(4, 3))
    for t in range(3):
        decoder_step(model, cache, prefix[:, t])
    rows = np.array([1, 1, 3, 2])                                    # beam 1 kept twice; beams swapped
    cache.reorder(rows)
    new = np.array([4, 5, 6, 7])
    got = decoder_step(model, cache, new)                            # (4, V)
    ref = model.decode(np.concatenate([prefix[rows], new[:, None]], axis=1), memory, src_mask,
                       tgt_lengths=np.full(4, 4))[:, -1]             # (4, V)
    assert np.allclose(got, ref, atol=1e-12, rtol=0)
    for g, f in zip(cache.cross_attention_weights(), model.attention_weights()["decoder_cross"]):
        assert np.allclose(g, f, atol=1e-12, rtol=0)                 # the alignments moved with the rows
    with pytest.raises(ValueError, match="within a sentence"):
        cache.reorder(np.array([2, 1, 3, 2]))


# ----------------------------------------------------------------------------
# greedy search

def reference_greedy(model, src_row, max_len):
    """One sentence, no batching, no cache: argmax of the full model over allowed ids until EOS."""
    memory, src_mask = model.encode(src_row[None, :])
    out, score = [], 0.0
    while len(out) < max_len:
        tgt_in = np.array([[BOS] + out])
        logits = model.decode(tgt_in, memory, src_mask, tgt_lengths=np.array([len(out) + 1]))[0, -1]
        logp = log_softmax(logits.astype(np.float64))
        logp[[PAD, BOS]] = -np.inf
        token = int(np.argmax(logp))
        out.append(token)
        score += logp[token]
        if token == EOS:
            break
    return out, score


def test_trained_models_learned_the_task(trained, test_batch):
    """The trained fixtures are non-degenerate: greedy decoding reverses most test sequences."""
    src, tgt = test_batch
    for model in trained.values():
        tokens, _ = greedy_decode(model, src, BOS, EOS, max_len=7)
        exact = np.mean([h == r for h, r in zip(trim_at_eos(tokens, EOS), trim_at_eos(tgt, EOS))])
        assert exact >= 0.5, exact


@pytest.mark.parametrize("which", range(5))
def test_greedy_batched_cached_equals_reference_per_sentence(trained, test_batch, which):
    model = all_models(trained)[which]
    src, _ = test_batch
    max_len = 7
    tokens, scores = greedy_decode(model, src, BOS, EOS, max_len)
    tokens_nc, scores_nc = greedy_decode(model, src, BOS, EOS, max_len, use_cache=False)
    assert np.array_equal(tokens, tokens_nc)
    tol = 1e-9 if model.config.dtype == np.float64 else 1e-4
    assert np.allclose(scores, scores_nc, atol=tol, rtol=0)
    for b in range(len(src)):
        alone = src[b][src[b] != PAD]                                # the sentence without padding
        ref, ref_score = reference_greedy(model, alone, max_len)
        row = tokens[b].tolist()
        assert row[:len(ref)] == ref and all(t == PAD for t in row[len(ref):])
        assert abs(scores[b] - ref_score) < tol


def test_greedy_eos_padding_and_early_stop(trained, test_batch):
    model = trained["post64"]
    src, _ = test_batch
    tokens, scores = greedy_decode(model, src, BOS, EOS, max_len=12)
    ends = (tokens == EOS).argmax(axis=1)                            # (B,) first EOS
    assert (tokens == EOS).any(axis=1).all()                         # every sentence ended
    assert tokens.shape[1] == ends.max() + 1 < 12                    # stopped once all had ended
    after = np.arange(tokens.shape[1])[None, :] > ends[:, None]
    assert np.all(tokens[after] == PAD)
    assert np.allclose(scores, sequence_log_probs(model, src, tokens, BOS, EOS), atol=1e-9)


def test_max_len_is_respected(trained, test_batch):
    model = trained["post64"]
    src, _ = test_batch
    tokens, scores = greedy_decode(model, src, BOS, EOS, max_len=2)
    assert tokens.shape == (len(src), 2) and not (tokens == EOS).any()   # every source has >= 2 symbols
    full, _ = greedy_decode(model, src, BOS, EOS, max_len=12)
    assert np.array_equal(tokens, full[:, :2])                       # a prefix of the unconstrained output
    for fn in (lambda: greedy_decode(model, src, BOS, None, max_len=9),
               lambda: beam_search(model, src, BOS, None, 2, max_len=9)):
        tokens, _ = fn()                                             # EOS is an ordinary token here
        assert tokens.shape == (len(src), 9) and (tokens == EOS).any()


@pytest.mark.parametrize("bias,expected_len", [(50.0, 1), (-50.0, 5)])
def test_forced_eos(bias, expected_len):
    """An EOS logit pushed far up ends every sequence at once; far down, none ends before max_len."""
    model = make_model()
    model.out_proj.params["b"][EOS] += bias
    src = np.random.default_rng(0).integers(3, V, size=(3, 4))
    for tokens, _ in (greedy_decode(model, src, BOS, EOS, 5), beam_search(model, src, BOS, EOS, 3, 5)):
        assert tokens.shape == (3, expected_len)
        assert np.all((tokens[:, -1] == EOS) == (expected_len == 1))


def test_banned_ids_never_generated():
    """PAD and BOS are pushed to the top of the logits, yet never chosen."""
    model = make_model()
    model.out_proj.params["b"][[PAD, BOS]] += 50.0
    src = np.random.default_rng(0).integers(3, V, size=(3, 4))
    for tokens, _ in (greedy_decode(model, src, BOS, EOS, 5), beam_search(model, src, BOS, EOS, 3, 5)):
        assert tokens.shape == (3, 5) and not np.isin(tokens, [PAD, BOS]).any()


def test_decoding_turns_dropout_off_and_restores_mode():
    model = make_model(dropout=0.5).train()
    src = np.random.default_rng(0).integers(3, V, size=(4, 5))
    a, sa = greedy_decode(model, src, BOS, EOS, 6)
    b, sb = greedy_decode(model, src, BOS, EOS, 6)
    assert model.training and model.decoder.layers[0].drop1.training
    model.eval()
    c, sc = greedy_decode(model, src, BOS, EOS, 6)
    assert np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(sa, sc)
    assert not model.training


# ----------------------------------------------------------------------------
# beam search

@pytest.mark.parametrize("which", range(5))
def test_beam_size_one_equals_greedy(trained, test_batch, which):
    model = all_models(trained)[which]
    src, _ = test_batch
    g_tokens, g_scores = greedy_decode(model, src, BOS, EOS, 7)
    b_tokens, b_scores = beam_search(model, src, BOS, EOS, beam_size=1, max_len=7)
    assert np.array_equal(g_tokens, b_tokens)
    assert np.allclose(g_scores, b_scores, atol=1e-12, rtol=0)


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_cached_equals_recomputed(trained, test_batch, which, alpha):
    model = all_models(trained)[which]
    src, _ = test_batch
    t1, s1 = beam_search(model, src, BOS, EOS, 3, 7, length_penalty=alpha, return_all=True)
    t2, s2 = beam_search(model, src, BOS, EOS, 3, 7, length_penalty=alpha, return_all=True, use_cache=False)
    assert t1.shape[:2] == (len(src), 3)
    assert np.array_equal(t1, t2)
    tol = 1e-9 if model.config.dtype == np.float64 else 1e-4
    assert np.allclose(s1, s2, atol=tol, rtol=0)
    assert np.all(np.diff(s1, axis=1) <= 0)                          # best first


def exhaustive(model, src_row, max_len, alpha, symbols):
    """Every output (symbols then EOS, or max_len symbols without EOS) scored by the full model."""
    seqs = [list(p) + [EOS] for n in range(max_len) for p in itertools.product(symbols, repeat=n)]
    seqs += [list(p) for p in itertools.product(symbols, repeat=max_len)]
    tokens = np.array([s + [PAD] * (max_len - len(s)) for s in seqs])          # (n_seqs, max_len)
    n = len(seqs)
    memory, src_mask = model.encode(np.repeat(src_row[None, :], n, axis=0))
    tgt_in = np.concatenate([np.full((n, 1), BOS), tokens[:, :-1]], axis=1)    # (n, max_len)
    logp = log_softmax(model.decode(tgt_in, memory, src_mask, tgt_lengths=np.full(n, max_len)))
    picked = np.take_along_axis(logp, tokens[:, :, None], axis=2)[:, :, 0]     # (n, max_len)
    lengths = np.array([len(s) for s in seqs])
    counted = np.arange(max_len)[None, :] < lengths[:, None]
    scores = np.where(counted, picked, 0).sum(axis=1) / ((5 + lengths) / 6) ** alpha
    order = np.argsort(-scores)
    return tokens[order], scores[order]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_equals_exhaustive_search(norm_first, alpha):
    """vocabulary of 4 symbols + PAD, BOS, EOS, max_len 3: 85 possible outputs. A beam of 100
    prunes nothing, so its ranked finished hypotheses must be the exhaustive ranking."""
    vocab, max_len = 7, 3
    model = make_model(norm_first, vocab=vocab, seed=4)
    model.out_proj.params["b"][EOS] += 0.5                           # make short outputs competitive
    src = np.array([[3, 4, 5, 6], [6, 5, PAD, PAD]])
    tokens, scores = beam_search(model, src, BOS, EOS, beam_size=100, max_len=max_len,
                                 length_penalty=alpha, return_all=True)
    for b in range(2):
        ref_tokens, ref_scores = exhaustive(model, src[b][src[b] != PAD], max_len, alpha, symbols=range(3, vocab))
        n = len(ref_scores)                                          # 1 + 4 + 16 + 64 = 85
        assert n == 85 and np.all(np.isinf(scores[b, n:]))
        assert np.allclose(scores[b, :n], ref_scores, atol=1e-10, rtol=0)
        assert np.array_equal(tokens[b, :n], ref_tokens)
    # a narrow beam still returns the best of what it explored, and never beats the optimum
    best_tokens, best_scores = beam_search(model, src, BOS, EOS, 2, max_len, length_penalty=alpha)
    assert np.all(best_scores <= scores[:, 0] + 1e-12)


def test_length_penalty_changes_the_ranking():
    """With EOS made unlikely, alpha = 0 still prefers the empty output (one factor below 1 beats
    three), while alpha = 2 prefers a 3-token output; each is the exhaustive optimum."""
    model = make_model(False, vocab=7, seed=4)
    model.out_proj.params["b"][EOS] -= 2.0
    src = np.array([[3, 4, 5, 6]])
    best = {}
    for alpha in (0.0, 2.0):
        tokens, scores = beam_search(model, src, BOS, EOS, 100, 3, length_penalty=alpha)
        ref_tokens, ref_scores = exhaustive(model, src[0], 3, alpha, symbols=range(3, 7))
        assert tokens[0].tolist() == ref_tokens[0][:tokens.shape[1]].tolist()
        assert abs(scores[0] - ref_scores[0]) < 1e-10
        best[alpha] = trim_at_eos(tokens, EOS)[0]
    assert len(best[0.0]) == 0 and len(best[2.0]) == 3


def reference_beam(model, src_row, k, max_len, alpha):
    """One sentence, lists instead of arrays, no cache and no early stop: the same rules as
    beam_search (2k best candidates; EOS among the k best finishes; all finish at max_len)."""
    memory, src_mask = model.encode(src_row[None, :])
    beams, finished = [([], 0.0)], []
    for t in range(1, max_len + 1):
        tgt_in = np.array([[BOS] + tokens for tokens, _ in beams])              # (n_beams, t)
        n = len(beams)
        logits = model.decode(tgt_in, np.repeat(memory, n, axis=0), np.repeat(src_mask, n, axis=0),
                              tgt_lengths=np.full(n, t))[:, -1]                  # (n_beams, V)
        logp = log_softmax(logits.astype(np.float64))
        cands = [(score + logp[i, v], tokens + [v]) for i, (tokens, score) in enumerate(beams)
                 for v in range(logp.shape[1]) if v not in (PAD, BOS)]
        cands.sort(key=lambda c: -c[0])
        top = cands[:2 * k]
        finished += [(score / ((5 + t) / 6) ** alpha, tokens) for score, tokens in top[:k]
                     if tokens[-1] == EOS or t == max_len]
        beams = [(tokens, score) for score, tokens in top if tokens[-1] != EOS][:k]
    finished.sort(key=lambda f: -f[0])
    return finished[:k]


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_equals_reference_without_early_stop(trained, test_batch, which, alpha, monkeypatch):
    """Checks the batched bookkeeping (candidates, parents, finished pool) and that stopping a
    sentence early, once no beam can beat its k-th finished hypothesis, changes nothing."""
    model = all_models(trained)[which]
    src, _ = test_batch
    k, max_len = 3, 9
    steps = []
    monkeypatch.setattr(decoding, "decoder_step", lambda *args: steps.append(1) or decoder_step(*args))
    tokens, scores = beam_search(model, src, BOS, EOS, k, max_len, length_penalty=alpha, return_all=True)
    if which < 2:                                                    # trained: all sentences end early
        assert len(steps) < max_len
    tol = 1e-9 if model.config.dtype == np.float64 else 1e-4
    for b in range(4):
        ref = reference_beam(model, src[b][src[b] != PAD], k, max_len, alpha)
        assert np.allclose(scores[b], [score for score, _ in ref], atol=tol, rtol=0)
        got = [row[:len(toks)] for row, (_, toks) in zip(tokens[b].tolist(), ref)]
        assert got == [toks for _, toks in ref]


def test_early_stop_bound_uses_the_longest_length():
    """A case (found by search) where a beam's extension, finished at a later step with a larger
    length penalty, enters the top k after the beam looked beaten: stopping with s / lp(t + 1)
    instead of the bound s / lp(max_len) gives a different second hypothesis here."""
    model = make_model(seed=3)
    model.out_proj.params["b"][EOS] += 1.0
    src = np.random.default_rng(3).integers(3, V, size=(16, 5))[7]
    tokens, scores = beam_search(model, src[None, :], BOS, EOS, 2, 8, length_penalty=2.0, return_all=True)
    ref = reference_beam(model, src, 2, 8, 2.0)
    assert np.allclose(scores[0], [score for score, _ in ref], atol=1e-10, rtol=0)
    assert [row[:len(toks)] for row, (_, toks) in zip(tokens[0].tolist(), ref)] == [toks for _, toks in ref]


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_batched_equals_alone(trained, test_batch, alpha):
    model = trained["post64"]
    src, _ = test_batch
    tokens, scores = beam_search(model, src, BOS, EOS, 4, 8, length_penalty=alpha)
    # the same sources given by src_lengths, with junk (not PAD) after each length
    lengths = (src != PAD).sum(axis=1)
    junk = np.where(src == PAD, 5, src)
    tokens_l, scores_l = beam_search(model, junk, BOS, EOS, 4, 8, length_penalty=alpha, src_lengths=lengths)
    assert np.array_equal(tokens, tokens_l) and np.allclose(scores, scores_l, atol=1e-10, rtol=0)
    for b in range(len(src)):
        one, one_score = beam_search(model, src[b:b + 1, :lengths[b]], BOS, EOS, 4, 8, length_penalty=alpha)
        assert trim_at_eos(one, EOS) == trim_at_eos(tokens[b:b + 1], EOS)
        assert abs(one_score[0] - scores[b]) < 1e-10
    # the score is log P / lp of the returned output
    ends = (tokens == EOS).argmax(axis=1) + 1
    lengths_out = np.where((tokens == EOS).any(axis=1), ends, tokens.shape[1])
    logp = sequence_log_probs(model, src, tokens, BOS, EOS)
    assert np.allclose(scores, logp / gnmt_length_penalty(lengths_out, alpha), atol=1e-10)


# ----------------------------------------------------------------------------
# helpers and errors

def test_helpers():
    assert gnmt_length_penalty(7, 0.0) == 1.0 and gnmt_length_penalty(7, 1.0) == 2.0
    assert np.allclose(gnmt_length_penalty(np.array([1, 31]), 0.5), [1.0, np.sqrt(6.0)])
    assert trim_at_eos(np.array([[5, 6, EOS, PAD], [7, 7, 7, 7], [EOS, PAD, PAD, PAD]]), EOS) == [[5, 6], [7, 7, 7, 7], []]


def test_top_n_sorted_best_first_ties_by_index():
    """_top_n (argpartition, then a sort of the n kept) equals a stable full argsort."""
    rng = np.random.default_rng(0)
    scores = rng.integers(-50, 0, size=(6, 2000)).astype(np.float64)  # many ties
    scores[:, ::7] = -np.inf
    for n in (1, 8, 2000):
        assert np.array_equal(decoding._top_n(scores, n), np.argsort(-scores, axis=1, kind="stable")[:, :n])


def test_clear_errors():
    model = make_model()
    src = np.array([[3, 4, 5]])
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, BOS, EOS, 0, 5)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, src, BOS, EOS, 0)
    with pytest.raises(ValueError, match="max_len=17 exceeds"):
        beam_search(model, src, BOS, EOS, 2, 17)
    with pytest.raises(ValueError, match=r"bos_id=9 is not in the target vocabulary \[0, 9\)"):
        greedy_decode(model, src, 9, EOS, 5)
    with pytest.raises(ValueError, match="eos_id=-1"):
        beam_search(model, src, BOS, -1, 2, 5)
    with pytest.raises(TypeError, match="eos_id must be an integer"):
        greedy_decode(model, src, BOS, 2.0, 5)
    with pytest.raises(ValueError, match="length_penalty must be >= 0"):
        beam_search(model, src, BOS, EOS, 2, 5, length_penalty=-0.5)
    with pytest.raises(TypeError, match="Transformer"):
        greedy_decode(object(), src, BOS, EOS, 5)
    memory, src_mask = model.encode(src)
    cache = DecoderCache(model, memory, src_mask, capacity=1)
    with pytest.raises(ValueError, match=r"one integer id per cache row, shape \(1,\)"):
        decoder_step(model, cache, np.array([BOS, BOS]))
    decoder_step(model, cache, np.array([BOS]))
    with pytest.raises(ValueError, match="cache is full"):
        decoder_step(model, cache, np.array([BOS]))
    with pytest.raises(ValueError, match="capacity"):
        DecoderCache(model, memory, src_mask, capacity=17)
