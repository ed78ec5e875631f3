"""attnkit: attention mechanisms and Transformers from scratch in NumPy (the package behind the book)."""
__version__ = "0.1.0"
