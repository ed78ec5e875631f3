"""Decoding speed and cache size of a GPT with multi-head, grouped-query, multi-query and linear
attention, against the number of positions already decoded.

    .venv/bin/python benchmarks/bench_inference.py                 # positions 128 .. 2048
    .venv/bin/python benchmarks/bench_inference.py --quick         # positions 128, 512, one repeat

What is measured: an untrained float32 GPT without position embeddings (d_model 256, 8 heads,
4 layers, d_ff 1024, vocabulary 96), a batch of 8 sequences. For each number of positions P the
cache is filled with P tokens (prefilled in chunks of 256), then `--steps` single-token steps
are timed; the figure is the median time of one step (the 8 sequences together), in ms, over
the steps and repeats, with the cache's size in MiB after P tokens. The variants alternate
within a repeat so that load from other processes hits them alike.

Expected: the softmax variants' step time grows with P (each step reads the whole cache) and
their cache grows linearly, by the factor h_kv / h for grouped queries; linear attention's
step time and state do not depend on P. In NumPy at this size a step is dominated by the
projections and the feed-forward (the same for every variant) and by Python overhead, so the
grouped variants gain less time than memory; on a GPU, where decoding is bound by reading the
cache from memory, the time gain follows the memory.

Timings taken on a busy machine swing by several times: compare the variants of one run.
One run here, 2 cores shared with other jobs (load average 6-7.5), one BLAS thread, positions
128 / 512 / 1024 / 2048, ms per step (cache MiB): MHA 8.4 / 10.5 / 15.9 / 22.6 (8 / 32 / 64 /
128); GQA 5.1 / 8.5 / 16.5 / 16.9 (2 / 8 / 16 / 32); MQA 6.0 / 8.0 / 13.2 / 7.1 (1 / 4 / 8 /
16); linear 8.7 / 11.4 / 8.3 / 4.7 (1.0 throughout). The cache sizes are exact; the times are
not reliable under that load (linear attention's should not depend on the position at all).
"""
import argparse
import statistics
import time

import numpy as np

from attnkit.kvcache import cache_nbytes
from attnkit.models import GPT, GPTConfig
from attnkit.seeding import make_rng

B, VOCAB, CHUNK = 8, 96, 256
VARIANTS = {"MHA (8 kv heads)": dict(num_kv_heads=8), "GQA (2 kv heads)": dict(num_kv_heads=2),
            "MQA (1 kv head)": dict(num_kv_heads=1), "linear attention": dict(attention="linear")}


def build(max_len, **kw):
    cfg = GPTConfig(vocab_size=VOCAB, context_length=max_len, num_layers=4, num_heads=8, d_model=256,
                    d_ff=1024, dropout=0.0, pos="none", seed=0, **kw)
    return GPT(cfg).eval()


def step_times(model, ids, P, steps):
    """Fill a cache with P tokens, then time `steps` single-token steps: list of seconds, and the
    bytes holding the P positions (a state of fixed size for linear attention)."""
    cache = model.make_cache(B)
    for t in range(0, P, CHUNK):
        model.forward(ids[:, t:min(t + CHUNK, P)], cache=cache)
    held = cache_nbytes(cache)
    if cache.kind == "full":          # allocated for the whole context: count the P positions used
        held = held * P // cache.capacity
    times = []
    for s in range(steps):
        start = time.perf_counter()
        model.forward(ids[:, P + s:P + s + 1], cache=cache)
        times.append(time.perf_counter() - start)
    return times, held


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, nargs="+", default=[128, 512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="positions 128 and 512, one repeat")
    args = parser.parse_args()
    positions, repeats = ([128, 512], 1) if args.quick else (args.positions, args.repeats)
    max_len = max(positions) + args.steps
    models = {name: build(max_len, **kw) for name, kw in VARIANTS.items()}
    ids = make_rng(0).integers(0, VOCAB, size=(B, max_len))                # (B, max_len)
    times = {(n, P): [] for n in models for P in positions}
    sizes = {}
    for _ in range(repeats):
        for P in positions:
            for name, model in models.items():
                t, sizes[name, P] = step_times(model, ids, P, args.steps)
                times[name, P] += t
    print(f"one decoding step of {B} sequences, median ms (cache MiB), float32, d_model 256, 8 heads, 4 layers")
    print(f"{'positions':<20s}" + "".join(f"{P:>16d}" for P in positions))
    for name in models:
        cells = [f"{1e3 * statistics.median(times[name, P]):8.2f} ({sizes[name, P] / 2**20:5.1f})"
                 for P in positions]
        print(f"{name:<20s}" + "".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()
