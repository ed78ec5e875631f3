"""Sampling: temperature, top-k, top-p, seeded draws and the generate loop with and without the cache."""
import numpy as np
import pytest
from scipy import stats

from attnkit.data.chars import CharVocab
from attnkit.models import GPT, GPTConfig
from attnkit.sampling import (apply_temperature, generate, generate_text, next_token_probs,
                              sample_next, top_k_filter, top_p_filter)
from attnkit.seeding import make_rng


def _logits(N=4, V=12, seed=0):
    return make_rng(seed).normal(size=(N, V)) * 2.0                       # (N, V)


def test_temperature_to_zero_equals_greedy():
    logits = _logits(N=64)
    greedy = logits.argmax(axis=1)
    rng = make_rng(1)
    for tau in (1e-3, 1e-6, 0.0):
        for _ in range(5):
            assert np.array_equal(sample_next(logits, rng, temperature=tau), greedy)
    np.testing.assert_allclose(next_token_probs(logits, 0.0), np.eye(12)[greedy])
    # and a temperature of 1 leaves the model's distribution as it is
    np.testing.assert_allclose(next_token_probs(logits, 1.0),
                               np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = _logits(N=8, V=20)
    for k in (1, 3, 7, 20, 50):
        out = top_k_filter(logits, k)
        kept = np.isfinite(out)
        assert np.all(kept.sum(axis=1) == min(k, 20))
        # the kept ones are the k largest: every kept logit >= every dropped one
        for row, keep in zip(logits, kept):
            if k < 20:
                assert row[keep].min() >= row[~keep].max()
        np.testing.assert_array_equal(out[kept], logits[kept])
    tied = np.zeros((2, 6))                                               # all equal
    assert np.all(np.isfinite(top_k_filter(tied, 4)).sum(axis=1) == 4)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([[0.5, 0.3, 0.1, 0.06, 0.04]])
    logits = np.log(probs)
    def kept(p):
        return np.flatnonzero(np.isfinite(top_p_filter(logits, p)[0])).tolist()
    assert kept(0.4) == [0]                                               # 0.5 >= 0.4 already
    assert kept(0.5) == [0]                                               # reaching p exactly counts
    assert kept(0.6) == [0, 1]
    assert kept(0.85) == [0, 1, 2]
    assert kept(0.95) == [0, 1, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3, 4]
    # on random rows: the kept mass reaches p and dropping the least likely kept token falls short
    logits = _logits(N=50, V=30, seed=4)
    for p in (0.3, 0.7, 0.9):
        pr = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        keep = np.isfinite(top_p_filter(logits, p))
        mass = (pr * keep).sum(axis=1)
        smallest = np.where(keep, pr, np.inf).min(axis=1)
        assert np.all(mass >= p - 1e-12) and np.all(mass - smallest < p)
        # kept tokens are the most likely ones
        assert np.all(np.where(keep, pr, np.inf).min(axis=1) >= np.where(keep, -np.inf, pr).max(axis=1))


def _chi_square_p(counts, probs):
    nz = probs > 0
    assert counts[~nz].sum() == 0                                         # never draws a removed token
    expected = probs[nz] * counts.sum()
    return stats.chisquare(counts[nz], expected).pvalue


@pytest.mark.parametrize("kw", [dict(), dict(temperature=0.7), dict(top_k=4), dict(top_p=0.8),
                                dict(temperature=1.5, top_k=6, top_p=0.9)])
def test_sampled_frequencies_match_the_renormalized_distribution(kw):
    V, draws = 10, 40_000
    logits = _logits(N=1, V=V, seed=7)
    rows = np.repeat(logits, draws, axis=0)                               # (draws, V): one draw per row
    counts = np.bincount(sample_next(rows, make_rng(11), **kw), minlength=V)
    probs = next_token_probs(logits, **kw)[0]
    assert _chi_square_p(counts, probs) > 1e-4                            # the right distribution passes
    # the test can fail: the same draws are far from the unfiltered, or the unrenormalized, one
    if kw:
        plain = next_token_probs(logits)[0]
        off = np.abs(counts / draws - plain).max()
        assert off > 0.02


def test_seeded_draws_repeat():
    logits = _logits(N=16)
    a = sample_next(logits, make_rng(3), top_p=0.9)
    assert np.array_equal(a, sample_next(logits, make_rng(3), top_p=0.9))


@pytest.mark.parametrize("call, match", [
    (lambda x: top_k_filter(x, 0), "top_k must be an integer >= 1"),
    (lambda x: top_k_filter(x, 2.5), "top_k must be an integer >= 1"),
    (lambda x: top_p_filter(x, 0.0), r"top_p must lie in \(0, 1\]"),
    (lambda x: top_p_filter(x, 1.2), r"top_p must lie in \(0, 1\]"),
    (lambda x: apply_temperature(x, -0.5), "temperature must be a finite number >= 0"),
    (lambda x: apply_temperature(x[0], 1.0), r"logits must be a float array of shape \(N, V\)"),
])
def test_bad_filter_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(_logits())


@pytest.fixture(scope="module")
def tiny_gpt():
    return GPT(GPTConfig(vocab_size=11, context_length=16, num_layers=2, num_heads=2, d_model=16, d_ff=32,
                         dropout=0.1, seed=5))


def test_generate_keeps_the_prompt_and_repeats_with_a_seed(tiny_gpt):
    prompt = np.array([[3, 4, 5], [6, 7, 8]])
    out = generate(tiny_gpt, prompt, 20, temperature=0.9, top_k=5, seed=2, use_cache=False)
    assert out.shape == (2, 23) and np.array_equal(out[:, :3], prompt)
    assert out.min() >= 0 and out.max() < 11
    assert np.array_equal(out, generate(tiny_gpt, prompt, 20, temperature=0.9, top_k=5, seed=2, use_cache=False))
    assert tiny_gpt.training                                              # mode restored


def test_greedy_generation_takes_the_argmax_of_the_model(tiny_gpt):
    prompt = np.array([1, 2, 3])
    out = generate(tiny_gpt, prompt, 5, temperature=0, use_cache=False)[0]
    tiny_gpt.eval()
    try:
        for t in range(3, 8):
            assert out[t] == tiny_gpt.forward(out[None, :t])[0, -1].argmax()
    finally:
        tiny_gpt.train()


@pytest.mark.parametrize("kw, match", [
    (dict(top_k=0), "top_k must be an integer >= 1"),
    (dict(top_p=0.0), r"top_p must lie in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must lie in \(0, 1\]"),
    (dict(temperature=-1.0), "temperature must be a finite number >= 0"),
    (dict(prompt_ids=np.arange(17) % 11), "the prompt has 17 tokens but the model's context_length is 16"),
    (dict(prompt_ids=np.array([3, 11])), r"prompt ids must lie in \[0, 11\)"),
    (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
])
def test_generate_rejects_bad_arguments(tiny_gpt, kw, match):
    args = dict(prompt_ids=np.array([1, 2]), max_new_tokens=3) | kw
    with pytest.raises(ValueError, match=match):
        generate(tiny_gpt, **args)


def test_generate_text_rejects_unknown_characters(tiny_gpt):
    vocab = CharVocab.from_text("abcdefghi")                              # 9 characters + 2 specials = 11
    assert len(vocab) == 11
    with pytest.raises(ValueError, match=r"\['z'\] are not in the vocabulary"):
        generate_text(tiny_gpt, vocab, "abz", 5)
    text = generate_text(tiny_gpt, vocab, "abc", 6, seed=1, num_samples=2, use_cache=False)
    assert len(text) == 2 and all(t.startswith("abc") and len(t) <= 9 for t in text)


@pytest.mark.parametrize("prompt_len, new", [(1, 10), (5, 30), (16, 20)])
def test_cached_generation_equals_recomputing_the_prefix(tiny_gpt, prompt_len, new):
    # 30 new tokens after 5 cross the 16-token context twice; a 16-token prompt fills it at once
    prompt = make_rng(prompt_len).integers(0, 11, size=(3, prompt_len))
    for kw in (dict(temperature=0), dict(temperature=1.0, top_p=0.9, seed=4)):
        cached = generate(tiny_gpt, prompt, new, use_cache=True, **kw)
        again = generate(tiny_gpt, prompt, new, use_cache=False, **kw)
        assert np.array_equal(cached, again)


def test_cached_logits_equal_the_full_forward():
    m = GPT(GPTConfig(vocab_size=11, context_length=12, num_layers=2, num_heads=2, d_model=16, d_ff=32,
                      dtype=np.float64, seed=3))
    ids = make_rng(0).integers(0, 11, size=(2, 12))
    full = m.forward(ids)                                                 # (2, 12, 11)
    cache = m.make_cache(2)
    parts = [m.forward(ids[:, :5], cache=cache)]                          # prefill 5 positions at once
    parts += [m.forward(ids[:, t:t + 1], cache=cache) for t in range(5, 9)]  # then one at a time
    parts.append(m.forward(ids[:, 9:], cache=cache))                      # and 3 more together
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-10, atol=1e-12)
    assert cache.length == 12
    with pytest.raises(ValueError, match="exceed context_length=12"):
        m.forward(ids[:, :1], cache=cache)
    with pytest.raises(ValueError, match="GPTCache for 3 rows"):
        m.forward(np.zeros((3, 1), dtype=np.int64), cache=m.make_cache(2))
