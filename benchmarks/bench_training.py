"""Training speed of a small Transformer: attnkit (NumPy) against PyTorch, in tokens per second.

Run: .venv/bin/python benchmarks/bench_training.py [--profile] [--steps N] [--repeats R] [--dropout P]

The model is an encoder with a language-model head: token embedding (x sqrt(d_model)) +
sinusoidal positions + dropout, 2 post-LN encoder layers (d_model 64, 4 heads, d_ff 256, ReLU)
under a causal mask, then a Linear to the 1000-token vocabulary and a cross-entropy loss on the
next token. One step = forward + loss + backward + AdamW update, float32, batch 64 x 32 tokens.
PyTorch (if importable; not a project requirement) runs the same model built from
nn.TransformerEncoder with AdamW (same sizes, dropout, causal mask, weight decay 0.01).

Timing: after warm-up steps, each repeat times `steps` steps of attnkit and then `steps` steps of
PyTorch, so both see the same machine load (other jobs on a shared machine make single timings
swing by several times); reported are the median step times and the median of the per-repeat
speed ratios. --threads N limits NumPy's BLAS (threadpoolctl) and PyTorch to N threads.
"""
import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attnkit.functional import causal_mask
from attnkit.losses import CrossEntropyLoss
from attnkit.models import Encoder, TokenEmbedding
from attnkit.nn import Linear, Module
from attnkit.optim import AdamW

VOCAB, D_MODEL, HEADS, LAYERS, D_FF, T, B = 1000, 64, 4, 2, 256, 32, 64


class EncoderLM(Module):
    """Embedding + positions, a causally masked Encoder, a Linear head to next-token logits."""

    def __init__(self, dropout, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.embed = TokenEmbedding(VOCAB, D_MODEL, max_len=T, dropout=dropout, rng=rng)
        self.encoder = Encoder(LAYERS, D_MODEL, HEADS, D_FF, dropout=dropout, rng=rng)
        self.head = Linear(D_MODEL, VOCAB, rng=rng)
        self.mask = causal_mask(T)                                       # (T, T)

    def forward(self, ids):
        x = self.embed.forward(ids)                                      # (B, T, d_model)
        h = self.encoder.forward(x, self.mask)                           # (B, T, d_model)
        return self.head.forward(h)                                      # (B, T, V)

    def backward(self, dlogits):
        dh = self.head.backward(dlogits)                                 # (B, T, d_model)
        dx = self.encoder.backward(dh)                                   # (B, T, d_model)
        self.embed.backward(dx)


def batch(rng):
    ids = rng.integers(0, VOCAB, size=(B, T + 1))                        # (B, T + 1)
    return ids[:, :-1], ids[:, 1:]                                       # inputs, next-token targets


def time_block(step, steps):
    """Mean (wall, CPU) seconds per step over `steps` consecutive steps.

    CPU time (all threads of the process) hardly counts the time other jobs hold the cores,
    so on a busy machine it is the steadier figure; tokens/s come from wall time."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def attnkit_step_fn(dropout):
    model = EncoderLM(dropout)
    loss_fn = CrossEntropyLoss()
    opt = AdamW(model.parameters(), lr=1e-3)
    x, y = batch(np.random.default_rng(0))

    def step():
        opt.zero_grad()
        logits = model.forward(x)                                        # (B, T, V)
        loss = loss_fn.forward(logits, y)
        model.backward(loss_fn.backward())
        opt.step()
        return loss
    return step


def torch_step_fn(dropout, threads=None):
    import math

    import torch
    from torch import nn

    torch.manual_seed(0)
    if threads is not None:
        torch.set_num_threads(threads)

    class TorchEncoderLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, D_MODEL)
            pos = torch.arange(T)[:, None]
            angle = pos / torch.pow(10000.0, torch.arange(0, D_MODEL, 2) / D_MODEL)
            pe = torch.zeros(T, D_MODEL)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
            self.register_buffer("pe", pe)
            self.drop = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = nn.Linear(D_MODEL, VOCAB)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(T))

        def forward(self, ids):
            x = self.drop(self.embed(ids) * math.sqrt(D_MODEL) + self.pe)
            return self.head(self.encoder(x, mask=self.mask, is_causal=True))

    model = TorchEncoderLM().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = (torch.from_numpy(a) for a in batch(np.random.default_rng(0)))

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x).reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()
    return step, torch.get_num_threads()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (medians are reported)")
    ap.add_argument("--dropout", type=float, default=0.1, help="dropout on embeddings and sublayers")
    ap.add_argument("--threads", type=int, default=None, help="limit BLAS / PyTorch threads (default: library default)")
    ap.add_argument("--profile", action="store_true", help="print the top functions of a cProfile of attnkit")
    args = ap.parse_args()
    limit = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits             # installed with scikit-learn
        limit = threadpool_limits(args.threads)
    with limit:
        run(args)


def run(args):
    tokens = B * T
    print(f"Encoder LM, float32: d_model {D_MODEL}, {LAYERS} layers, {HEADS} heads, d_ff {D_FF}, "
          f"vocab {VOCAB}, batch {B} x seq {T} = {tokens} tokens/step, dropout {args.dropout}")
    steps = {"attnkit": attnkit_step_fn(args.dropout)}
    threads = ""
    try:
        steps["PyTorch"], n = torch_step_fn(args.dropout, args.threads)
        threads = f"PyTorch threads {n}"
    except ImportError:
        print("PyTorch not installed: timing attnkit only (pip install torch==2.13.0 for the comparison)")
    if args.profile:
        for _ in range(3):
            steps["attnkit"]()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.steps):
            steps["attnkit"]()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    for step in steps.values():                                   # warm-up
        for _ in range(3):
            step()
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_block(step, args.steps))
    for name, ts in times.items():
        wall = np.array([w for w, _ in ts])
        cpu = np.array([c for _, c in ts])
        med = float(np.median(wall))
        print(f"{name:8s}: {med * 1e3:7.1f} ms/step  {tokens / med:9,.0f} tokens/s   "
              f"CPU {np.median(cpu) * 1e3:6.1f} ms/step   (repeats: {', '.join(f'{t * 1e3:.1f}' for t in wall)} ms)")
    if "PyTorch" in times:
        ratios = np.array([w for w, _ in times["PyTorch"]]) / np.array([w for w, _ in times["attnkit"]])
        print(f"attnkit / PyTorch tokens/s: median {np.median(ratios):.2f}x "
              f"(per repeat: {', '.join(f'{r:.2f}' for r in ratios)}; {threads})")


if __name__ == "__main__":
    main()
