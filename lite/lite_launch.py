"""Sphinx extension: a "run in the browser" link at the top of every chapter page.

The link opens the chapter's copy in the in-browser site (JupyterLite) that `make lite` builds
into the book's output folder (_build/html/lite). It is added only when that site is there, so
a book built without it (`make book` alone) never links to a missing page. A chapter that
imports a package the browser lacks (lite_chapters.BLOCKERS) gets a note saying so instead.
Registered in _config.yml under sphinx: local_extensions.
"""
import html
import json
from pathlib import Path

import lite_chapters

CHAPTERS = "notebooks/"


def _lite_present(app) -> bool:
    return (Path(app.outdir) / "lite" / "jupyter-lite.json").is_file()


def _outdated(app, env, added, changed, removed):
    """Rewrite every page when the lite site appeared or went away since the last build."""
    present = _lite_present(app)
    if getattr(env, "lite_launch_present", None) != present:
        env.lite_launch_present = present
        return list(env.found_docs)
    return []


def _banner(app, pagename) -> str:
    source = Path(app.srcdir) / f"{pagename}.ipynb"
    if not source.is_file():
        return ""
    blocked = lite_chapters.blockers(json.loads(source.read_text(encoding="utf-8")))
    up = "../" * pagename.count("/")
    if blocked:
        names = ", ".join(f"<code>{html.escape(n)}</code>" for n in blocked)
        why = html.escape("; ".join(blocked.values()))
        return (f'<div class="admonition note lite-launch-unavailable"><p>This chapter imports '
                f'{names}, which cannot run in the browser ({why}): run it on your own machine '
                f'(see <a href="{up}book/setup.html">Setting up</a>).</p></div>\n')
    href = f"{up}lite/notebooks/index.html?path={lite_chapters.lite_path(source)}"
    return (f'<div class="admonition tip lite-launch"><p><a class="reference external" '
            f'href="{html.escape(href)}" target="_blank">&#9654; Run this chapter in your '
            f'browser</a>: nothing to install, nothing sent anywhere (Python on WebAssembly, '
            f'served with this book).</p></div>\n')


def _page_context(app, pagename, templatename, context, doctree):
    if not pagename.startswith(CHAPTERS) or "body" not in context or not _lite_present(app):
        return
    context["body"] = _banner(app, pagename) + context["body"]


def setup(app):
    app.connect("env-get-outdated", _outdated)
    app.connect("html-page-context", _page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
