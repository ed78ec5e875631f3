"""The Colab set-up cell every chapter starts with: it installs attnkit on Colab, and does nothing elsewhere.

    python tests/colab_cell.py --check   exit 1 if a notebook lacks the current cell
    python tests/colab_cell.py --apply   put the current cell first in every notebook

Colab opens a chapter's .ipynb alone, without the repository, so attnkit and its data packages
are installed from the repository at the book's branch (``repository: url`` and ``branch`` in
_config.yml). The cell is tagged ``remove-cell``: the book does not show it. It prints nothing
when not on Colab, so inserting it changes no other output: --apply shifts the stored execution
counts by one, which is what a fresh top-to-bottom run gives (nbval re-runs every notebook in
``make test`` and compares every output). tests/check_launch.py colab runs the cell's install
commands in a fresh venv.
"""
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAG = "colab-setup"


def cell_source():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]
    url, branch = repo["url"].rstrip("/"), repo.get("branch", "main")
    nodeps = [line.strip() for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    return "\n".join([
        "# On Google Colab only: install attnkit and the data packages (elsewhere: nothing).",
        "import sys",
        'if "google.colab" in sys.modules:',
        f'    %pip install --quiet "attnkit[data] @ git+{url}@{branch}"',
        *(f"    %pip install --quiet --no-deps {req}" for req in nodeps),
    ])


def has_current_cell(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    return bool(code) and code[0].source == cell_source() and TAG in code[0].metadata.get("tags", [])


def apply(path):
    nb = nbformat.read(path, as_version=4)
    if has_current_cell(nb):
        return False
    old = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and TAG in c.metadata.get("tags", [])]
    for i in reversed(old):
        del nb.cells[i]
    shift = 0 if old else 1
    for c in nb.cells:
        if c.cell_type == "code" and c.execution_count is not None:
            c.execution_count += shift
            for out in c.outputs:
                if "execution_count" in out:
                    out["execution_count"] += shift
    cell = nbformat.v4.new_code_cell(cell_source(), metadata={"tags": ["remove-cell", TAG]})
    cell.execution_count = 1
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first_code, cell)
    nbformat.write(nb, path)
    return True


if __name__ == "__main__":
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if sys.argv[1:] == ["--apply"]:
        for p in notebooks:
            print(f"{p.name}: {'cell added' if apply(p) else 'up to date'}")
    elif sys.argv[1:] == ["--check"]:
        missing = [p.name for p in notebooks if not has_current_cell(nbformat.read(p, as_version=4))]
        if missing:
            sys.exit(f"no current Colab cell in {missing}: run python tests/colab_cell.py --apply")
    else:
        sys.exit(__doc__)
