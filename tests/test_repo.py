"""Repository rules: notebooks saved executed and listed in the book, references well formed, and the
HTML check's own logic (on small hand-made pages, no browser needed)."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NB_IDS = [p.name for p in NOTEBOOKS]


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def output_texts(cell):
    """The text of every output of a cell (images left out)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            yield "".join(out.get("text", ""))
        elif out.get("output_type") == "error":
            yield "\n".join(out.get("traceback", []))
        for mime, data in out.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                yield data if isinstance(data, str) else "".join(data) if isinstance(data, list) else json.dumps(data)


def toc_files():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return files


# ---------------------------------------------------------------------------- notebooks
def test_notebooks_are_numbered():
    bad = [p.name for p in NOTEBOOKS if not re.fullmatch(r"\d\d_[a-z0-9]+(_[a-z0-9]+)*\.ipynb", p.name)]
    assert not bad, f"name notebooks NN_lower_case_topic.ipynb: {bad}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    dups = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not dups, f"two notebooks share the number(s) {dups}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_saved_executed_top_to_bottom(path):
    cells = code_cells(load(path))
    counts = [c.get("execution_count") for c in cells]
    empty = [i for i, c in enumerate(cells, 1) if not "".join(c["source"]).strip()]
    assert not empty, f"{path.name}: empty code cells (number {empty} among code cells): delete them"
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..{len(cells)}: save it executed top to bottom in a "
        f"fresh kernel (python tests/execute_notebooks.py notebooks/{path.name})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_no_error_outputs(path):
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(code_cells(load(path)), 1)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: code cells that raised (cell number, error, message): {errors}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_kernelspec_is_python3(path):
    ks = load(path).get("metadata", {}).get("kernelspec", {})
    assert ks.get("name") == "python3", f"{path.name}: kernelspec {ks!r}, expected name 'python3'"


MACHINE_PATH = re.compile(r"(/home/[\w.-]+|/root|/Users/[\w.-]+|/tmp|/work|[A-Z]:\\\\Users)/[\w./-]+")
ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{6,}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_outputs_hold_no_machine_paths_or_addresses(path):
    found = []
    for i, cell in enumerate(code_cells(load(path)), 1):
        for text in output_texts(cell):
            for pattern, what in ((MACHINE_PATH, "absolute path"), (ADDRESS, "memory address")):
                found += [(i, what, m.group(0)) for m in pattern.finditer(text)]
    assert not found, (f"{path.name}: outputs show this machine's paths or object addresses (code cell, what, text): "
                       f"{found[:10]}. Print relative paths; end plotting cells with plt.show(); "
                       "print values, not object reprs.")


