"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

    python tests/check_html.py [_build/html]            check every built page
    python tests/check_html.py --screenshot PAGE        save screenshots/NAME.png (1280x2000)

Checked on the DOM after the page's scripts ran (Chromium --dump-dom):
- math: every element Sphinx marked as math holds a typeset <mjx-container>, MathJax reported no
  TeX error (<mjx-merror>), and no raw TeX ($$, \\[, \\(, \\begin{...}) is left in text outside code;
- images: every <img> points to a non-empty file inside the build (or is a data: URI);
- links: relative hrefs point to existing files inside the build, and #anchors exist in the target;
- offline: nothing is loaded from another host: script src, <link> href (stylesheets, icons,
  preloads), img src/srcset, iframe/source/video/audio/embed/object, url() in inline styles and in
  every built CSS file, and every request the page made (Chromium's net log). Links (<a href>) to
  other sites are fine. Chromium runs with every host name unresolvable, as on a machine with no
  network.

Chromium: $CHROMIUM, else chromium / chromium-browser / google-chrome on PATH, else Debian's
`chromium` installed with apt-get (as root or with passwordless sudo). With no way to get it, the
check says it is skipped, and why, and exits 0. Exit status 1 lists every failure.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--virtual-time-budget=5000",
    # No host name resolves: the page is seen as it is on a machine with no network.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
PAGE_TIMEOUT = 90  # seconds for one page; a page that takes longer is reported, not waited for

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "param"}
# Text inside these is code or machinery, where TeX delimiters are expected.
NO_TEX_CHECK = {"pre", "code", "kbd", "samp", "script", "style", "textarea", "mjx-container",
                "head", "template", "noscript"}
# <link rel=...> values that point to another page rather than load something.
NAVIGATION_RELS = {"index", "search", "next", "prev", "previous", "canonical", "alternate", "author",
                   "license", "help", "first", "last", "up", "top", "contents", "home"}
RAW_TEX = [
    (re.compile(r"\$\$"), "$$"),
    (re.compile(r"\\\(|\\\)"), "\\( \\)"),
    (re.compile(r"\\\[|\\\]"), "\\[ \\]"),
    (re.compile(r"\\begin\{"), "\\begin{"),
    (re.compile(r"\$[^$\n]*[\\^_{}][^$\n]*\$"), "$...$"),
]
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+?)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


# ---------------------------------------------------------------------------- a small DOM
class Node:
    """An element of the parsed page: tag, attributes, children (Nodes and text)."""
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.children, self.parent = tag, attrs, [], parent

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.stack[-1])
        self.stack[-1].children.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_html(text):
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def element_ids(root):
    ids = set()
    for n in root.iter():
        for key in ("id", "name"):
            if n.attrs.get(key):
                ids.add(n.attrs[key])
    return ids


# ---------------------------------------------------------------------------- checks
def is_outside(url):
    """True when loading url would reach another host (http(s), protocol-relative, ws, ftp)."""
    parts = urlsplit(url.strip())
    return bool(parts.netloc) or parts.scheme in ("http", "https", "ws", "wss", "ftp")


def resolve_local(build, page, url):
    """The file a relative or file: URL points to (None for data:, blob:, about: ...)."""
    parts = urlsplit(url.strip())
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme:
        return None
    if not parts.path:
        return build / page
    target = (build / page).parent / unquote(parts.path)
    return Path(os.path.normpath(target))


def text_outside_code(node, out):
    for c in node.children:
        if isinstance(c, str):
            out.append(c)
        elif c.tag not in NO_TEX_CHECK and "highlight" not in c.classes():
            text_outside_code(c, out)
    return out


