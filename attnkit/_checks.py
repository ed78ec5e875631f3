"""Argument checks shared across attnkit: one definition of "an integer" (a bool is not one)."""
import numpy as np

__all__ = ["is_int", "check_int"]


def is_int(value):
    """True for Python and NumPy integers, False for bools (True is an int in Python) and the rest."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name, minimum=None, hint=""):
    """value as an int, or ValueError naming it (and the hint) unless it is an integer >= minimum."""
    if not is_int(value) or (minimum is not None and value < minimum):
        need = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {need}{hint}, got {value!r}")
    return int(value)