def test_trained_chapters_in_the_makefile_exist():
    line = re.search(r"^TRAINED_CHAPTERS\s*:?=(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert line, "the Makefile lost its TRAINED_CHAPTERS list (chapters the robustness run checks in CI)"
    numbers = line.group(1).split()
    missing = [n for n in numbers if not any(p.name.startswith(f"{n}_") for p in NOTEBOOKS)]
    assert numbers and not missing, f"TRAINED_CHAPTERS lists chapters with no notebook: {missing}"


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    files = toc_files()
    missing = [f for f in files if not any((ROOT / f"{f}{ext}").is_file() for ext in ("", ".md", ".ipynb"))]
    assert not missing, f"book/_toc.yml lists files that do not exist: {missing}"
    listed = {f.removesuffix(".ipynb") for f in files}
    absent = [p.name for p in NOTEBOOKS if f"notebooks/{p.stem}" not in listed]
    assert not absent, f"notebooks missing from book/_toc.yml: {absent}"
    dups = sorted({f for f in files if files.count(f) > 1})
    assert not dups, f"book/_toc.yml lists these twice: {dups}"


def test_setup_page_clones_the_configured_repository():
    url = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
    clones = re.findall(r"git clone (\S+)", (ROOT / "book" / "setup.md").read_text(encoding="utf-8"))
    assert clones == [url], (f"book/setup.md clones {clones}, _config.yml's repository.url is {url!r}: "
                             "write the same address in both")


# ---------------------------------------------------------------------------- references
def test_references_are_well_formed():
    text = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    entries = re.findall(r"^@(\w+)\{([^,\s]+),(.*?)^\}", text, re.M | re.S)
    assert len(entries) == len(re.findall(r"^@", text, re.M)), "an entry does not close with '}' on its own line"
    keys = [k for _, k, _ in entries]
    assert len(keys) == len(set(keys)), f"duplicate keys: {sorted({k for k in keys if keys.count(k) > 1})}"
    for kind, key, body in entries:
        fields = set(re.findall(r"^\s*(\w+)\s*=", body, re.M))
        need = {"author", "title", "year"} | ({"booktitle"} if kind == "inproceedings" else set()) \
            | ({"journal"} if kind == "article" else set())
        assert need <= fields, f"{key}: missing {sorted(need - fields)}"


# ---------------------------------------------------------------------------- the HTML check itself
def _check_html():
    spec = importlib.util.spec_from_file_location("check_html", ROOT / "tests" / "check_html.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD_PAGE = """<html><head><script src="../_static/app.js"></script>
<link rel="stylesheet" href="../_static/style.css"><link rel="next" href="b.html"></head>
<body><h1 id="top">Title</h1><p>Inline <span class="math">
<mjx-container><mjx-math></mjx-math></mjx-container></span> and $5 or $6.</p>
<pre>code with $$ and \\( left alone</pre><img src="../_images/fig.png">
<a href="b.html#sec">b</a> <a href="#top">top</a> <a href="https://example.org/">elsewhere</a></body></html>"""


@pytest.fixture
def book(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "ch").mkdir()
    (tmp_path / "_static" / "app.js").write_text("//")
    (tmp_path / "_static" / "style.css").write_text("body { background: url(img.png) }")
    (tmp_path / "_images" / "fig.png").write_bytes(b"\x89PNG")
    (tmp_path / "ch" / "b.html").write_text('<html><body><h2 id="sec">S</h2></body></html>')
    (tmp_path / "ch" / "a.html").write_text(GOOD_PAGE)
    return tmp_path


def test_html_check_passes_a_good_page(book):
    counts, fails = _check_html().Checker(book).check_dom("ch/a.html", GOOD_PAGE)
    assert fails == []
    assert counts["equations"] == 1 and counts["images"] == 1 and counts["anchors"] == 2


@pytest.mark.parametrize("change, expected", [
    (('<mjx-container><mjx-math></mjx-math></mjx-container>', "\\(x^2\\)"), "not typeset"),
    (("</body>", "<p>$$ x $$</p></body>"), "raw TeX $$"),
    (('src="../_static/app.js"', 'src="https://cdn.example.com/app.js"'), "loads from another host"),
    (('href="../_static/style.css"', 'href="//fonts.example.com/f.css"'), "loads from another host"),
    (('src="../_images/fig.png"', 'src="../_images/nope.png"'), "does not exist"),
    (('href="b.html#sec"', 'href="b.html#nope"'), "no element with id 'nope'"),
    (('href="b.html#sec"', 'href="c.html"'), "does not exist"),
    (('href="#top"', 'href="../../outside.html"'), "outside the built book"),
])
def test_html_check_reports_each_problem(book, change, expected):
    page = GOOD_PAGE.replace(*change)
    assert page != GOOD_PAGE
    _, fails = _check_html().Checker(book).check_dom("ch/a.html", page)
    assert any(expected in f for f in fails), fails


def test_html_check_reports_requests_and_css(book):
    checker = _check_html().Checker(book)
    _, fails = checker.check_dom("ch/a.html", GOOD_PAGE, requests=["https://cdn.example.com/x.js"])
    assert fails == ["offline: the page requested https://cdn.example.com/x.js"]
    (book / "_static" / "font.css").write_text("/* url(https://ok.in/comment) */ @font-face { src: url('https://fonts.example.com/a.woff') }")
    n, css_fails = checker.check_css()
    assert n == 2 and len(css_fails) == 1 and "fonts.example.com" in css_fails[0][1]


def test_every_notebook_starts_with_the_colab_cell():
    # Colab opens a chapter alone: its first code cell installs attnkit there (tests/colab_cell.py)
    import subprocess
    import sys
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "colab_cell.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
