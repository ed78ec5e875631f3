"""The launch buttons, tested here as closely as possible: a chapter runs where a reader clicks.

    python tests/check_launch.py binder [NOTEBOOK ...]
    python tests/check_launch.py colab  [NOTEBOOK ...]

binder: a fresh virtual environment set up exactly as binder/ says (pip install -r
binder/requirements.txt, then binder/postBuild from the repository root), as Binder's repo2docker
does. colab: a fresh virtual environment (standing in for Colab's Python) in which the install
commands of the notebook's own Colab cell are run, with the repository's address replaced by this
checkout (nothing can be fetched from GitHub here). Either way every data set the chapters read
must load there, and the chapter is then executed from notebooks/ as its working directory, in
that environment's own kernel, and must raise nothing.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["notebooks/01_attention_as_soft_lookup.ipynb"]
COLAB_MARK = '"google.colab" in sys.modules'
# Every data set the chapters read loads in the new environment (the packages installed with
# --no-deps are the ones a launch set-up forgets): a quick check beside the chapter run.
DATA_SMOKE = """
from attnkit.data.chars import load_shakespeare
from attnkit.data.sentiment import load_rotten_tomatoes
from attnkit.data.surnames import load_surnames
from attnkit.data.translation import make_translation_task
sizes = [len(load_shakespeare()), len(load_rotten_tomatoes()),
         len(load_surnames().train),
         len(make_translation_task("dates", 100, 10, 10).train)]
print("data sets load:", sizes)
"""


def run(cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def fresh_venv(where):
    run([sys.executable, "-m", "venv", where])
    bin_dir = Path(where) / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip", "setuptools>=77"])
    return bin_dir


def setup_binder(bin_dir):
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", "-r", ROOT / "binder/requirements.txt"])
    run(["bash", ROOT / "binder/postBuild"], cwd=ROOT, env=env)


def colab_commands(notebook):
    """The pip commands of the notebook's Colab cell (the code cell that tests for google.colab)."""
    nb = nbformat.read(ROOT / notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and COLAB_MARK in cell.source:
            return [line.strip()[len("%pip "):] for line in cell.source.splitlines()
                    if line.strip().startswith("%pip ")]
    sys.exit(f"{notebook} has no Colab cell (a code cell testing {COLAB_MARK}): add it first")


def setup_colab(bin_dir, notebook):
    commands = colab_commands(notebook)
    if not commands:
        sys.exit(f"the Colab cell of {notebook} has no %pip command")
    # what Colab's runtime already has and a bare venv lacks: a kernel and the notebook runner
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", "ipykernel", "nbconvert"])
    for command in commands:
        # the repository as Colab would fetch it, but from this checkout: file:// instead of git+https
        command = re.sub(r"git\+https://\S+?@[\w.\-/]+", ROOT.as_uri(), command)
        run([bin_dir / "python", "-m", "pip", *shlex.split(command)])


def execute(bin_dir, notebook, out_dir):
    start = time.perf_counter()
    run([bin_dir / "jupyter", "nbconvert", "--to", "notebook", "--execute", ROOT / notebook,
         "--output-dir", out_dir, "--ExecutePreprocessor.timeout=900",
         "--ExecutePreprocessor.kernel_name=python3"],
        cwd=ROOT / "notebooks", env=dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    return time.perf_counter() - start


def main(argv):
    if not argv or argv[0] not in ("binder", "colab"):
        sys.exit(__doc__)
    kind, notebooks = argv[0], argv[1:] or DEFAULT
    tmp = tempfile.mkdtemp(prefix=f"attnkit-{kind}-")
    try:
        start = time.perf_counter()
        bin_dir = fresh_venv(Path(tmp) / "venv")
        if kind == "binder":
            setup_binder(bin_dir)
        else:
            setup_colab(bin_dir, notebooks[0])
        print(f"{kind}: environment set up in {time.perf_counter() - start:.0f} s", flush=True)
        run([bin_dir / "python", "-c", DATA_SMOKE], cwd=ROOT / "notebooks")
        for nb in notebooks:
            print(f"{kind}: {nb} executed in {execute(bin_dir, nb, tmp):.0f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
