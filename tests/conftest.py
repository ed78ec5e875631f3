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


def _decode_in_steps(model, x, prefill, cache):
    """Feed x[:, :prefill] through model.forward with the cache, then one position at a time;
    returns the outputs of every call joined along time, to compare with model.forward(x)."""
    parts = [model.forward(x[:, :prefill], cache=cache)]
    parts += [model.forward(x[:, t:t + 1], cache=cache) for t in range(prefill, x.shape[1])]
    return np.concatenate(parts, axis=1)


@pytest.fixture
def stepwise():
    """_decode_in_steps, for tests that compare cached decoding with the full forward."""
    return _decode_in_steps
