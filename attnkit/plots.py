"""Figures the chapters share: attention heatmaps and friends (matplotlib)."""
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["heatmap", "heatmaps"]


def heatmap(weights, xlabels=None, ylabels=None, ax=None, title=None, annotate=None,
            cmap="viridis", vmin=0.0, vmax=None, xlabel="keys", ylabel="queries"):
    """Draw a (T_q, T_k) matrix of attention weights; rows are queries, columns keys. Returns the image.

    annotate: write each value in its cell (default: when the matrix is at most 10 x 10).
    """
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D (T_q, T_k) array, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * w.shape[1] + 2, 0.5 * w.shape[0] + 1.5))
    im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for labels, n, setter, ticks in ((xlabels, w.shape[1], ax.set_xticklabels, ax.set_xticks),
                                     (ylabels, w.shape[0], ax.set_yticklabels, ax.set_yticks)):
        if labels is not None:
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for an axis of length {n}")
            ticks(range(n))
            setter(labels)
    if xlabels is not None:
        plt.setp(ax.get_xticklabels(), rotation=60, ha="right", rotation_mode="anchor")
    if annotate is None:
        annotate = w.shape[0] <= 10 and w.shape[1] <= 10
    if annotate:
        hi = np.nanmax(w) if vmax is None else vmax
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if w[i, j] > 0.6 * hi else "white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return im


def heatmaps(weights, xlabels=None, ylabels=None, titles=None, ncols=4, size=2.6, **kwargs):
    """Draw a row/grid of heatmaps from (n, T_q, T_k) weights (one per head, say). Returns the figure."""
    w = np.asarray(weights)
    if w.ndim != 3:
        raise ValueError(f"heatmaps needs an (n, T_q, T_k) array, got shape {w.shape}")
    n = w.shape[0]
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    annotate = kwargs.pop("annotate", False)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1, size * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        heatmap(w[i], xlabels, ylabels, ax=ax, title=None if titles is None else titles[i],
                annotate=annotate, **kwargs)
    fig.tight_layout()
    return fig
