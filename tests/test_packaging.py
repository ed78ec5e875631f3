"""Package metadata: one version string, optional data dependencies as the extra attnkit[data]."""
import re
import sys
import tomllib
from pathlib import Path

import pytest

import attnkit

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "attnkit.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", attnkit.__version__)


def test_data_extra_lists_the_data_packages():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["data"]
    names = {re.split(r"[<>=]", req)[0].lower() for req in extra}
    assert {"babel", "num2words", "faker", "anyascii"} <= names


def test_missing_optional_data_dependency_names_the_extra(monkeypatch):
    from attnkit.data import translation
    monkeypatch.setitem(sys.modules, "num2words", None)                 # import num2words now fails
    with pytest.raises(ImportError, match=r'pip install "attnkit\[data\]"'):
        translation.number_pair(5)
