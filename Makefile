# The two commands of the README:
#   make book   set up .venv, fetch the widget scripts (needs npm) and build the book
#               (executes every chapter)
#   make test   set up .venv and ipywidgets 7.7.1 (.widgets7), build the book, run unit tests,
#               nbval on every chapter and the browser check
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ORACLE := .oracle
WIDGETS7 := .widgets7
STAMP := $(VENV)/.installed

.PHONY: book test setup oracle widgets7 widgets browser notebooks clean

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

# ipywidgets 7.7.1, the version Colab ships, in a folder of its own for tests/widgets7.py, which
# puts it first on the path of a child interpreter (the venv keeps ipywidgets 8). --no-deps: of
# its requirements only ipython_genutils is missing from the venv (widgetsnbextension and
# jupyterlab_widgets are never imported; the rest is shared with ipywidgets 8).
$(WIDGETS7)/.installed: | $(STAMP)
	rm -rf $(WIDGETS7)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --target $(WIDGETS7) "ipywidgets==7.7.1" "ipython_genutils==0.2.0" 2>&1 | grep -v "is ignored: it is neither" || true
	PYTHONPATH=$(WIDGETS7) $(PY) -c "import ipywidgets; assert ipywidgets.__version__ == '7.7.1', ipywidgets.__file__"
	touch $@

widgets7: $(STAMP) $(WIDGETS7)/.installed

# The scripts that draw the saved widget state on the book's pages, served by the site itself
# (MyST-NB's default loads them from CDNs): @jupyter-widgets/html-manager's embed-amd.js (it
# bundles the base, controls and output widgets of ipywidgets 8, and of 7) with the Font Awesome
# fonts it asks for, and require.js, which loads it. _config.yml points nb_ipywidgets_js at them
# (html_static_path: book/_static, so they land in _build/html/_static/widgets/). Exact versions
# and the SHA-256 of their npm tarballs: the published site runs exactly what the tests checked.
# To upgrade: change a version, `npm pack` it, put the tarball's sha256sum here.
WIDGETS_JS := book/_static/widgets
HTML_MANAGER_VERSION := 1.0.15
HTML_MANAGER_SHA256 := 2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638
REQUIREJS_VERSION := 2.3.7
REQUIREJS_SHA256 := 31f3330c978fb28684622fe71165dc946432cf0210b2ea8a1ca0233e70f2737d
WIDGETS_JS_STAMP := $(WIDGETS_JS)/.html-manager-$(HTML_MANAGER_VERSION)-requirejs-$(REQUIREJS_VERSION)

# Tarballs are checked against the pinned SHA-256, unpacked in a temporary folder, and the folder
# is put in place whole (a failed run leaves none half-filled for the build to copy).
$(WIDGETS_JS_STAMP):
	@command -v npm >/dev/null 2>&1 || { echo "make: npm is missing. The book's widget scripts are fetched with npm: install Node.js and npm (Debian/Ubuntu: sudo apt-get install nodejs npm; or https://nodejs.org), then run make again." >&2; exit 1; }
	rm -rf $(WIDGETS_JS)
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	hm=jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION).tgz; rq=requirejs-$(REQUIREJS_VERSION).tgz; \
	(cd "$$tmp" && npm pack --loglevel=error "@jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION)" "requirejs@$(REQUIREJS_VERSION)" >/dev/null); \
	$(PYTHON) -c 'import hashlib, sys; a = sys.argv[1:]; bad = [f for f, h in zip(a[::2], a[1::2]) if hashlib.sha256(open(f, "rb").read()).hexdigest() != h]; sys.exit("make: not the tarball whose SHA-256 the Makefile pins: " + " ".join(bad) if bad else 0)' \
	  "$$tmp/$$hm" $(HTML_MANAGER_SHA256) "$$tmp/$$rq" $(REQUIREJS_SHA256); \
	mkdir "$$tmp/hm" "$$tmp/rq" "$$tmp/widgets"; \
	tar -xzf "$$tmp/$$hm" -C "$$tmp/hm"; tar -xzf "$$tmp/$$rq" -C "$$tmp/rq"; \
	cp "$$tmp"/hm/package/dist/embed-amd.js "$$tmp"/hm/package/dist/*.woff2 "$$tmp"/hm/package/dist/*.woff \
	   "$$tmp"/hm/package/dist/*.ttf "$$tmp/rq/package/require.js" "$$tmp/widgets/"; \
	cp "$$tmp/hm/package/dist/embed.js.LICENSE.txt" "$$tmp/widgets/html-manager-THIRD-PARTY-LICENSES.txt"; \
	touch "$$tmp/widgets/$(notdir $(WIDGETS_JS_STAMP))"; \
	mkdir -p $(dir $(WIDGETS_JS)); mv "$$tmp/widgets" $(WIDGETS_JS)

# Loaded before require.js on pages with widgets. (1) html-manager computes the address of its
# fonts from the address require.js gives its modules, by default the page's own folder, where
# no font is: map the bundled modules onto the folder of this script. (2) The controls typeset
# their labels with MathJax 2's MathJax.Hub.Queue; Sphinx loads MathJax 3, which has no Hub
# (an uncaught TypeError per label): forward the call to MathJax 3.
define WIDGETS_CONFIG_JS
/* Written by `make widgets` (see the Makefile): loaded before require.js on pages with widgets. */
(function () {
  var here = document.currentScript.src.replace(/[?#].*$$/, "").replace(/\/[^\/]*$$/, "");
  window.require = {paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}};
  window.addEventListener("load", function () {
    var mathjax = window.MathJax;
    if (!mathjax || mathjax.Hub) return;
    mathjax.Hub = {Queue: function (job) {
      if (!(mathjax.startup && mathjax.startup.promise)) return;
      mathjax.startup.promise.then(function () {
        return mathjax.typesetPromise && mathjax.typesetPromise([job[2]]);
      }).catch(function (error) { console.warn("MathJax could not typeset a widget label", error); });
    }};
  });
})();
endef
export WIDGETS_CONFIG_JS

$(WIDGETS_JS)/config.js: $(WIDGETS_JS_STAMP) Makefile
	printf '%s\n' "$$WIDGETS_CONFIG_JS" > $@

widgets: $(WIDGETS_JS_STAMP) $(WIDGETS_JS)/config.js

# --all and a fresh _build/html: every chapter is re-read and re-executed (an incremental
# build would skip notebooks whose file did not change, even after edits to the package),
# and no page removed from _toc.yml lingers on the site.
book: setup widgets
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
# DETR_EXPLAINED_OFFLINE=1: chapter 8 takes its offline path (the shipped model on a held-out
# scene) even where the internet is, as its stored outputs do; the book build shows the real model.
test: setup oracle widgets7 book browser
	$(PY) -m pytest -q tests
	DETR_EXPLAINED_OFFLINE=1 $(PY) -m pytest -q --nbval book/ --nbval-sanitize-with .ci/nbval-sanitize.cfg

# Re-execute every chapter in place so its stored outputs are current (after a package change).
notebooks: setup
	DETR_EXPLAINED_OFFLINE=1 $(PY) scripts/execute_notebooks.py

clean:
	rm -rf _build
