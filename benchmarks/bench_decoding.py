"""Greedy decoding with and without the key/value cache, against the number of generated tokens.

    .venv/bin/python benchmarks/bench_decoding.py                  # T = 16, 32, 64, 128
    .venv/bin/python benchmarks/bench_decoding.py --quick          # T = 16, 32, 64, one repeat
    .venv/bin/python benchmarks/bench_decoding.py --plot decoding.png

What is measured: attnkit.decoding.greedy_decode on an untrained float32 Transformer
(d_model 128, 4 heads, d_ff 512, 2 encoder + 2 decoder layers, vocabulary 1000), a batch of
32 source sentences of 32 tokens. eos_id=None, so every sentence gets exactly T tokens.
use_cache=True feeds one token per step through decoder_step; use_cache=False decodes the
whole prefix again at every step. Times are medians over the repeats, in seconds; the two
variants alternate within a repeat so that load from other processes hits both alike.

Expected shape: without the cache, step t costs O(t d_model^2) (projections, feed-forward) plus
O(t^2 d_model) (self-attention), so T tokens cost O(T^2) to O(T^3); with it, step t costs
O(d_model^2 + t d_model), so T tokens cost O(T) to O(T^2). The speed-up grows with T.

On a machine shared with other jobs, multi-threaded BLAS can be many times slower than one
thread (threads wait on each other); compare runs with OPENBLAS_NUM_THREADS=1 set in the
environment. Two runs on a 2-core machine under heavy load (load average 11-13), one BLAS
thread, T = 16, 32, 64, 128: without the cache 0.85, 3.1, 11.8, 33.7 s and 0.70, 2.4, 7.3, 22.5 s;
with it 0.33, 0.57, 1.03, 1.87 s and 0.25, 0.41, 0.79, 1.37 s; speed-ups 2.5x, 5.4x, 11.4x, 18.1x
and 2.9x, 5.8x, 9.3x, 16.4x.
"""
import argparse
import statistics
import time

import numpy as np

from attnkit.decoding import greedy_decode
from attnkit.models import Transformer, TransformerConfig

B, S, VOCAB, BOS = 32, 32, 1000, 1


def build_model(max_len):
    cfg = TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=128, num_heads=4,
                            num_encoder_layers=2, num_decoder_layers=2, d_ff=512, max_len=max_len,
                            dropout=0.0, dtype=np.float32, seed=0)
    return Transformer(cfg).eval()


def time_once(model, src, T, use_cache):
    start = time.perf_counter()
    tokens, _ = greedy_decode(model, src, BOS, eos_id=None, max_len=T, use_cache=use_cache)
    elapsed = time.perf_counter() - start
    assert tokens.shape == (B, T)
    return elapsed, tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="T = 16, 32, 64 and one repeat")
    parser.add_argument("--plot", metavar="FILE", help="also save a log-log plot of the times")
    args = parser.parse_args()
    lengths, repeats = ([16, 32, 64], 1) if args.quick else (args.lengths, args.repeats)

    model = build_model(max(lengths))
    src = np.random.default_rng(0).integers(2, VOCAB, size=(B, S))
    time_once(model, src, 4, True)                                   # warm-up (BLAS threads, caches)

    print(f"greedy decoding, batch {B}, source length {S}, d_model 128, 2+2 layers, float32; "
          f"median of {repeats} run(s), seconds")
    print(f"{'T':>5} {'no cache':>10} {'cache':>10} {'speed-up':>9} {'ms/token cached':>16}")
    rows = []
    for T in lengths:
        with_cache, without = [], []
        for _ in range(repeats):
            t_cache, tok_cache = time_once(model, src, T, True)
            t_full, tok_full = time_once(model, src, T, False)
            assert np.array_equal(tok_cache, tok_full), "the cache changed the output"
            with_cache.append(t_cache)
            without.append(t_full)
        c, f = statistics.median(with_cache), statistics.median(without)
        rows.append((T, f, c))
        print(f"{T:>5} {f:>10.3f} {c:>10.3f} {f / c:>8.1f}x {1000 * c / T:>16.2f}")

    if args.plot:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        Ts, full, cached = map(np.array, zip(*rows))
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.loglog(Ts, full, "o-", label="no cache (recompute the prefix)")
        ax.loglog(Ts, cached, "s-", label="key/value cache")
        ax.set_xlabel("generated tokens T")
        ax.set_ylabel("seconds")
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
        ax.set_title(f"greedy decoding, batch {B}")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot saved to {args.plot}")


if __name__ == "__main__":
    main()
