"""The robustness shift: make_rng(s) is default_rng(s) unless ATTNKIT_SEED_SHIFT is set."""
import numpy as np
import pytest

from attnkit.seeding import SHIFT_VARIABLE, make_rng, seed_shift, shifted


def test_no_shift_is_default_rng(monkeypatch):
    monkeypatch.delenv(SHIFT_VARIABLE, raising=False)
    assert seed_shift() == 0
    assert np.array_equal(make_rng(3).random(5), np.random.default_rng(3).random(5))


def test_shift_moves_every_seed(monkeypatch):
    monkeypatch.setenv(SHIFT_VARIABLE, "2")
    assert shifted(5) == 7
    assert np.array_equal(make_rng(3).random(5), np.random.default_rng(5).random(5))


def test_generator_passes_through_unshifted(monkeypatch):
    monkeypatch.setenv(SHIFT_VARIABLE, "1")
    g = np.random.default_rng(0)
    assert make_rng(g) is g


def test_library_seeds_are_shifted(monkeypatch):
    # a layer built from an integer seed changes with the shift (initial weights are experiments too)
    from attnkit.nn import Linear
    monkeypatch.delenv(SHIFT_VARIABLE, raising=False)
    w0 = Linear(4, 4, seed=0).params["W"].copy()
    monkeypatch.setenv(SHIFT_VARIABLE, "1")
    w1 = Linear(4, 4, seed=0).params["W"]
    monkeypatch.setenv(SHIFT_VARIABLE, "0")
    assert not np.allclose(w0, w1)
    assert np.array_equal(w1, Linear(4, 4, seed=1).params["W"])


@pytest.mark.parametrize("bad", ["one", "1.5"])
def test_bad_shift_names_the_variable(monkeypatch, bad):
    monkeypatch.setenv(SHIFT_VARIABLE, bad)
    with pytest.raises(ValueError, match=SHIFT_VARIABLE):
        make_rng(0)


@pytest.mark.parametrize("bad", [1.0, True, "0", None])
def test_seed_must_be_an_integer(bad):
    with pytest.raises(TypeError):
        shifted(bad)


def test_fixed_rng_ignores_the_shift(monkeypatch):
    from attnkit.seeding import fixed_rng
    monkeypatch.setenv("ATTNKIT_SEED_SHIFT", "3")
    assert fixed_rng(5).random() == np.random.default_rng(5).random()
    with pytest.raises(TypeError):
        fixed_rng(True)