class Checker:
    """Checks rendered pages of one built book; collects counts and failures."""

    def __init__(self, build):
        self.build = Path(build).resolve()
        self._ids = {}

    def ids_of(self, path):
        if path not in self._ids:
            try:
                self._ids[path] = element_ids(parse_html(path.read_text(encoding="utf-8", errors="replace")))
            except OSError:
                self._ids[path] = set()
        return self._ids[path]

    def inside(self, path):
        try:
            path.resolve().relative_to(self.build)
            return True
        except ValueError:
            return False

    def check_dom(self, page, dom, requests=()):
        """page: path relative to the build; dom: the rendered HTML. Returns (counts, failures)."""
        build = self.build
        root = parse_html(dom)
        counts = dict(pages=1, equations=0, math_pages=0, images=0, links=0, anchors=0, resources=0)
        fails = []
        here_ids = element_ids(root) | self.ids_of(build / page)

        # -- math
        math = [n for n in root.iter() if "math" in n.classes() and n.tag in ("span", "div")]
        containers = [n for n in root.iter() if n.tag == "mjx-container"]
        counts["equations"] = len(containers)
        counts["math_pages"] = int(bool(math))
        untypeset = [m for m in math if not any(d.tag == "mjx-container" for d in m.iter())]
        if untypeset:
            scripts = [n.attrs["src"] for n in root.iter() if n.tag == "script" and "mathjax" in n.attrs.get("src", "").lower()]
            def state(src):
                if is_outside(src):
                    return "another host: unreachable offline"
                target = resolve_local(build, page, src)
                return "exists" if target is not None and target.is_file() else "MISSING"
            where = ", ".join(f"{s} ({state(s)})" for s in scripts) or "no MathJax <script> on the page"
            fails.append(f"math: {len(untypeset)} of {len(math)} equations not typeset, first: "
                         f"{untypeset[0].text().strip()[:60]!r}; MathJax script: {where}")
        for err in (n for n in root.iter() if n.tag == "mjx-merror"):
            fails.append(f"math: TeX error {err.attrs.get('data-mjx-error', '')!r} in {err.text().strip()[:60]!r}")
        # MathJax shows an undefined macro as red text (its noundefined extension), not as an error.
        for n in root.iter():
            if n.tag == "mtext" and n.attrs.get("mathcolor") == "red" and n.text().startswith("\\"):
                fails.append(f"math: undefined TeX macro {n.text()!r} (shown in red)")
        body = next((n for n in root.iter() if n.tag == "body"), root)
        text = " ".join(" ".join(text_outside_code(body, [])).split())
        for pattern, name in RAW_TEX:
            m = pattern.search(text)
            if m:
                ctx = text[max(0, m.start() - 40):m.end() + 40]
                fails.append(f"math: raw TeX {name} left in the text: ...{ctx}...")

        # -- resources loaded by the page: local, existing
        def resource(url, what):
            counts["resources"] += 1
            if is_outside(url):
                fails.append(f"offline: {what} loads from another host: {url}")
                return None
            target = resolve_local(build, page, url)
            if target is not None and not target.is_file():
                fails.append(f"missing: {what} {url} -> {target} does not exist")
            return target

        for n in root.iter():
            a, tag = n.attrs, n.tag
            if tag == "script" and a.get("src"):
                resource(a["src"], "<script src>")
            elif tag == "link" and a.get("href"):
                rels = set(a.get("rel", "").lower().split())
                if rels and rels <= NAVIGATION_RELS:
                    self.check_link(page, a["href"], here_ids, counts, fails, "<link rel>")
                else:
                    resource(a["href"], f"<link rel={a.get('rel', '')}>")
            elif tag == "img":
                counts["images"] += 1
                src = a.get("src", "")
                if not src:
                    fails.append("image: <img> without src")
                elif not src.startswith("data:"):
                    target = resource(src, "<img src>")
                    if target is not None and target.is_file():
                        if target.stat().st_size == 0:
                            fails.append(f"image: {src} is an empty file")
                        elif not self.inside(target):
                            fails.append(f"image: {src} is outside the built book")
            elif tag in ("iframe", "source", "video", "audio", "embed", "track", "input") and a.get("src"):
                resource(a["src"], f"<{tag} src>")
            elif tag == "object" and a.get("data"):
                resource(a["data"], "<object data>")
            if a.get("srcset"):
                for item in a["srcset"].split(","):
                    if item.strip():
                        resource(item.split()[0], f"<{tag} srcset>")
            if tag == "video" and a.get("poster"):
                resource(a["poster"], "<video poster>")
            if a.get("style"):
                for m in CSS_URL.finditer(a["style"]):
                    url = m.group(1) or m.group(2)
                    if is_outside(url):
                        fails.append(f"offline: style attribute loads from another host: {url}")
            if tag == "style":
                for m in CSS_URL.finditer(CSS_COMMENT.sub("", n.text())):
                    url = m.group(1) or m.group(2)
                    if is_outside(url):
                        fails.append(f"offline: <style> loads from another host: {url}")
            if tag == "a" and "href" in a:
                self.check_link(page, a["href"], here_ids, counts, fails, "link")

        for url in requests:
            fails.append(f"offline: the page requested {url}")
        return counts, list(dict.fromkeys(fails))  # each problem once, in page order

    def check_link(self, page, href, here_ids, counts, fails, what):
        parts = urlsplit(href.strip())
        if parts.scheme in ("http", "https", "mailto", "tel", "ftp", "javascript", "data") or parts.netloc:
            return  # a link to another site (or a script action): fine, nothing is loaded
        counts["links"] += 1
        target = resolve_local(self.build, page, href)
        if target is None:
            return
        if not self.inside(target):
            fails.append(f"{what}: {href} points outside the built book ({target})")
            return
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            fails.append(f"{what}: {href} -> {target.relative_to(self.build)} does not exist")
            return
        frag = unquote(parts.fragment)
        if frag and target.suffix == ".html":
            counts["anchors"] += 1
            ids = here_ids if target == (self.build / page) else self.ids_of(target)
            if frag not in ids:
                fails.append(f"{what}: {href}: no element with id {frag!r} in {target.relative_to(self.build)}")

    def check_css(self):
        """url() and @import in every built CSS file must stay local."""
        fails, n = [], 0
        for css in sorted(self.build.rglob("*.css")):
            n += 1
            text = CSS_COMMENT.sub("", css.read_text(encoding="utf-8", errors="replace"))
            for m in CSS_URL.finditer(text):
                url = m.group(1) or m.group(2)
                if is_outside(url):
                    fails.append((str(css.relative_to(self.build)), f"offline: CSS loads from another host: {url}"))
        return n, fails


