"""Run chapters of the in-browser site in headless Chromium, with no network but loopback.

    python tests/check_lite.py [--build _build/html] [CHAPTER ...]

Needs the book and the lite site built (`make lite`). Checks, in this order:
1. Every chapter page of the book has its "run in the browser" link, pointing at a notebook the
   lite site has (or, for a chapter the browser cannot run, the note that says why).
2. Every Pyodide package file the site serves still has the sha256 of the official lock.
3. In Debian's Chromium driven by Playwright, against the site served on 127.0.0.1: each chapter
   (default: 01_attention_as_soft_lookup and 12_transformer_architecture, which trains a small
   Transformer) is opened, the kernel started, and Run All Cells run. Every code cell must
   finish without an error; every figure the stored notebook has must be drawn (an <img> with
   pixels); every printed output of a cell nbval compares (no NBVAL_IGNORE_OUTPUT) must equal
   the stored one. Screenshots go to screenshots/lite/.
Requests to any host but the local server are counted (Playwright routing; they are blocked)
and must be 0. As root with `unshare` available, the whole run is moreover inside a new network
namespace that has only loopback (`unshare -n`), as on a machine with no network.
Prints the kernel start time and the run time of each chapter. Exit status 1 on any failure.
"""
import argparse
import functools
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lite"))
import lite_chapters  # noqa: E402
from check_html import find_chromium, install_chromium  # noqa: E402  (tests/ is on sys.path)

DEFAULT_CHAPTERS = ["01_attention_as_soft_lookup", "12_transformer_architecture"]
KERNEL_TIMEOUT = 240   # s for the kernel to be ready (17-29 s measured on a quiet machine)
RUN_TIMEOUT = 900      # s for one chapter's Run All (--timeout)
NETNS_MARK = "ATTNKIT_LITE_NETNS"


def in_private_netns():
    """Re-run this script under `unshare -n` (loopback only) when possible. Returns a note."""
    if os.environ.get(NETNS_MARK):
        return "in a network namespace with loopback only (unshare -n)"
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if os.geteuid() != 0 or not unshare or not os.path.exists(ip):
        return None
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    cmd = " ".join(["exec", sys.executable, *map(shlex.quote, sys.argv)])
    env = dict(os.environ, **{NETNS_MARK: "1"})
    r = subprocess.run([unshare, "-n", "sh", "-c", f"{ip} link set lo up && {cmd}"], env=env)
    sys.exit(r.returncode)


# ------------------------------------------------------------------ static checks
def check_links(build: Path, fails: list):
    """Each chapter page (book/_toc.yml) links to its lite notebook, or says why it cannot run
    in the browser."""
    lite = build / "lite"
    contents = json.loads((lite / "api" / "contents" / "all.json").read_text())
    in_site = {item["name"] for item in contents["content"]}
    n = 0
    toc = (ROOT / "book" / "_toc.yml").read_text(encoding="utf-8")
    chapters = re.findall(r"file:\s*(notebooks/[\w.-]+)", toc)  # the chapters the book has
    for nb_path in [ROOT / f"{c.removesuffix('.ipynb')}.ipynb" for c in chapters]:
        page = build / "notebooks" / f"{nb_path.stem}.html"
        if not page.is_file():
            fails.append(f"links: no built page {page.relative_to(build)} (run make lite)")
            continue
        html = page.read_text(encoding="utf-8")
        blocked = lite_chapters.blockers(json.loads(nb_path.read_text()))
        href = f"../lite/notebooks/index.html?path={lite_chapters.lite_path(nb_path)}"
        if blocked:
            if "lite-launch-unavailable" not in html:
                fails.append(f"links: {page.name} needs {', '.join(blocked)} but does not say "
                             "that it cannot run in the browser")
            continue
        if href not in html:
            fails.append(f"links: {page.name} has no link {href}")
        elif lite_chapters.lite_path(nb_path) not in in_site:
            fails.append(f"links: {page.name} links to {href}, which the lite site lacks")
        n += 1
    print(f"Lite links: {n} chapter pages link to their in-browser copy")


