"""The optional data dependencies (the pyproject extra ``attnkit[data]``), imported on first use."""
import importlib

__all__ = ["need"]


def need(module, pip_name, what="this data set"):
    """Import module, or raise ImportError saying how to install it (pip install "attnkit[data]")."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {pip_name}, an optional dependency of attnkit: "
                          f'pip install "attnkit[data]" (or pip install {pip_name}; `make` installs '
                          "everything)") from None
