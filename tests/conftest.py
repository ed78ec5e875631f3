"""Test doubles shared by several test files (pytest loads this file; nothing imports it)."""
import numpy as np
import pytest


class ScaleByPosition:
    """A linear, position-dependent stand-in for rotary embeddings, for MultiHeadAttention.rotary:
    x_t -> (1 + t / 10) x_t; its backward multiplies by the same factor. Keeps the positions it saw."""

    def __init__(self):
        self.seen = []

    def forward(self, x, positions):
        self.seen.append(np.asarray(positions).copy())
        return x * (1.0 + np.asarray(positions) / 10.0)[:, None]

    def backward(self, dx, positions):
        return dx * (1.0 + np.asarray(positions) / 10.0)[:, None]


@pytest.fixture
def scale_by_position():
    return ScaleByPosition()
