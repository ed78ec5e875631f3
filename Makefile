# Attention from Scratch: two commands set everything up on a fresh machine.
#   make book   build the HTML book into _build/html
#   make test   everything CI checks (unit tests and notebooks under nbval, the robustness run
#               of the chapters that train, book and in-browser site build, HTML check, two
#               chapters run in the browser)
# Needs Python 3.11+, make, git, npm (for MathJax) and the package registries.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX_DIR := book/_vendor/mathjax
MATHJAX := $(MATHJAX_DIR)/tex-mml-chtml.js
JB_FLAGS := -W -n --keep-going
PAGE ?= book/intro
# One BLAS thread for tests, notebooks and lab. The chapters train small models, where a second
# OpenBLAS thread mostly waits: on a busy 2-core machine one thread was 4x faster (34 against
# 147 ms a training step); on an idle one two threads are about 20% faster (35 against 44 ms).
# One setting everywhere also keeps the saved notebooks and their nbval re-runs identical.
# Override with `make test OPENBLAS_NUM_THREADS=2`; the benchmarks use the library defaults.
OPENBLAS_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS
# Processes for nbval (pytest-xdist) and the robustness run: one per core of a 2-core machine.
JOBS ?= 2
# Chapters whose claims come from training a model (by number): `make test` also runs them with
# every seed shifted (tests/robustness.py). A new chapter that trains adds its number here.
TRAINED_CHAPTERS := 11 12 13 14 15 16 17 18 20 21 22 23 24 25
# Both lists from the last chapter down: the slowest first, so that the jobs finish together.
TRAINED_NOTEBOOKS = $(shell ls -r $(foreach n,$(TRAINED_CHAPTERS),notebooks/$(n)_*.ipynb))
ALL_NOTEBOOKS = $(shell ls -r notebooks/*.ipynb)
ROBUSTNESS_SHIFTS ?= 1 2

.PHONY: help install install-python install-mathjax book test unit notebooks-test robustness launch-test html-check lab notebooks screenshot benchmark clean distclean
.DELETE_ON_ERROR:

help:
	@echo "make book        build the HTML book (_build/html/index.html)"
	@echo "make test        everything CI checks"
	@echo "make unit        the unit tests only (no notebooks; needs no npm)"
	@echo "make robustness  every notebook executed with its seeds shifted by 1, then 2"
	@echo "make lab         JupyterLab on the notebooks"
	@echo "make notebooks   re-execute every notebook in place (fresh kernel, top to bottom)"
	@echo "make screenshot PAGE=notebooks/01_attention_as_soft_lookup   PNG of a built page in screenshots/"
	@echo "make benchmark   speed and memory benchmarks"
	@echo "make clean       remove the built book and screenshots (distclean: also .venv and MathJax)"

# Two parts: the Python packages (all the tests and notebooks need) and MathJax (only the book).
install: install-python install-mathjax
install-python: $(STAMP)
install-mathjax: $(MATHJAX)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, $(PYTHON) is " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python requirements.txt requirements-nodeps.txt pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# MathJax 3 from the npm registry, served with the book so equations render offline.
# (Not MathJax 4: it loads its fonts from a CDN. Not in _static/: Jupyter Book 1 adds a <script>
# tag for every .js file found there.) The main script is copied last: it marks a complete copy.
$(MATHJAX):
	@command -v npm >/dev/null || { echo "npm not found: it is needed once, to fetch MathJax $(MATHJAX_VERSION). Install Node.js (Debian/Ubuntu: apt-get install npm; macOS: brew install node) and run make again."; exit 1; }
	rm -rf .npm-mathjax $(MATHJAX_DIR)
	mkdir -p .npm-mathjax $(MATHJAX_DIR)/output/chtml $(MATHJAX_DIR)/input/tex
	npm install --silent --no-audit --no-fund --no-save --prefix .npm-mathjax mathjax@$(MATHJAX_VERSION)
	cp -r .npm-mathjax/node_modules/mathjax/es5/output/chtml/fonts $(MATHJAX_DIR)/output/chtml/
	cp -r .npm-mathjax/node_modules/mathjax/es5/input/tex/extensions $(MATHJAX_DIR)/input/tex/
	cp -r .npm-mathjax/node_modules/mathjax/es5/ui .npm-mathjax/node_modules/mathjax/es5/a11y $(MATHJAX_DIR)/
	cp .npm-mathjax/node_modules/mathjax/LICENSE $(MATHJAX_DIR)/
	cp .npm-mathjax/node_modules/mathjax/es5/tex-mml-chtml.js $(MATHJAX_DIR)/
	rm -rf .npm-mathjax

book: $(STAMP) $(MATHJAX)
	$(BIN)/jupyter-book build . --toc book/_toc.yml $(JB_FLAGS)
	@echo "Book built: $(CURDIR)/_build/html/index.html"

# Unit tests and every notebook under nbval, spread over $(JOBS) processes (nbval's documented
# way: --dist loadscope keeps each notebook's cells in order in one worker), then the chapters
# that train with their seeds shifted, then the book with its in-browser site (as published)
# beside the launch check (a fresh Binder and a fresh Colab environment each run chapter 1),
# the HTML check, and two chapters run in headless Chromium from that site, offline.
test: install
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope tests notebooks
	@# chapter 19 measures memory, which depends on how many threads attnkit's attention uses
	OPENBLAS_NUM_THREADS=2 $(BIN)/python -m pytest -q notebooks/19_tiled_attention.ipynb
	$(BIN)/python tests/robustness.py --jobs $(JOBS) --shift 1 $(TRAINED_NOTEBOOKS)
	$(MAKE) -j2 --output-sync=target lite launch-test
	$(MAKE) html-check
	$(MAKE) lite-test

unit: $(STAMP)
	$(BIN)/python -m pytest tests

notebooks-test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope notebooks

# Every notebook with every seed shifted (outputs not compared; every assertion must hold).
robustness: $(STAMP)
	$(BIN)/python tests/robustness.py --jobs $(JOBS) $(foreach s,$(ROBUSTNESS_SHIFTS),--shift $(s)) $(ALL_NOTEBOOKS)

# The Binder and Colab buttons, as a reader's click sets them up: each a fresh virtual environment
# (binder/ as repo2docker runs it; the notebook's Colab cell with this checkout for GitHub), in
# which every data set must load and chapter 1 must run from notebooks/ (tests/check_launch.py).
launch-test: $(STAMP)
	$(BIN)/python tests/check_launch.py binder
	$(BIN)/python tests/check_launch.py colab

# Opens every built page in headless Chromium, offline (installs Debian's chromium when missing).
html-check: $(STAMP)
	$(BIN)/python tests/check_html.py _build/html

lab: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

notebooks: $(STAMP)
	$(BIN)/python tests/execute_notebooks.py notebooks/*.ipynb

screenshot: book
	$(BIN)/python tests/check_html.py --screenshot $(PAGE)

benchmark: $(STAMP)
	for b in benchmarks/bench_*.py; do env -u OPENBLAS_NUM_THREADS $(BIN)/python $$b || exit 1; done

clean:
	rm -rf _build screenshots .npm-mathjax

distclean: clean
	rm -rf $(VENV) book/_vendor *.egg-info

# ---------------------------------------------------------------- the in-browser site (lite/)
# JupyterLite + Pyodide 0.27.7 into _build/html/lite, from pinned, hash-verified inputs
# (lite/build.py says what is checked; book/setup.md, "Running in the browser", says why).
# `make lite` builds the site, then the book, whose chapter pages then link to it; `make book`
# alone builds no site and adds no link. The Pages workflow runs `make lite`.
LITE_STAMP := $(VENV)/.lite-installed
.PHONY: lite lite-site lite-test

$(LITE_STAMP): $(STAMP) lite/requirements-lite.txt
	$(BIN)/python -m pip install --quiet -r lite/requirements-lite.txt
	touch $(LITE_STAMP)

lite: lite-site
	$(MAKE) book

lite-site: $(LITE_STAMP)
	$(BIN)/python lite/build.py

# Chapters 1 and 12 run in headless Chromium (Debian's), offline; screenshots in screenshots/lite/.
lite-test: $(LITE_STAMP)
	@test -f _build/html/lite/jupyter-lite.json -a -f _build/html/notebooks/01_attention_as_soft_lookup.html || $(MAKE) lite
	$(BIN)/python -m pytest -q -o addopts= -p no:cacheprovider lite/test_lite_chapters.py
	$(BIN)/python tests/check_lite.py
