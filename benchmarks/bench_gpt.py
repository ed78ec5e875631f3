"""Training a character-level GPT on Shakespeare: attnkit (NumPy) against PyTorch, speed and parity.

Run: .venv/bin/python benchmarks/bench_gpt.py [--config nanogpt chapter] [--steps N] [--seeds 0 1]
     [--block K] [--threads N] [--eval-windows W]

For each configuration and seed, one attnkit GPT (attnkit.models.GPT) and, if PyTorch is
importable (it is not a project requirement: pip install torch==2.13.0), the same model written
in PyTorch start from the *same* weights (copied from the attnkit model) and train on the *same*
batches (attnkit.data.chars.sample_windows) with the same recipe: AdamW (betas 0.9/0.99, weight
decay 0.1 on matrices only), linear warmup + cosine decay, gradient clipping at 1.0, float32.
They alternate in blocks of K steps (attnkit K steps, then PyTorch the same K steps), so both see
the same machine load. Reported: tokens/s of each (median over blocks, training steps only),
the median of the per-block ratios, and the validation loss of both after the same steps on the
same validation windows (consecutive windows of the last 10% of the text).

Configurations:
  nanogpt   nanoGPT's CPU Shakespeare run: 4 layers, 4 heads, d_model 128, context 64, batch 12, dropout 0
  chapter   the model of chapter 18 (notebooks/18_gpt.ipynb): see CONFIGS below

The PyTorch model is the same function: learned token and position embeddings, pre-LN blocks
with separate q/k/v/o projections (biases), scaled_dot_product_attention(is_causal=True), GELU
(tanh form), a final LayerNorm (eps 1e-5) and a Linear head with bias.
"""
import argparse
import contextlib
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attnkit.data.chars import char_data, iterate_windows, sample_windows
from attnkit.losses import CrossEntropyLoss
from attnkit.models import GPT, GPTConfig
from attnkit.optim import AdamW, clip_grad_norm, cosine_schedule, decay_matrices

# (GPTConfig fields, batch size, peak learning rate)
CONFIGS = {
    "nanogpt": (dict(context_length=64, num_layers=4, num_heads=4, d_model=128, d_ff=512, dropout=0.0), 12, 1e-3),
    "chapter": (dict(context_length=64, num_layers=2, num_heads=4, d_model=64, d_ff=256, dropout=0.0), 32, 3e-3),
}
BETAS, WEIGHT_DECAY, CLIP = (0.9, 0.99), 0.1, 1.0


