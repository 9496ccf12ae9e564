# Capteo — two commands: `make run` and `make test`. Everything else is their plumbing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
MO := locales/fr/LC_MESSAGES/messages.mo locales/en/LC_MESSAGES/messages.mo
AXE := node_modules/axe-core/axe.min.js

.PHONY: run test setup locales extract lock chromium clean-venv

run: setup ## install what is missing, then serve the app and its worker
	$(PY) run.py

test: setup chromium $(AXE) ## install what is missing, then lint, type-check and run the whole suite
	$(VENV)/bin/ruff check app jobs run.py tests
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP) $(MO)

# llama-cpp-python is compiled from source by pip (10-20 min on 2 cores, cached
# afterwards); with an NVIDIA driver present it is built with CUDA.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then export CMAKE_ARGS="-DGGML_CUDA=on"; fi; \
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --quiet -r requirements.lock
	touch $@

locales: $(MO)

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po $(STAMP)
	$(VENV)/bin/pybabel compile --use-fuzzy -d locales -D messages -l $* >/dev/null

# Developer step after changing strings: re-extract and merge into the catalogs.
extract: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k gettext -k gettext_in:2 -k N_ -k NP_:1c,2 --no-location \
	    --sort-output --project Capteo -o locales/messages.pot .
	$(VENV)/bin/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching

# Regenerate the transitive lock from pyproject.toml.
lock:
	test -x $(VENV)/bin/uv || $(PIP) install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 \
	    --no-header --quiet -o requirements.lock

# axe-core (npm registry, pinned in package-lock.json) checks the pages in the browser tests.
$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work here);
# voicemail tests speak their recordings with espeak-ng; the Redis queue tests start redis-server.
chromium:
	@{ command -v chromium && command -v espeak-ng && command -v redis-server; } >/dev/null 2>&1 || { \
	    echo "installing Debian's chromium, espeak-ng and redis-server for the tests"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium espeak-ng redis-server; }

clean-venv:
	rm -rf $(VENV)
