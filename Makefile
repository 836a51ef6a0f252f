# The two commands of the README:
#   make book   set up .venv and build the book (executes every chapter)
#   make test   set up .venv and run unit tests, nbval on every chapter and the browser check
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ORACLE := .oracle
STAMP := $(VENV)/.installed

.PHONY: book test setup oracle clean

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

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: setup oracle
	$(PY) -m pytest -q
