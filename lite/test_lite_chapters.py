"""Unit tests of lite_chapters (run by `make lite-test`; not collected by a plain `pytest`)."""
import json
from pathlib import Path

import lite_chapters as L

ROOT = Path(__file__).resolve().parent.parent


def notebook(*sources):
    return {"cells": [{"cell_type": "code", "source": s} for s in sources]}


def test_plain_import_of_a_browser_less_package_blocks_the_chapter():
    assert list(L.blockers(notebook("import numpy as np\nimport sacrebleu\n"))) == ["sacrebleu"]
    assert list(L.blockers(notebook("%matplotlib inline\nfrom sacrebleu import BLEU\n"))) == [
        "sacrebleu"]


def test_guarded_import_does_not_block():
    guarded = "try:\n    import sacrebleu\nexcept ImportError:\n    sacrebleu = None\n"
    assert L.blockers(notebook(guarded)) == {}
    other = "try:\n    import sacrebleu\nexcept KeyError:\n    pass\n"  # not an import guard
    assert list(L.blockers(notebook(other))) == ["sacrebleu"]


def test_markdown_and_strings_do_not_count():
    nb = {"cells": [{"cell_type": "markdown", "source": "import sacrebleu"},
                    {"cell_type": "code", "source": 'print("import sacrebleu")'}]}
    assert L.blockers(nb) == {}


def test_data_packages_for_chapters_that_read_attnkit_data():
    assert L.needs_data(notebook("from attnkit.data.translation import make_translation_task"))
    assert L.needs_data(notebook("from attnkit.recipes import train_translator"))
    assert not L.needs_data(notebook("import attnkit.functional as F"))


def test_the_books_chapters():
    """Every chapter runs in the browser: chapter 17 imports sacrebleu only inside an
    ImportError guard (it then skips its comparison with attnkit's BLEU)."""
    blocked = {p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
               if L.blockers(json.loads(p.read_text()))}
    assert not blocked, blocked
