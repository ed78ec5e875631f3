"""Assertions shared by the tests of the exercise checkers (tests/test_exercises_*.py)."""


def fails_with(result, text):
    """The checker rejected the answer, and its hint contains text."""
    assert not result.passed, f"expected a failure, got {result!r}"
    assert text in result.message, f"expected hint containing {text!r}, got {result.message!r}"


def passes(result):
    """The checker accepted the answer."""
    assert result.passed, repr(result)
