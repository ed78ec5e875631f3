"""Speed and memory of attnkit's attention against PyTorch's, in float32.

    .venv/bin/python benchmarks/bench_attention.py              # T = 128, 512, 2048
    .venv/bin/python benchmarks/bench_attention.py --quick      # T = 128, 512, fewer repeats
    .venv/bin/python benchmarks/bench_attention.py --T 512 --repeats 9
    .venv/bin/python benchmarks/bench_attention.py --threads 1   # 1 BLAS and 1 PyTorch thread
    .venv/bin/python benchmarks/bench_attention.py --only attention inference   # some workloads
    .venv/bin/python benchmarks/bench_attention.py --tiled       # tiled vs naive vs PyTorch, T = 2048
    .venv/bin/python benchmarks/bench_attention.py --tiled-memory   # causal tiled fwd+bwd, T = 8192, B = 1
    .venv/bin/python benchmarks/bench_attention.py --linear      # linear attention against T

What is measured (B=8, h=8, d_k=64, so d_model = h * d_k = 512):
  attention   attnkit.functional.attention_forward (fwd) and attention_forward +
              attention_backward (fwd+bwd) on q, k, v of shape (B, h, T, d_k), no mask;
              PyTorch: torch.nn.functional.scaled_dot_product_attention, with
              requires_grad=True and out.backward(dout) for fwd+bwd, under torch.no_grad()
              for fwd. attention_forward keeps the (B, h, T, T) weights for the backward.
  inference   attnkit.functional.attention (the forward alone: the same output, bit for bit,
              without keeping the weights), against the same PyTorch call under no_grad.
  MHA         attnkit.nn.MultiHeadAttention(512, 8) self-attention on x (B, T, 512) in eval
              mode; PyTorch: torch.nn.MultiheadAttention(512, 8, batch_first=True) with
              need_weights=False (it then uses the fused kernel).
  tiled       attnkit.functional.flash_attention_forward + flash_attention_backward (default
              tiles), against attnkit's attention and PyTorch's SDPA in the same alternating loop.
  linear      attnkit.functional.linear_attention_forward (+ backward), causal, against T.
Times are medians over the repeats, in milliseconds; attnkit and PyTorch alternate within a
repeat so that load from other processes hits both alike. ratio = attnkit / PyTorch.
Each library is timed in its own steady state, as in a loop that calls it again and again: a
turn is a pause of --pause seconds (default 0.05), untimed calls for --warm-ms milliseconds
(default 30; at least one call), then --burst timed calls (default 3), each one a sample of
the median. Why:
  - PyTorch's OpenMP threads keep spinning for about 10 ms after each call (8-10 ms of CPU in
    the next 10 ms of sleep, measured here), and on a 2-core machine that took a core from the
    attnkit call timed right after it: back to back, attnkit's T=512 forward measured 77 ms
    against 52 ms after a pause. The pause lets them go idle.
  - After a pause, a thread that wakes up is slow for a few milliseconds. On this virtual
    machine an idle CPU halts at once (cpuidle haltpoll with guest_halt_poll_ns=0) and the
    scheduler packs woken threads onto one CPU (sched_vcpu_pack): logging the CPU of every
    chunk of a T=128 forward called after a 50 ms sleep showed attnkit's two threads on one
    CPU, taking turns, in 6 of 8 calls (6-8 ms instead of 3.8; pinning the pool thread to the
    other CPU did not help, the woken CPU itself was slow). The untimed calls wake both
    libraries' threads: PyTorch's spinning threads needed one (after a pause alone its T=128
    forward took 6.7 ms instead of 3.3), attnkit's blocking threads a few (one untimed call:
    T=128 forward 7.8 ms; three: 4.1 ms; PyTorch 3.1 and 3.3 ms in the same runs).
--pause 0: plain alternation, one timed call a turn, nothing untimed. The tiled and linear
reports, whose calls take a second or more, use one untimed and one timed call a turn.

Peak extra memory, in MiB:
  attnkit  tracemalloc: NumPy reports every array buffer it allocates to tracemalloc, so the
           peak of traced memory during one call minus the traced memory before it is the
           exact peak of extra array memory (inputs excluded, cached activations included).
  PyTorch  PyTorch's allocator is invisible to tracemalloc, so a child process measures its
           peak resident memory (ru_maxrss) minus the resident memory just before the call.
           It counts pages actually touched and includes allocator caching: an estimate.
The (B, h, T, T) float32 score tensor alone is B*h*T*T*4 bytes (1 GiB at T=2048).
PyTorch is optional: without it only attnkit's numbers are printed.

Threads: with N > 1 BLAS threads (one per core by default) attnkit's attention and tiled
attention split the batch over N Python threads (the caller and a kept pool), each with
single-threaded BLAS, so the softmax runs in parallel too (attnkit.functional.run_chunks);
PyTorch runs everything in its own thread pool. --threads N sets both (OPENBLAS_NUM_THREADS
before NumPy loads, torch.set_num_threads). On a machine that other processes keep busy, both
libraries' threads wait for one another: compare ratios from the same run, with the load.
"""
import argparse
import os
import sys

