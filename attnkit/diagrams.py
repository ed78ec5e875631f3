"""Conceptual diagrams of the book, drawn by code (matplotlib) so that every figure has its source.

One palette for the whole book: queries are always blue, keys orange, values green, attention
weights purple, and everything else grey, so a reader can follow Q, K and V from chapter to
chapter. Each function returns the matplotlib Figure; the notebooks show it with ``plt.show()``.
"""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = ["COLORS", "qkv_flow", "split_merge_heads", "residual_placements", "mask_grids",
           "kv_cache_growth", "beam_search_tree", "gpt_block", "rnn_encoder_decoder"]

COLORS = {
    "query": "#4c72b0",    # blue
    "key": "#dd8452",      # orange
    "value": "#55a868",    # green
    "weights": "#8172b3",  # purple
    "input": "#8c8c8c",    # grey
    "output": "#c44e52",   # red
    "norm": "#f3e79b",     # pale yellow (layer norm)
    "ffn": "#b9dcf2",      # pale blue (feed-forward)
    "masked": "#d9d9d9",   # light grey (a masked-out entry)
}


def _canvas(width, height, xlim, ylim):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _box(ax, x, y, w, h, text, color, text_color="white", fontsize=11, alpha=1.0):
    """A rounded box centred on (x, y)."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, alpha=alpha,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec="black", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=text_color)


def _arrow(ax, x0, y0, x1, y1, color="black", text=None, offset=(0.0, 0.12), fontsize=9):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12,
                                 lw=1.1, color=color, shrinkA=0, shrinkB=0))
    if text:
        ax.text((x0 + x1) / 2 + offset[0], (y0 + y1) / 2 + offset[1], text, ha="center",
                va="bottom", fontsize=fontsize, color=color)


def _matrix(ax, x, y, rows, cols, color, cell=0.22, label=None, values=None, fontsize=10):
    """A grid of rows x cols cells with its lower-left corner at (x, y); values shade the cells."""
    for i in range(rows):
        for j in range(cols):
            shade = 1.0 if values is None else 0.15 + 0.85 * float(values[i, j])
            ax.add_patch(Rectangle((x + j * cell, y + (rows - 1 - i) * cell), cell, cell,
                                   fc=color, alpha=shade, ec="white", lw=0.8))
    if label:
        ax.text(x + cols * cell / 2, y + rows * cell + 0.08, label, ha="center", va="bottom",
                fontsize=fontsize)
    return x + cols * cell, y + rows * cell


def qkv_flow(T=4, d=3):
    """Tokens X become queries, keys and values; scores -> softmax -> weights -> weighted sum of values."""
    fig, ax = _canvas(9.0, 3.6, (0, 13.2), (-0.7, 4.6))
    cell = 0.24
    # the input: T tokens of width d
    _matrix(ax, 0.2, 1.4, T, d, COLORS["input"], cell, r"$\mathbf{X}$  (T, d)")
    x_in = 0.2 + d * cell
    ys = {"query": 3.4, "key": 1.9, "value": 0.4}
    names = {"query": r"$\mathbf{Q}=\mathbf{X}\mathbf{W}^Q$", "key": r"$\mathbf{K}=\mathbf{X}\mathbf{W}^K$",
             "value": r"$\mathbf{V}=\mathbf{X}\mathbf{W}^V$"}
    for role, y in ys.items():
        _arrow(ax, x_in + 0.1, 1.4 + T * cell / 2, 2.0, y + T * cell / 2, COLORS[role])
        _matrix(ax, 2.1, y, T, d, COLORS[role], cell)
        ax.text(2.1 + d * cell + 0.12, y + T * cell / 2, names[role], va="center", fontsize=11,
                color=COLORS[role])
    # scores from Q and K
    s = np.cos(np.add.outer(np.arange(T), 2 * np.arange(T)))  # fixed scores: a picture, not data
    w = np.exp(s - s.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    _arrow(ax, 4.3, 3.55, 6.0, 2.75, COLORS["query"])
    _arrow(ax, 4.3, 2.3, 6.0, 2.45, COLORS["key"])
    _box(ax, 6.9, 2.6, 1.7, 0.75, r"$\frac{\mathbf{Q}\mathbf{K}^\top}{\sqrt{d_k}}$", "white",
         "black", fontsize=13)
    _arrow(ax, 7.75, 2.6, 8.35, 2.6)
    ax.text(8.05, 2.0, "softmax\nper row", ha="center", va="top", fontsize=9)
    _matrix(ax, 8.45, 2.6 - T * cell / 2, T, T, COLORS["weights"], cell, values=w / w.max())
    ax.text(8.45 + T * cell / 2, 2.6 + T * cell / 2 + 0.1, r"weights $\mathbf{A}$ (T, T)",
            ha="center", va="bottom", fontsize=10, color=COLORS["weights"])
    # weights times values
    _arrow(ax, 8.45 + T * cell + 0.1, 2.6, 10.55, 1.35, COLORS["weights"])
    _arrow(ax, 4.3, 0.85, 10.55, 0.95, COLORS["value"])
    _box(ax, 11.0, 1.15, 0.8, 0.6, r"$\mathbf{A}\mathbf{V}$", "white", "black", fontsize=12)
    _arrow(ax, 11.4, 1.15, 11.85, 1.15)
    _matrix(ax, 11.95, 1.15 - T * cell / 2, T, d, COLORS["output"], cell, "output (T, d)")
    ax.text(6.6, -0.45, "row i of A says how much token i takes from each token's value",
            ha="center", fontsize=10, color="#444444")
    return fig


def split_merge_heads(T=4, h=3, d_k=2):
    """(T, d_model) -> (T, h, d_k) -> (h, T, d_k): one attention per head -> merged back to (T, d_model)."""
    fig, ax = _canvas(9.5, 3.2, (0, 17.0), (-0.95, 3.4))
    cell = 0.26
    head_colors = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#c44e52", "#937860"]
    cols = [head_colors[i % len(head_colors)] for i in range(h)]
    width = h * d_k * cell

    def striped(x, y, label):
        for i in range(h):
            _matrix(ax, x + i * d_k * cell, y, T, d_k, cols[i], cell)
        ax.text(x + width / 2, y + T * cell + 0.12, label, ha="center", va="bottom", fontsize=10)

    def heads(x, label, gap=0.9):
        for i in range(h):
            _matrix(ax, x + i * gap, 1.0, T, d_k, cols[i], cell)
        ax.text(x + ((h - 1) * gap + d_k * cell) / 2, 1.0 + T * cell + 0.12, label,
                ha="center", va="bottom", fontsize=10)
        return x + (h - 1) * gap + d_k * cell

    def step(x0, x1, text):
        _arrow(ax, x0, 1.0 + T * cell / 2, x1, 1.0 + T * cell / 2)
        ax.text((x0 + x1) / 2, 0.85, text, ha="center", va="top", fontsize=9)

    striped(0.2, 1.0, r"$\mathbf{Q}$: (T, $d_{model}$)")
    step(0.4 + width, 3.3, "reshape to\n(T, h, $d_k$),\nswap T and h")
    x = heads(3.5, "h heads: (h, T, $d_k$)")
    step(x + 0.2, x + 2.6, "attention in\neach head,\nside by side")
    x = heads(x + 2.8, "head outputs (h, T, $d_k$)")
    step(x + 0.2, x + 2.6, "swap back,\nreshape")
    striped(x + 2.8, 1.0, "merged: (T, $d_{model}$)")
    ax.text(8.5, -0.85, r"then one output projection $\mathbf{W}^O$ mixes the heads",
            ha="center", fontsize=10, color="#444444")
    return fig


def residual_placements():
    """Post-LN (the 2017 paper) beside pre-LN (GPT-2 and most models since) for one sublayer."""
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.8))
    for ax, (title, order) in zip(axes, [("post-LN: x = LN(x + F(x))", "post"),
                                         ("pre-LN: x = x + F(LN(x))", "pre")]):
        ax.set_xlim(0, 4)
        ax.set_ylim(0, 6)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(title, fontsize=11)
        ax.text(2, 0.25, "x", ha="center", fontsize=12)
        if order == "post":
            _box(ax, 2, 2.2, 2.2, 0.6, "sublayer F", COLORS["ffn"], "black")
            _box(ax, 2, 3.5, 0.6, 0.6, "+", "white", "black", fontsize=13)
            _box(ax, 2, 4.7, 2.2, 0.6, "LayerNorm", COLORS["norm"], "black")
            _arrow(ax, 2, 0.55, 2, 1.9)
            _arrow(ax, 2, 2.5, 2, 3.2)
            _arrow(ax, 2, 3.8, 2, 4.4)
            _arrow(ax, 2, 5.0, 2, 5.7)
            ax.plot([2, 0.4, 0.4], [1.2, 1.2, 3.5], color="gray", lw=1.2)
            _arrow(ax, 0.4, 3.5, 1.7, 3.5, color="gray")
            ax.text(0.3, 2.3, "skip", rotation=90, ha="center", va="center", fontsize=9,
                    color="gray")
        else:
            _box(ax, 2, 2.0, 2.2, 0.6, "LayerNorm", COLORS["norm"], "black")
            _box(ax, 2, 3.3, 2.2, 0.6, "sublayer F", COLORS["ffn"], "black")
            _box(ax, 2, 4.6, 0.6, 0.6, "+", "white", "black", fontsize=13)
            _arrow(ax, 2, 0.55, 2, 1.7)
            _arrow(ax, 2, 2.3, 2, 3.0)
            _arrow(ax, 2, 3.6, 2, 4.3)
            _arrow(ax, 2, 4.9, 2, 5.7)
            ax.plot([2, 0.4, 0.4], [1.2, 1.2, 4.6], color="gray", lw=1.2)
            _arrow(ax, 0.4, 4.6, 1.7, 4.6, color="gray")
            ax.text(0.3, 2.9, "skip (untouched)", rotation=90, ha="center", va="center",
                    fontsize=9, color="gray")
    fig.tight_layout()
    return fig


def mask_grids(lengths=(5, 3), T=5):
    """The causal mask, a padding mask (one row per sequence's keys) and their combination, as grids.

    Green: the query (row) may attend to the key (column); grey: masked out.
    """
    causal = np.tril(np.ones((T, T), dtype=bool))
    n = lengths[-1]
    padding = np.zeros((T, T), dtype=bool)
    padding[:, :n] = True
    grids = [(causal, "causal: key j <= query i"),
             (padding, f"padding: only the first {n}\nof {T} positions are real"),
             (causal & padding, "both (a padded decoder\ninput)")]
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.3))
    for ax, (m, title) in zip(axes, grids):
        for i in range(T):
            for j in range(T):
                ax.add_patch(Rectangle((j, T - 1 - i), 1, 1, ec="white", lw=1.5,
                                       fc=COLORS["value"] if m[i, j] else COLORS["masked"]))
        ax.set_xlim(0, T)
        ax.set_ylim(0, T)
        ax.set_aspect("equal")
        ax.set_xticks(np.arange(T) + 0.5, [str(j) for j in range(T)])
        ax.set_yticks(np.arange(T) + 0.5, [str(i) for i in reversed(range(T))])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def kv_cache_growth(steps=4, d=3):
    """Decoding step by step: each step appends one key and one value; the new query reads them all."""
    fig, ax = _canvas(9.0, 3.4, (0, 14.5), (-0.9, 4.3))
    cell = 0.26
    for s in range(1, steps + 1):
        x = 0.4 + (s - 1) * 3.55
        ax.text(x + 1.1, 3.9, f"step s = {s}", ha="center", fontsize=11)
        # cached keys (old: faded) and the new one (full colour)
        for role, y in (("key", 1.9), ("value", 0.2)):
            for i in range(s):
                alpha = 1.0 if i == s - 1 else 0.35
                for j in range(d):
                    ax.add_patch(Rectangle((x + j * cell, y + (steps - 1 - i) * cell), cell, cell,
                                           fc=COLORS[role], alpha=alpha, ec="white", lw=0.8))
            ax.text(x + d * cell + 0.12, y + (steps - s) * cell + s * cell / 2,
                    "K" if role == "key" else "V", va="center", fontsize=11, color=COLORS[role])
        # the one new query
        for j in range(d):
            ax.add_patch(Rectangle((x + 1.45 + j * cell, 3.0), cell, cell, fc=COLORS["query"],
                                   ec="white", lw=0.8))
        ax.text(x + 1.45 + d * cell / 2, 2.75, "new q", ha="center", va="top", fontsize=9,
                color=COLORS["query"])
    ax.text(7.0, -0.7, "faded rows: computed at earlier steps and kept; full colour: this step's "
            "new key and value", ha="center", fontsize=10, color="#444444")
    return fig


def beam_search_tree():
    """A beam of width 2 over three steps: kept hypotheses in colour, pruned ones grey."""
    fig, ax = _canvas(8.5, 3.8, (-0.3, 9.8), (-0.4, 4.6))
    # (step, y, token, cumulative log-prob, kept, parent index)
    nodes = [(0, 2.2, "<bos>", 0.0, True, None),
             (1, 3.7, "zwei", -0.4, True, 0), (1, 2.2, "drei", -1.3, True, 0),
             (1, 0.7, "vier", -2.9, False, 0),
             (2, 4.2, "und", -0.9, True, 1), (2, 3.2, "hundert", -1.2, True, 1),
             (2, 1.9, "und", -2.1, False, 2), (2, 0.9, "hundert", -1.9, False, 2),
             (3, 4.2, "zwanzig", -1.1, True, 4), (3, 3.2, "dreißig", -2.4, False, 4),
             (3, 2.1, "<eos>", -1.5, True, 5)]
    pos = []
    for step, y, tok, lp, kept, parent in nodes:
        x = 0.6 + step * 2.8
        pos.append((x, y))
        color = COLORS["weights"] if kept else COLORS["masked"]
        if parent is not None:
            px, py = pos[parent]
            ax.plot([px + 0.75, x - 0.75], [py, y], color=color if kept else "#bbbbbb",
                    lw=1.6 if kept else 1.0, zorder=1)
        _box(ax, x, y, 1.5, 0.55, f"{tok}\n{lp:.1f}", color, "white" if kept else "#555555",
             fontsize=9)
    for step in range(4):
        ax.text(0.6 + step * 2.8, -0.25, f"step {step}", ha="center", fontsize=10)
    return fig


def gpt_block(num_layers_label="N"):
    """The decoder-only model: embeddings, N pre-LN blocks of causal self-attention and
    feed-forward, a final LayerNorm and the logits; beside it the causal mask every block uses."""
    fig = plt.figure(figsize=(8.0, 5.6))
    ax = fig.add_axes([0.0, 0.0, 0.62, 1.0])
    ax.set_xlim(0, 6)
    ax.set_ylim(0, 10.6)
    ax.set_aspect("equal")
    ax.axis("off")
    x, w = 3.0, 3.0
    ax.text(x, 0.25, "token ids  $t_1 \\dots t_T$", ha="center", fontsize=11)
    _box(ax, x, 1.3, w, 0.6, "token + position embeddings", "#f4c2c2", "black", fontsize=9)
    _arrow(ax, x, 0.6, x, 1.0)
    # one pre-LN block, drawn once inside a dashed frame
    ax.add_patch(Rectangle((x - w / 2 - 0.35, 2.05), w + 0.7, 5.25, fill=False, ls="--",
                           ec="#555555", lw=1.2))
    ax.text(x + w / 2 + 0.5, 4.7, f"$\\times {num_layers_label}$", fontsize=14, va="center")
    _box(ax, x, 2.75, w * 0.7, 0.55, "LayerNorm", COLORS["norm"], "black", fontsize=10)
    _box(ax, x, 3.75, w, 0.6, "masked self-attention", COLORS["weights"], "white", fontsize=10)
    _box(ax, x, 4.65, 0.5, 0.5, "+", "white", "black", fontsize=13)
    _box(ax, x, 5.45, w * 0.7, 0.55, "LayerNorm", COLORS["norm"], "black", fontsize=10)
    _box(ax, x, 6.35, w, 0.6, "feed-forward", COLORS["ffn"], "black", fontsize=10)
    _box(ax, x, 7.0, 0.5, 0.5, "+", "white", "black", fontsize=13)  # overlaps the frame's top
    for y0, y1 in ((1.6, 2.47), (3.03, 3.45), (4.05, 4.4), (4.9, 5.17), (5.73, 6.05),
                   (6.65, 6.75), (7.25, 8.05)):
        _arrow(ax, x, y0, x, y1)
    # the residual stream skips each sublayer
    for y_from, y_to in ((2.25, 4.65), (4.95, 7.0)):
        ax.plot([x, x - w / 2 - 0.15, x - w / 2 - 0.15], [y_from, y_from, y_to], color="gray",
                lw=1.2)
        _arrow(ax, x - w / 2 - 0.15, y_to, x - 0.27, y_to, color="gray")
    ax.text(x - w / 2 - 0.65, 4.7, "residual stream", rotation=90, ha="center", va="center",
            fontsize=9, color="gray")
    _box(ax, x, 8.35, w * 0.7, 0.55, "LayerNorm", COLORS["norm"], "black", fontsize=10)
    _box(ax, x, 9.3, w, 0.6, "linear: logits (T, V)", "#d4c4ea", "black", fontsize=10)
    _arrow(ax, x, 8.63, x, 9.0)
    _arrow(ax, x, 9.6, x, 10.0)
    ax.text(x, 10.25, "position t scores token t + 1", ha="center", fontsize=10)
    # the causal mask
    T = 6
    ax2 = fig.add_axes([0.64, 0.3, 0.33, 0.4])
    for i in range(T):
        for j in range(T):
            ax2.add_patch(Rectangle((j, T - 1 - i), 1, 1, ec="white", lw=1.5,
                                    fc=COLORS["weights"] if j <= i else COLORS["masked"]))
    ax2.set_xlim(0, T)
    ax2.set_ylim(0, T)
    ax2.set_aspect("equal")
    ax2.set_xticks([])
    ax2.set_yticks([])
    for side in ax2.spines.values():
        side.set_visible(False)
    ax2.set_title("the causal mask:\nposition i reads positions <= i", fontsize=10)
    ax2.set_xlabel("key position", fontsize=9)
    ax2.set_ylabel("query position", fontsize=9)
    return fig


def rnn_encoder_decoder(S=4, step=2, weights=(0.1, 0.15, 0.6, 0.15)):
    """An RNN encoder-decoder with attention (Bahdanau et al. 2015): the encoder's states are the
    keys and values; at each step the decoder's state asks which of them to read."""
    if len(weights) != S:
        raise ValueError(f"weights needs one number per source position ({S}), got {len(weights)}")
    fig, ax = _canvas(8.6, 4.6, (-0.4, 11.2), (-0.6, 5.6))
    xs = [0.8 + 1.7 * j for j in range(S)]
    # encoder: a GRU over the source, one state per position
    for j, xj in enumerate(xs):
        ax.text(xj, -0.35, f"$x_{j + 1}$", ha="center", fontsize=11)
        _arrow(ax, xj, -0.05, xj, 0.45)
        _box(ax, xj, 0.8, 1.0, 0.6, "GRU", COLORS["input"], fontsize=10)
        if j:
            _arrow(ax, xs[j - 1] + 0.5, 0.8, xj - 0.5, 0.8)
        _box(ax, xj, 1.9, 0.7, 0.5, f"$h_{j + 1}$", COLORS["key"], fontsize=11)
        _arrow(ax, xj, 1.1, xj, 1.65)
    ax.text(xs[-1] + 0.6, 0.8, "encoder states:\nkeys and values", fontsize=9, va="center",
            color=COLORS["key"])
    # decoder step: state s_{t-1} scores every h_j, softmax, context c_t
    xd = 9.3
    _box(ax, xd, 4.6, 1.3, 0.6, "GRU", COLORS["input"], fontsize=10)
    _box(ax, xd - 2.6, 4.6, 0.9, 0.55, f"$s_{step - 1}$", COLORS["query"], fontsize=11)
    _arrow(ax, xd - 2.15, 4.6, xd - 0.65, 4.6)
    ax.text(xd - 2.6, 5.05, "decoder state\n(the query)", ha="center", va="bottom", fontsize=9,
            color=COLORS["query"])
    _box(ax, xd - 2.6, 3.2, 1.1, 0.55, f"$c_{step}$", COLORS["value"], fontsize=11)
    ax.text(xd - 1.95, 3.2, "context = $\\sum_j \\alpha_j h_j$", fontsize=9, va="center",
            color=COLORS["value"])
    _arrow(ax, xd - 2.6, 3.48, xd - 0.5, 4.3, COLORS["value"])
    _arrow(ax, xd - 2.6, 4.32, xd - 2.6, 3.48 + 0.02, COLORS["query"])
    for j, (xj, a) in enumerate(zip(xs, weights)):
        ax.plot([xj, xd - 3.1], [2.15, 3.05], color=COLORS["weights"], lw=0.8 + 8 * a,
                alpha=0.85, solid_capstyle="round")
        ax.text(xj + 0.42, 1.75, f"$\\alpha_{j + 1}$={a:.2f}", fontsize=8, color=COLORS["weights"])
    _arrow(ax, xd, 4.9, xd, 5.35)
    ax.text(xd, 5.45, f"$y_{step}$", ha="center", va="bottom", fontsize=11)
    ax.text(2.6, 4.6, "$\\alpha = \\mathrm{softmax}_j\\,(v^\\top \\tanh(W s + U h_j))$",
            ha="center", va="center", fontsize=10, color=COLORS["weights"])
    return fig