# ---------------------------------------------------------------------------- Chromium
def find_chromium():
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env) or (env if os.path.isfile(env) else None)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.access(p, os.X_OK)), None)


def install_chromium():
    """Install Debian's chromium with apt-get. Returns (path, None) or (None, why it cannot)."""
    apt = shutil.which("apt-get")
    if not apt:
        return None, "Chromium is not installed and there is no apt-get to install it"
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        return None, "Chromium is not installed, and installing it with apt-get needs root or passwordless sudo"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print("HTML check: Chromium not found; installing Debian's chromium with apt-get ...", flush=True)
    for cmd in (prefix + [apt, "update", "-q"], prefix + [apt, "install", "-y", "-q", "chromium"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"HTML check FAILED: `{' '.join(cmd)}` exited with {r.returncode}:\n{r.stderr[-2000:]}\n"
                     "Install Chromium yourself, or point CHROMIUM=/path/to/chrome at it.")
    path = find_chromium()
    if path is None:
        sys.exit("HTML check FAILED: apt-get installed chromium, but no chromium executable is on PATH")
    return path, None


def page_requests(netlog):
    """http(s)/ws URLs the page itself asked for (not Chromium's own background requests)."""
    try:
        text = netlog.read_text(errors="replace")
    except OSError:
        return []
    try:
        data = json.loads(text)
    except ValueError:  # a log cut short: close it
        try:
            data = json.loads(text.rstrip().rstrip(",") + "]}")
        except ValueError:
            return []
    types = {v: k for k, v in data.get("constants", {}).get("logEventTypes", {}).items()}
    urls = []
    for ev in data.get("events", []):
        p = ev.get("params") or {}
        url = p.get("url", "")
        if types.get(ev.get("type")) == "URL_REQUEST_START_JOB" and is_outside(url) \
                and p.get("initiator") != "not an origin":  # "not an origin": the browser's own
            urls.append(url)
    return sorted(set(urls))


def run_chromium(chromium, url, extra, workdir):
    profile = tempfile.mkdtemp(prefix="profile-", dir=workdir)
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=PAGE_TIMEOUT)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dump_page(chromium, build, page, workdir):
    netlog = Path(tempfile.mktemp(suffix=".json", dir=workdir))
    url = (build / page).as_uri()
    try:
        r = run_chromium(chromium, url, [f"--log-net-log={netlog}", "--dump-dom"], workdir)
    except subprocess.TimeoutExpired:
        return None, [], f"Chromium did not finish within {PAGE_TIMEOUT} s"
    if r.returncode != 0 or "<html" not in r.stdout:
        return None, [], f"Chromium exited with {r.returncode}: {r.stderr.strip()[-500:]}"
    requests = page_requests(netlog)
    netlog.unlink(missing_ok=True)
    return r.stdout, requests, None


