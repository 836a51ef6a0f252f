# The two commands of the README:
#   make book   set up .venv and build the book (executes every chapter)
#   make test   set up .venv and run unit tests, nbval on every chapter and the browser check
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ORACLE := .oracle
STAMP := $(VENV)/.installed

.PHONY: book test setup oracle browser notebooks clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import detr_explained, torch, torchvision, jupyter_book, nbval, pycocotools"
	touch $(STAMP)

setup: $(STAMP)

# The official implementation, used only as a test oracle, in a folder of its own
# (its top-level packages `models`, `util`, `datasets` would shadow others).
$(ORACLE)/models/detr.py:
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --target $(ORACLE) "detr==0.1.4" 2>&1 | grep -v "is ignored: it is neither" || true
	test -f $(ORACLE)/models/detr.py

oracle: $(STAMP) $(ORACLE)/models/detr.py

# --all and a fresh _build/html: every chapter is re-read and re-executed (an incremental
# build would skip notebooks whose file did not change, even after edits to the package),
# and no page removed from _toc.yml lingers on the site.
book: setup
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . --all -W -n --keep-going

# Headless Chromium and its driver for tests/test_site.py (Debian packages), if missing.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

# Unit tests and the browser check of the freshly built book, then nbval: every notebook's
# stored outputs must still be what its code produces.
test: setup oracle book browser
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbval book/ --nbval-sanitize-with .ci/nbval-sanitize.cfg

# Re-execute every chapter in place so its stored outputs are current (after a package change).
notebooks: setup
	$(PY) scripts/execute_notebooks.py

clean:
	rm -rf _build