if "--threads" in sys.argv:     # must be set before NumPy (and OpenBLAS) is imported
    _n = sys.argv[sys.argv.index("--threads") + 1]
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _n
import resource
import statistics
import subprocess
import time
import tracemalloc

import numpy as np

from attnkit.functional import (attention, attention_backward, attention_forward, flash_attention_backward,
                                flash_attention_forward, linear_attention_backward,
                                linear_attention_forward)
from attnkit.nn import MultiHeadAttention

B, H, D_K = 8, 8, 64
D_MODEL = H * D_K
MIB = 2 ** 20

try:
    import torch
except ImportError:      # PyTorch is not a project requirement
    torch = None


# ----------------------------------------------------------------------------
# the workloads: each maker returns a function of no arguments that runs one call

def attnkit_attention(T, backward, rng):
    q, k, v, dout = (rng.standard_normal((B, H, T, D_K), dtype=np.float32) for _ in range(4))

    def run():
        out, cache = attention_forward(q, k, v)                     # (B, h, T, d_k)
        if backward:
            attention_backward(dout, cache)
    return run


def attnkit_inference(T, backward, rng):
    q, k, v = (rng.standard_normal((B, H, T, D_K), dtype=np.float32) for _ in range(3))
    if backward:
        raise ValueError("attention() is the forward alone: it has no backward")
    return lambda: attention(q, k, v)                                # (B, h, T, d_k)


def attnkit_mha(T, backward, rng):
    mha = MultiHeadAttention(D_MODEL, H, rng=rng).eval()
    x = rng.standard_normal((B, T, D_MODEL), dtype=np.float32)      # (B, T, d_model)
    dout = rng.standard_normal((B, T, D_MODEL), dtype=np.float32)

    def run():
        mha.forward(x)
        if backward:
            mha.backward(dout)
    return run


def torch_attention(T, backward, rng):
    q, k, v, dout = (torch.from_numpy(rng.standard_normal((B, H, T, D_K), dtype=np.float32))
                     for _ in range(4))
    if backward:
        for t in (q, k, v):
            t.requires_grad_(True)

    def run():
        if backward:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            out.backward(dout)
            q.grad = k.grad = v.grad = None
        else:
            with torch.no_grad():
                torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return run


def torch_mha(T, backward, rng):
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(D_MODEL, H, batch_first=True).eval()
    x = torch.from_numpy(rng.standard_normal((B, T, D_MODEL), dtype=np.float32))
    dout = torch.from_numpy(rng.standard_normal((B, T, D_MODEL), dtype=np.float32))

    def run():
        if backward:
            out, _ = mha(x, x, x, need_weights=False)
            out.backward(dout)
            mha.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                mha(x, x, x, need_weights=False)
    return run


def attnkit_tiled(T, backward, rng, causal=False, batch=B):
    q, k, v, dout = (rng.standard_normal((batch, H, T, D_K), dtype=np.float32) for _ in range(4))

    def run():
        out, cache = flash_attention_forward(q, k, v, causal=causal)    # (B, h, T, d_k)
        if backward:
            flash_attention_backward(dout, cache)
    return run


def attnkit_linear(T, backward, rng):
    q, k, v, dout = (rng.standard_normal((B, H, T, D_K), dtype=np.float32) for _ in range(4))

    def run():
        out, cache = linear_attention_forward(q, k, v, causal=True)     # (B, h, T, d_k)
        if backward:
            linear_attention_backward(dout, cache)
    return run


WORKLOADS = {"attention": (attnkit_attention, torch_attention), "inference": (attnkit_inference, torch_attention),
             "MHA": (attnkit_mha, torch_mha)}
FORWARD_ONLY = {"inference"}


# ----------------------------------------------------------------------------
# measuring

PAUSE = 0.05             # seconds slept before each library's turn (--pause; see the docstring)
WARM_MS = 30.0           # untimed calls for this long after the pause, at least one (--warm-ms)
BURST = 3                # timed calls after them, each one a sample (--burst)


def turn_text(long_calls=False):
    """How each library's turn is timed, for the report's first line."""
    if PAUSE == 0:
        return "plain alternation, one timed call a turn"
    if long_calls:
        return f"a turn: pause {PAUSE} s, one untimed call, one timed"
    return f"a turn: pause {PAUSE} s, untimed calls for {WARM_MS:.0f} ms, {BURST} timed"