def torch_gpt(model):
    """A PyTorch module computing the same function as the attnkit GPT `model`, from a copy of its weights."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    c = model.config
    t = lambda a: nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32)))

    def linear(W, b):
        lin = nn.Linear(W.shape[0], W.shape[1])
        lin.weight, lin.bias = t(W.T), t(b)                          # torch keeps (d_out, d_in)
        return lin

    def layer_norm(ln):
        norm = nn.LayerNorm(c.d_model, eps=ln.eps)
        norm.weight, norm.bias = t(ln.params["gamma"]), t(ln.params["beta"])
        return norm

    class Block(nn.Module):
        def __init__(self, layer):
            super().__init__()
            a, f = layer.self_attn.params, layer.ff
            self.ln1, self.ln2 = layer_norm(layer.norm1), layer_norm(layer.norm2)
            self.q, self.k, self.v, self.o = (linear(a[f"W_{n}"], a[f"b_{n}"]) for n in "qkvo")
            self.fc1 = linear(f.fc1.params["W"], f.fc1.params["b"])
            self.fc2 = linear(f.fc2.params["W"], f.fc2.params["b"])

        def forward(self, x):                                        # (B, T, d_model)
            B, T, d = x.shape
            h = self.ln1(x)
            split = lambda y: y.view(B, T, c.num_heads, d // c.num_heads).transpose(1, 2)  # (B, h, T, d_k)
            att = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)),
                                                 is_causal=True)     # (B, h, T, d_k)
            x = x + self.o(att.transpose(1, 2).reshape(B, T, d))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(c.vocab_size, c.d_model)
            self.tok.weight = t(model.tok_embed.params["W"])
            self.pos = nn.Embedding(c.context_length, c.d_model)
            self.pos.weight = t(model.pos_embed.params["W"])
            self.blocks = nn.ModuleList(Block(layer) for layer in model.blocks.layers)
            self.ln_f = layer_norm(model.blocks.norm)
            self.head = linear(model.head.params["W"], model.head.params["b"])

        def forward(self, ids):                                      # (B, T) -> (B, T, V)
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    if not c.norm_first or c.tie_embeddings or c.dropout or c.activation != "gelu":
        raise ValueError("the PyTorch twin covers pre-LN, untied, dropout-free GELU models only")
    return TorchGPT()


class Runner:
    """One model (attnkit or PyTorch), its optimizer and schedule, stepping on given batches."""

    def __init__(self, kind, model, peak_lr, steps):
        self.kind, self.model = kind, model
        self.schedule = cosine_schedule(peak_lr, max(1, steps // 20), steps, peak_lr / 10)
        self.step_count = 0
        self.seconds = []                                            # wall time of each timed block
        if kind == "attnkit":
            self.loss_fn = CrossEntropyLoss()
            self.opt = AdamW(model.parameters(), lr=peak_lr, betas=BETAS, weight_decay=WEIGHT_DECAY,
                             decay=decay_matrices(model.parameters()))
        else:
            import torch
            params = list(model.parameters())
            groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
                      {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
            self.opt = torch.optim.AdamW(groups, lr=peak_lr, betas=BETAS)
            self.torch = torch

    def step(self, x, y):
        self.step_count += 1
        lr = self.schedule(self.step_count)
        if self.kind == "attnkit":
            self.opt.lr = lr
            loss = self.loss_fn.forward(self.model.forward(x), y)
            self.model.zero_grad()
            self.model.backward(self.loss_fn.backward())
            clip_grad_norm(self.model.parameters(), CLIP)
            self.opt.step()
            return loss
        torch = self.torch
        for g in self.opt.param_groups:
            g["lr"] = lr
        logits = self.model(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 torch.from_numpy(y).reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        return loss.item()

    def valid_loss(self, batches):
        total, count = 0.0, 0
        if self.kind == "attnkit":
            self.model.eval()
            for x, y in batches:
                total += self.loss_fn.forward(self.model.forward(x), y) * y.size
                count += y.size
            self.model.train()
            return total / count
        torch = self.torch
        with torch.no_grad():
            for x, y in batches:
                logits = self.model(torch.from_numpy(x))
                total += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1), reduction="sum").item()
                count += y.size
        return total / count


def run_one(data, name, seed, steps, block, eval_windows, use_torch):
    fields, B, peak_lr = CONFIGS[name]
    model = GPT(GPTConfig(vocab_size=len(data.vocab), seed=seed, **fields))
    runners = [Runner("attnkit", model, peak_lr, steps)]
    if use_torch:
        import torch
        torch.manual_seed(seed)
        runners.append(Runner("PyTorch", torch_gpt(model), peak_lr, steps))
    stream = sample_windows(data.train, fields["context_length"], B, seed=seed)
    batches = [next(stream) for _ in range(steps)]                   # the same batches for both
    valid = list(iterate_windows(data.valid, fields["context_length"], 64, max_windows=eval_windows))
    if use_torch:                                                    # same weights, same function
        x = valid[0][0][:4]
        model.eval()
        ref = model.forward(x)
        model.train()
        got = runners[1].model(torch.from_numpy(x)).detach().numpy()
        assert np.abs(got - ref).max() < 1e-3, "the PyTorch twin does not compute the attnkit model's logits"
    first = True
    for start in range(0, steps, block):
        for r in runners:
            t0 = time.perf_counter()
            for x, y in batches[start:start + block]:
                r.step(x, y)
            elapsed = time.perf_counter() - t0
            if not first:                                            # the first block warms up
                r.seconds.append((elapsed, min(block, steps - start)))
        first = False
    tokens = B * fields["context_length"]
    out = {}
    for r in runners:
        per_step = np.array([s / n for s, n in r.seconds])           # seconds per step, each block
        out[r.kind] = {"tokens_per_s": tokens / float(np.median(per_step)), "per_step": per_step,
                       "valid": r.valid_loss(valid)}
    if use_torch:
        out["ratio"] = float(np.median(out["PyTorch"]["per_step"] / out["attnkit"]["per_step"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", default=["nanogpt", "chapter"], choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=300, help="training steps of each model")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--block", type=int, default=10, help="steps per timed block (the two alternate)")
    ap.add_argument("--eval-windows", type=int, default=512, help="validation windows scored at the end")
    ap.add_argument("--threads", type=int, default=None, help="limit BLAS / PyTorch threads (default: library default)")
    args = ap.parse_args()
    limit = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits                  # installed with scikit-learn
        limit = threadpool_limits(args.threads)
    try:
        import torch
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        use_torch, threads = True, f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        use_torch, threads = False, "PyTorch not installed: attnkit only (pip install torch==2.13.0)"
    from threadpoolctl import threadpool_info
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; NumPy BLAS: {blas}; {threads}")
    data = char_data()
    print(f"text: {data.summary()}")
    with limit:
        for name in args.config:
            fields, B, lr = CONFIGS[name]
            print(f"\n[{name}] {fields}, batch {B}, peak lr {lr}, {args.steps} steps, blocks of {args.block}")
            rows = []
            for seed in args.seeds:
                r = run_one(data, name, seed, args.steps, args.block, args.eval_windows, use_torch)
                rows.append(r)
                line = f"  seed {seed}: attnkit {r['attnkit']['tokens_per_s']:8,.0f} tokens/s, valid {r['attnkit']['valid']:.4f}"
                if use_torch:
                    line += (f" | PyTorch {r['PyTorch']['tokens_per_s']:8,.0f} tokens/s, valid "
                             f"{r['PyTorch']['valid']:.4f} | ratio {r['ratio']:.2f}x")
                print(line, flush=True)
            if use_torch:
                diff = np.mean([r["attnkit"]["valid"] - r["PyTorch"]["valid"] for r in rows])
                print(f"  mean over seeds: ratio {np.mean([r['ratio'] for r in rows]):.2f}x "
                      f"(target >= 1.0x), valid attnkit - PyTorch {diff:+.4f} nats (target |.| <= 0.03), "
                      f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