def check_served_wheels(build: Path, fails: list):
    """The served Pyodide files still carry the official lock's sha256 (served lock = subset)."""
    static = build / "lite" / "static" / "pyodide"
    lock = json.loads((static / "pyodide-lock.json").read_text())
    for name, entry in lock["packages"].items():
        path = static / entry["file_name"]
        if not path.is_file():
            fails.append(f"wheels: {entry['file_name']} ({name}) is in the lock but not served")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            fails.append(f"wheels: {entry['file_name']} differs from the official sha256")
    print(f"Lite wheels: {len(lock['packages'])} Pyodide package files checked against the lock")


# ------------------------------------------------------------------ the stored notebook
def expected(nb_path: Path):
    """(images, [(code cell index, stored text)]) for the cells nbval compares."""
    nb = json.loads(nb_path.read_text())
    images, texts = 0, []
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and not lite_chapters.skipped(c)]
    for i, cell in enumerate(code):
        source = "".join(cell["source"])
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            images += "image/png" in data or "image/svg+xml" in data
        if source.lstrip().startswith("# NBVAL_IGNORE_OUTPUT"):
            continue
        text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                       if o.get("output_type") == "stream")
        text += "".join("".join(o["data"]["text/plain"]) for o in cell.get("outputs", [])
                        if "text/plain" in o.get("data", {}) and "image/png" not in o["data"])
        if text.strip():
            texts.append((i, text))
    return len(code), images, texts


# WebAssembly has no floating-point exception flags, so NumPy in the browser cannot warn about
# overflow or 0/0 (the results, inf and nan, are the same): such stored warning lines are
# expected to be missing in the browser, and are counted apart.
FP_WARNING = re.compile(r"^.*RuntimeWarning: .* encountered in .*$\n?", re.M)


def normalise(text):
    return " ".join(text.split())


# ------------------------------------------------------------------ the browser
class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript",
                      ".js": "text/javascript", ".json": "application/json"}

    def log_message(self, *args):
        pass