REDIRECT = re.compile(r"""<meta[^>]+http-equiv=["']?refresh["']?[^>]+content=["']?\d+;\s*url=([^"'>]+)""", re.I)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", nargs="?", default="_build/html", help="the built HTML (default _build/html)")
    ap.add_argument("--screenshot", metavar="PAGE", help="save screenshots/NAME.png of one page instead")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="pages opened at once")
    args = ap.parse_args()
    build = Path(args.build).resolve()
    if not (build / "index.html").is_file():
        sys.exit(f"HTML check: no built book in {build} (run `make book` first)")

    chromium = find_chromium()
    if chromium is None:
        chromium, why = install_chromium()
        if chromium is None:
            print(f"HTML check SKIPPED: {why}. Nothing was checked. "
                  "Install Chromium (or set CHROMIUM=/path/to/chrome) to run it.")
            return 0

    with tempfile.TemporaryDirectory(prefix="check-html-") as workdir:
        if args.screenshot:
            return screenshot(chromium, build, args.screenshot, workdir)
        return check_all(chromium, build, args.jobs, workdir)


def screenshot(chromium, build, page, workdir):
    candidates = [Path(page), build / page, build / f"{page}.html"]
    path = next((p.resolve() for p in candidates if p.is_file()), None)
    if path is None:
        sys.exit(f"screenshot: no page {page!r} (looked for {', '.join(map(str, candidates))})")
    out = Path("screenshots") / f"{path.stem}.png"
    out.parent.mkdir(exist_ok=True)
    r = run_chromium(chromium, path.as_uri(), [f"--screenshot={out.resolve()}", "--window-size=1280,2000"], workdir)
    if r.returncode != 0 or not out.is_file():
        sys.exit(f"screenshot failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    print(f"Screenshot of {path}: {out.resolve()}")
    return 0


def check_all(chromium, build, jobs, workdir):
    start = time.perf_counter()
    checker = Checker(build)
    # lite/ is the in-browser site (`make lite`), a JupyterLite app that only works served over
    # http: tests/check_lite.py opens it that way. Links into it are still checked here.
    pages = sorted(p.relative_to(build) for p in build.rglob("*.html")
                   if not any(part.startswith("_") for part in p.relative_to(build).parts)
                   and p.relative_to(build).parts[0] != "lite")
    failures = []  # (page, message)
    totals = dict(pages=0, equations=0, math_pages=0, images=0, links=0, anchors=0, resources=0)

    to_open = []
    for page in pages:
        m = REDIRECT.search((build / page).read_text(encoding="utf-8", errors="replace")[:2000])
        if m:  # a redirect (index.html -> the first page): its target must exist
            counts, fails = {"pages": 1, "links": 0}, []
            checker.check_link(page, m.group(1), set(), counts, fails, "redirect")
            totals["pages"] += 1
            totals["links"] += counts["links"]
            failures += [(str(page), f) for f in fails]
        else:
            to_open.append(page)

    def one(page):
        dom, requests, error = dump_page(chromium, build, page, workdir)
        if error:
            return page, None, [error]
        return (page, *checker.check_dom(page, dom, requests))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for page, counts, fails in pool.map(one, to_open):
            if counts:
                for k, v in counts.items():
                    totals[k] += v
            failures += [(str(page), f) for f in fails]

    n_css, css_fails = checker.check_css()
    failures += css_fails
    took = time.perf_counter() - start
    print(f"HTML check: {totals['pages']} pages ({totals['math_pages']} with math), "
          f"{totals['equations']} equations typeset, {totals['images']} images, "
          f"{totals['links']} internal links ({totals['anchors']} #anchors), "
          f"{totals['resources']} loaded resources, {n_css} CSS files, in {took:.1f} s")
    if failures:
        print(f"HTML check FAILED: {len(failures)} problems")
        for page, msg in failures:
            print(f"  {page}: {msg}")
        return 1
    print("HTML check passed: every equation typeset, every image and link resolves, nothing loaded from another host.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
