# Attention from Scratch: two commands set everything up on a fresh machine.
#   make book   build the HTML book into _build/html
#   make test   everything CI checks (unit tests, notebooks under nbval, book build, HTML check)
# Needs Python 3.11+, make, git, npm (for MathJax) and the package registries.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_vendor/mathjax/tex-mml-chtml.js
JB_FLAGS := -W -n --keep-going
PAGE ?= _build/html/index.html

.PHONY: help install book test unit notebooks-test html-check lab notebooks screenshot benchmark clean

help:
	@echo "make book        build the HTML book (_build/html/index.html)"
	@echo "make test        everything CI checks"
	@echo "make lab         JupyterLab on the notebooks"
	@echo "make notebooks   re-execute every notebook in place (fresh kernel, top to bottom)"
	@echo "make screenshot PAGE=_build/html/notebooks/01_attention_as_soft_lookup.html"
	@echo "make benchmark   speed and memory benchmarks"
	@echo "make clean       remove the build and the virtual environment"

install: $(STAMP) $(MATHJAX)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# MathJax 3 from the npm registry, served with the book so equations render offline.
# (Not in _static/: Jupyter Book 1 adds a <script> tag for every .js file found there.)
$(MATHJAX):
	rm -rf .npm-mathjax book/_vendor/mathjax
	mkdir -p .npm-mathjax book/_vendor/mathjax/output/chtml book/_vendor/mathjax/input/tex
	npm install --silent --no-audit --no-fund --prefix .npm-mathjax mathjax@$(MATHJAX_VERSION)
	cp .npm-mathjax/node_modules/mathjax/es5/tex-mml-chtml.js book/_vendor/mathjax/
	cp -r .npm-mathjax/node_modules/mathjax/es5/output/chtml/fonts book/_vendor/mathjax/output/chtml/
	cp -r .npm-mathjax/node_modules/mathjax/es5/input/tex/extensions book/_vendor/mathjax/input/tex/
	cp -r .npm-mathjax/node_modules/mathjax/es5/ui .npm-mathjax/node_modules/mathjax/es5/a11y book/_vendor/mathjax/
	rm -rf .npm-mathjax

book: install
	$(BIN)/jupyter-book build . --toc book/_toc.yml $(JB_FLAGS)
	@echo "Book built: $(CURDIR)/_build/html/index.html"

test: install
	$(BIN)/python -m pytest
	$(MAKE) book
	$(MAKE) html-check

unit: install
	$(BIN)/python -m pytest tests

notebooks-test: install
	$(BIN)/python -m pytest notebooks

# Opens every built page in headless Chromium (installed with apt-get when missing).
html-check: install
	$(BIN)/python tests/check_html.py _build/html

lab: install
	cd notebooks && ../$(BIN)/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

notebooks: install
	$(BIN)/python tests/execute_notebooks.py notebooks/*.ipynb

screenshot: install
	$(BIN)/python tests/check_html.py --screenshot $(PAGE)

benchmark: install
	$(BIN)/python benchmarks/bench_attention.py
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf _build $(VENV) book/_vendor .npm-mathjax screenshots *.egg-info
