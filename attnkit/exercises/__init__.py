"""Self-checking exercises: pass your function to a checker and get a pass or a specific hint.

    from attnkit.exercises.soft_lookup import check_softmax
    check_softmax(my_softmax)     # -> PASSED ... or NOT YET ... with a hint

One module per chapter topic holds that chapter's checkers; ``core`` holds the machinery.
"""
from .core import CheckResult, Hint, call, check, expect_array, expect_close

__all__ = ["CheckResult", "Hint", "call", "check", "expect_array", "expect_close"]