CELL_STATE = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(c => ({
  prompt: (c.querySelector('.jp-InputArea-prompt') || {}).innerText || '',
  text: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
  error: !!c.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
         && /Traceback|Error/.test(c.innerText),
  images: [...c.querySelectorAll('.jp-OutputArea-output img')]
          .filter(i => i.complete && i.naturalWidth > 0).length,
}))"""


def run_chapter(browser, base, name, shots: Path, outside: list, fails: list,
                timeout: float):
    nb_path = ROOT / "notebooks" / f"{name}.ipynb"
    n_code, n_images, texts = expected(nb_path)
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()
    ctx.route("**/*", route)
    ctx.on("request", lambda rq: rq.url.startswith(("data:", "blob:", base))
           or rq.url in outside or outside.append(rq.url))
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(f"{base}lite/notebooks/index.html?path={name}.ipynb")
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]',
                           timeout=KERNEL_TIMEOUT * 1000)
    kernel_s = time.perf_counter() - t0
    print(f"Lite {name}: kernel ready in {kernel_s:.0f} s, running all cells ...", flush=True)
    page.click('.lm-MenuBar-item:has-text("Run")')
    page.click('.lm-Menu-item[data-command="runmenu:run-all"]')
    t1 = time.perf_counter()
    cells = []
    while time.perf_counter() - t1 < timeout:
        time.sleep(2)
        cells = page.evaluate(CELL_STATE)
        busy = any("*" in c["prompt"] for c in cells)
        if not busy and cells and re.search(r"\d", cells[-1]["prompt"]):
            break
        if not busy and any(c["error"] for c in cells):
            break
    run_s = time.perf_counter() - t1
    page.screenshot(path=str(shots / f"{name}.png"))  # the notebook scrolls inside the page
    first_img = page.locator(".jp-OutputArea-output img").first
    if first_img.count():
        first_img.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"{name}_figure.png"))
    trained = page.locator(".jp-CodeCell", has_text=re.compile(r"\bloss\b")).last
    if trained.count():  # a training chapter: the cell that printed the losses
        trained.scroll_into_view_if_needed()
        trained.screenshot(path=str(shots / f"{name}_training.png"))
    ctx.close()

    problems = []
    if len(cells) != n_code + 1:  # + the install cell
        problems.append(f"{len(cells)} code cells in the page, expected {n_code + 1}")
    errors = [i for i, c in enumerate(cells) if c["error"]]
    unrun = [i for i, c in enumerate(cells) if not re.search(r"\d", c["prompt"])]
    if errors:
        problems.append(f"code cell {errors[0]} raised: {cells[errors[0]]['text'][-600:]}")
    elif unrun:
        problems.append(f"{len(unrun)} code cells did not run within {timeout:.0f} s "
                        f"(first: cell {unrun[0]})")
    drawn = sum(c["images"] for c in cells)
    if drawn < max(1, n_images):
        problems.append(f"{drawn} figures drawn, the stored notebook has {n_images}")
    same = fp_only = 0
    for i, text in texts:
        got = cells[i + 1]["text"] if i + 1 < len(cells) else ""
        if normalise(got) == normalise(text):
            same += 1
        elif normalise(got) == normalise(FP_WARNING.sub("", text)):
            fp_only += 1
        else:
            problems.append(f"code cell {i}: printed {got.strip()[:300]!r}, "
                            f"stored {text.strip()[:300]!r}")
    print(f"Lite {name}: kernel ready in {kernel_s:.0f} s, Run All in {run_s:.0f} s; "
          f"{sum(bool(re.search(r'[0-9]', c['prompt'])) for c in cells)}/{len(cells)} cells "
          f"ran, {drawn} figures drawn (stored {n_images}), {same}/{len(texts)} compared "
          f"outputs equal to the stored ones, {fp_only} equal but for NumPy's floating-point "
          f"warnings (none in WebAssembly)")
    fails += [f"{name}: {p}" for p in problems]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", default=DEFAULT_CHAPTERS)
    ap.add_argument("--build", default=str(ROOT / "_build" / "html"))
    ap.add_argument("--timeout", type=float, default=RUN_TIMEOUT,
                    help=f"seconds for one chapter's Run All (default {RUN_TIMEOUT})")
    ap.add_argument("--screenshots", default=str(ROOT / "screenshots" / "lite"))
    args = ap.parse_args()
    build = Path(args.build).resolve()
    if not (build / "lite" / "jupyter-lite.json").is_file() or not (build / "index.html").is_file():
        sys.exit(f"Lite check: no book with a lite site in {build} (run `make lite` first)")
    chromium = find_chromium() or install_chromium()[0]  # Debian's, as for the HTML check
    if chromium is None:
        sys.exit("Lite check FAILED: no Chromium, and apt-get cannot install it here "
                 "(set CHROMIUM=/path/to/chromium)")
    network = in_private_netns() or "with the host's network (no unshare): outside requests " \
                                    "are blocked and counted by Playwright routing"
    print(f"Lite check: {network}")
    fails, outside = [], []
    check_links(build, fails)
    check_served_wheels(build, fails)

    from playwright.sync_api import sync_playwright
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(build)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name in args.chapters:
            try:
                run_chapter(browser, base, name, shots, outside, fails, args.timeout)
            except Exception as exc:  # a timeout: report it, go on with the next chapter
                fails.append(f"{name}: {type(exc).__name__}: {str(exc)[:400]}")
        browser.close()
    server.shutdown()
    print(f"Lite check: {len(outside)} requests to other hosts; screenshots in {shots}; "
          f"{time.perf_counter() - start:.0f} s in the browser")
    if outside:
        fails.append(f"{len(outside)} requests to other hosts, first: {sorted(set(outside))[:5]}")
    if fails:
        print(f"Lite check FAILED: {len(fails)} problems")
        for f in fails:
            print("  " + f)
        return 1
    print("Lite check passed: the chapters ran in the browser offline, "
          "printing what the book stores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