def time_pair(runs, repeats, warm_ms=None, burst=None):
    """Median wall time in ms of each function in runs, alternating them within every repeat.

    Each repeat gives each function a turn: the pause, untimed calls for warm_ms milliseconds
    (at least one), `burst` timed ones (default WARM_MS and BURST; see the module docstring)."""
    warm_ms = WARM_MS if warm_ms is None else warm_ms
    burst = BURST if burst is None else burst
    for run in runs:      # warm-up: first-touch page faults, OpenBLAS thread start-up
        run()
    times = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            if PAUSE > 0:
                time.sleep(PAUSE)                                   # the other library's threads go idle
            if PAUSE > 0:
                t_warm = time.perf_counter()
                run()                                               # untimed: this one's threads warm again
                while (time.perf_counter() - t_warm) * 1e3 < warm_ms:
                    run()
            for _ in range(burst):
                t0 = time.perf_counter()
                run()
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def traced_peak_mib(run):
    """Peak extra NumPy memory of one call, from tracemalloc (see the module docstring)."""
    run()                 # warm-up outside tracing
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - before) / MIB


def current_rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    """The process's peak resident memory (VmHWM) in bytes, or ru_maxrss where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # kB on Linux


def rss_probe(kind, T, backward):
    """Child-process entry point: print the peak RSS increase of one PyTorch call in bytes.

    The peak is reset to the current resident memory first (writing 5 to /proc/self/clear_refs,
    Linux): otherwise a peak reached earlier, while PyTorch was imported, could hide the call's
    (the same call measured 20 and 81 MiB in one run)."""
    run = WORKLOADS[kind][1](T, backward, np.random.default_rng(0))
    before = current_rss_bytes()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    run()
    print(max(peak_rss_bytes() - before, 0))


def torch_peak_mib(kind, T, backward):
    cmd = [sys.executable, __file__, "--_probe", kind, str(T), str(int(backward))]     # inherits the env
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return int(res.stdout.strip()) / MIB


def tiled_report(Ts, repeats, use_torch):
    """Tiled against naive attnkit attention and PyTorch, forward + backward, alternating."""
    print(f"{'tiled fwd+bwd':<14} {'T':>5} {'naive ms':>9} {'tiled ms':>9} {'causal ms':>10}"
          + (f" {'torch ms':>9}" if use_torch else "") + f" {'tiled/naive':>11}"
          + (f" {'tiled/torch':>11}" if use_torch else ""))
    for T in Ts:
        rng = np.random.default_rng(0)
        runs = [attnkit_attention(T, True, rng), attnkit_tiled(T, True, rng),
                attnkit_tiled(T, True, rng, causal=True)]
        if use_torch:
            runs.append(torch_attention(T, True, rng))
        t = time_pair(runs, repeats, warm_ms=0, burst=1)               # calls of a second or more
        line = f"{'':<14} {T:>5} {t[0]:>9.0f} {t[1]:>9.0f} {t[2]:>10.0f}"
        if use_torch:
            line += f" {t[3]:>9.0f}"
        line += f" {t[1] / t[0]:>11.2f}" + (f" {t[1] / t[3]:>11.2f}" if use_torch else "")
        print(line, f"(load {os.getloadavg()[0]:.1f})", flush=True)


def tiled_memory_report(T=8192):
    """Peak extra memory of causal tiled fwd+bwd at B=1, beyond out and the three gradients."""
    run = attnkit_tiled(T, True, np.random.default_rng(0), causal=True, batch=1)
    peak = traced_peak_mib(run)
    results = 4 * H * T * D_K * 4 / MIB            # out, dq, dk, dv in float32
    print(f"causal tiled fwd+bwd, B=1, h={H}, T={T}: peak traced {peak:.1f} MiB, of which out + "
          f"dq + dk + dv {results:.0f} MiB: extra {peak - results:.1f} MiB (target <= 64); a naive "
          f"score tensor alone would be {H * T * T * 4 / MIB:.0f} MiB")


def linear_report(Ts, repeats):
    """Causal linear attention (fwd and fwd+bwd) against T, with the log-log slope."""
    rows = []
    for T in Ts:
        rng = np.random.default_rng(0)
        t = time_pair([attnkit_linear(T, False, rng), attnkit_linear(T, True, rng)], repeats,
                      warm_ms=0, burst=1)
        rows.append(t)
        print(f"linear causal  T={T:>5}  fwd {t[0]:>8.1f} ms  fwd+bwd {t[1]:>8.1f} ms "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    slope = np.polyfit(np.log(Ts), np.log([r[1] for r in rows]), 1)[0]
    print(f"log-log slope of fwd+bwd time against T: {slope:.2f} (softmax attention: about 2)")


def main():
    global PAUSE, WARM_MS, BURST
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", type=int, nargs="+", help="sequence lengths (default 128 512 2048)")
    ap.add_argument("--quick", action="store_true", help="T = 128 512 and fewer repeats")
    ap.add_argument("--repeats", type=int, help="timed repeats per measurement (default 7, 3 at T >= 2048)")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    ap.add_argument("--only", choices=sorted(WORKLOADS), nargs="+", help="run these workloads only")
    ap.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: the libraries' own)")
    ap.add_argument("--pause", type=float, default=PAUSE,
                    help=f"seconds slept before each library's turn (default {PAUSE}; 0 = plain "
                         "alternation, one timed call a turn, nothing untimed)")
    ap.add_argument("--warm-ms", type=float, default=WARM_MS,
                    help=f"untimed calls for this many ms after the pause, at least one (default {WARM_MS:.0f})")
    ap.add_argument("--burst", type=int, default=BURST,
                    help=f"timed calls a turn, each one a sample of the median (default {BURST})")
    ap.add_argument("--tiled", action="store_true", help="tiled vs naive vs PyTorch (default T = 2048)")
    ap.add_argument("--tiled-memory", action="store_true", help="causal tiled fwd+bwd memory at T = 8192, B = 1")
    ap.add_argument("--linear", action="store_true", help="linear attention against T (default 512 ... 4096)")
    ap.add_argument("--_probe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    PAUSE, WARM_MS, BURST = args.pause, args.warm_ms, max(1, args.burst)
    if PAUSE == 0:
        BURST = 1
    if args.threads and torch is not None:
        torch.set_num_threads(args.threads)
    if args._probe:
        kind, T, backward = args._probe
        rss_probe(kind, int(T), bool(int(backward)))
        return

    use_torch = torch is not None and not args.no_torch
    if args.tiled or args.tiled_memory or args.linear:
        print(f"numpy {np.__version__} (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}), "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; h={H}, d_k={D_K}, float32; "
              f"{turn_text(long_calls=True)}")
        if args.tiled_memory:
            tiled_memory_report()
        if args.tiled:
            tiled_report(args.T or [2048], args.repeats or 3, use_torch)
        if args.linear:
            linear_report(args.T or [512, 1024, 2048, 4096], args.repeats or 3)
        return
    Ts = args.T or ([128, 512] if args.quick else [128, 512, 2048])
    print(f"numpy {np.__version__} (OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}), "
          + (f"torch {torch.__version__} ({torch.get_num_threads()} threads), " if use_torch else "PyTorch not used, ")
          + f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          + f"B={B}, h={H}, d_k={D_K}, d_model={D_MODEL}, float32; "
          + turn_text())
    print("times: median ms; mem: peak extra MiB (attnkit: tracemalloc, PyTorch: child-process "
          "peak RSS, an estimate)\n")
    head = f"{'workload':<10} {'pass':<8} {'T':>5} {'attnkit ms':>11}"
    if use_torch:
        head += f" {'torch ms':>9} {'ratio':>6}"
    head += f" {'attnkit MiB':>12}"
    if use_torch:
        head += f" {'torch MiB':>10}"
    head += f" {'scores MiB':>11}"
    print(head)
    kinds = [kind for kind in WORKLOADS if kind in args.only] if args.only else list(WORKLOADS)
    for T in Ts:
        repeats = args.repeats or (3 if args.quick or T >= 2048 else 7)
        for kind in kinds:
            for backward in (False,) if kind in FORWARD_ONLY else (False, True):
                make_ak, make_pt = WORKLOADS[kind]
                rng = np.random.default_rng(0)
                runs = [make_ak(T, backward, rng)]
                if use_torch:
                    runs.append(make_pt(T, backward, rng))
                times = time_pair(runs, repeats)
                line = f"{kind:<10} {'fwd+bwd' if backward else 'fwd':<8} {T:>5} {times[0]:>11.1f}"
                if use_torch:
                    line += f" {times[1]:>9.1f} {times[0] / times[1]:>6.2f}"
                if args.no_memory:
                    line += f" {'-':>12}" + (f" {'-':>10}" if use_torch else "")
                else:
                    line += f" {traced_peak_mib(runs[0]):>12.0f}"
                    if use_torch:
                        del runs
                        line += f" {torch_peak_mib(kind, T, backward):>10.0f}"
                line += f" {B * H * T * T * 4 / MIB:>11.0f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
