"""The book's conceptual diagrams draw, use the shared palette, and show the right masks."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

from attnkit import diagrams as D


@pytest.mark.parametrize("name", D.__all__[1:])
def test_each_diagram_draws(name):
    fig = getattr(D, name)()
    fig.canvas.draw()
    assert fig.axes, f"{name} drew no axes"
    plt.close(fig)


def _cells(ax, color):
    return sum(isinstance(p, Rectangle) and to_hex(p.get_facecolor()) == color for p in ax.patches)


def test_mask_grids_show_the_masks():
    T, n = 5, 3
    fig = D.mask_grids(lengths=(5, n), T=T)
    causal, padding, both = fig.axes
    green = D.COLORS["value"]
    assert _cells(causal, green) == T * (T + 1) // 2
    assert _cells(padding, green) == T * n
    assert _cells(both, green) == int(np.tril(np.ones((T, T)))[:, :n].sum())
    plt.close(fig)


def test_qkv_colours_are_the_books():
    fig = D.qkv_flow(T=4, d=3)
    ax = fig.axes[0]
    for role in ("query", "key", "value"):
        assert _cells(ax, D.COLORS[role]) == 4 * 3, role
    plt.close(fig)
