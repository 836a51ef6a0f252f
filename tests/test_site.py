"""A browser check of the built book (_build/html), in headless Chromium.

Every page is opened once; the tests then fail on an image that did not load, an internal link
to a page or anchor that does not exist, and a Colab launch button that does not open an
.ipynb of this repository on the configured branch.

`make test` builds the book first; run alone, this module builds it if _build/html is missing.
It needs the Debian packages chromium and chromium-driver (the Makefile installs them). Without
them the tests are skipped locally and fail under CI (CI=true).

Pages with widgets (the explorers of detr_explained.explore): the conventions
-----------------------------------------------------------------------------
The site shows each panel in the state the build saved: MyST-NB embeds the widget state and the
site's own copy of @jupyter-widgets/html-manager draws it (`make widgets`, _config.yml). A page
has widgets when its HTML holds widget views (<script type="application/vnd.jupyter.widget-view+json">)
or its notebook in book/ holds saved widget state. On such a page:

(a) every widget view is drawn into real controls: right before the view's script, html-manager's
    div.widget-subarea holds at least one widget that is not a box
    (`.jupyter-widgets:not(.widget-container)`: .widget-slider, .widget-dropdown,
    .widget-toggle-buttons, .widget-checkbox, .widget-button, .widget-output, .widget-html ...)
    and no error widget (.jupyter-widgets-error-widget); the page embeds the widget state and
    loads the widget scripts from the site itself (_static/widgets/), never from a CDN;
(b) the browser console (Chromium's log, level SEVERE) has no error, except the ones listed in
    KNOWN_CONSOLE_ERRORS below, each explained (they come from the theme and the offline check,
    and appear on every page, with or without widgets);
(c) every widget has a figure near it: an <img> that loaded, in the widget's own code cell (the
    figure of its Output widget counts) or in the next code cell;
(d) the page says, visibly, that the controls move only when the page runs. Convention: a
    markdown cell before the first panel holds this note (class and first words are what the
    test looks for: a visible element of class `explorer-static` whose text contains
    "On this page the controls"):

        :::{note}
        :class: explorer-static
        On this page the controls move only when the page runs: open it in Colab (the rocket
        button at the top) or in Jupyter to explore.
        :::

Cell tags, for nbval (`make test` runs `pytest --nbval book/`): the code cell that displays a
panel gets the tag `nbval-ignore-output`, and it alone. nbval skips the widget view in its output
but compares the output's text/plain, the widget's repr, which holds the panel's initial values,
is cut at 110 characters and differs between ipywidgets 7 and 8. The cell still runs under nbval
(not `nbval-skip`: later cells may use the panel), and the cells around it keep being compared.
test_widget_cells_are_tagged_nbval_ignore_output checks it on the notebooks in book/.

test_some_page_has_widgets fails until a chapter displays an explorer.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
COLAB_PREFIX = (CONFIG["launch_buttons"]["colab_url"].rstrip("/") + "/github/"
                + urlsplit(REPO_URL).path.strip("/") + f"/blob/{BRANCH}/")

# Folders of the build that hold assets, not pages.
ASSET_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static"}

# A page that only forwards the reader, like the root index.html.
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.IGNORECASE)

# Everything the page tells us, read in one pass (after the load event).
PAGE_SCRIPT = """
return {
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
                                                  ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  anchors: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name),
};
"""

VIEW_TYPE = "application/vnd.jupyter.widget-view+json"
STATE_TYPE = "application/vnd.jupyter.widget-state+json"

# True once html-manager has drawn every widget view (or there is none) and every image is in.
WIDGETS_SETTLED_SCRIPT = f"""
const views = document.querySelectorAll('script[type="{VIEW_TYPE}"]');
return Array.from(views).every(s => s.previousElementSibling
                                    && s.previousElementSibling.classList.contains('widget-subarea')
                                    && s.previousElementSibling.childElementCount > 0)
       && Array.from(document.images).every(i => i.complete);
"""

# What the widget tests need, read once the widgets have settled.
WIDGET_SCRIPT = f"""
const loadedImages = el => el ? Array.from(el.querySelectorAll('img'))
                                     .filter(i => i.complete && i.naturalWidth > 0).length : 0;
const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const cells = Array.from(document.querySelectorAll('div.cell'));
return {{
  state: document.querySelectorAll('script[type="{STATE_TYPE}"]').length,
  scripts: Array.from(document.querySelectorAll('script[src]')).map(s => s.src),
  static_notes: Array.from(document.querySelectorAll('.explorer-static')).filter(visible)
                     .map(e => e.innerText),
  views: Array.from(document.querySelectorAll('script[type="{VIEW_TYPE}"]')).map(s => {{
    const area = s.previousElementSibling;
    const drawn = !!(area && area.classList.contains('widget-subarea'));
    const cell = s.closest('div.cell');
    const index = cells.indexOf(cell);
    let model_id = '?';
    try {{ model_id = JSON.parse(s.textContent).model_id; }} catch (e) {{}}
    return {{
      model_id: model_id,
      drawn: drawn,
      controls: drawn ? area.querySelectorAll('.jupyter-widgets:not(.widget-container)').length : 0,
      errors: drawn ? area.querySelectorAll('.jupyter-widgets-error-widget').length : 0,
      figures: loadedImages(cell) + loadedImages(index >= 0 ? cells[index + 1] : null),
    }};
  }}),
}};
"""

# SEVERE console entries that are not the book's fault, each with its reason. Anything else on
# a page with widgets fails test_widget_pages_log_no_console_errors.
KNOWN_CONSOLE_ERRORS = [
    # Sphinx 7.4 writes sphinx-thebe's inline settings script twice on every page (a script
    # registered after the builder starts is added again with filename '' instead of None): the
    # second copy re-declares a const. The first copy stands; the book does not use thebe.
    (r"Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared",
     "sphinx-thebe's settings written twice by Sphinx 7.4"),
    # The theme's first page in a fresh browser profile, with no light/dark choice saved.
    (r"pydata-sphinx-theme\.js\S* .*Got invalid theme mode: \. Resetting to auto\.",
     "pydata-sphinx-theme on a first visit"),
    # Sphinx loads MathJax 3 from jsDelivr; this check runs offline (the published site loads it).
    (r"^https://cdn\.jsdelivr\.net/npm/mathjax@3/\S+ - Failed to load resource: net::ERR_",
     "MathJax's CDN, offline"),
    # The browser asks for /favicon.ico by itself; the book has none.
    (r"/favicon\.ico - Failed to load resource: the server responded with a status of 404",
     "no favicon"),
]


def _build_if_missing():
    if (SITE / "index.html").exists():
        return
    if not (ROOT / "book" / "_static" / "widgets" / "config.js").is_file():
        subprocess.run(["make", "widgets"], cwd=ROOT, check=True)  # html_static_path needs them
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going"],
                   cwd=ROOT, check=True)


def _chromium_driver():
    """A headless Chromium via the Debian chromedriver, with no network side traffic."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        message = "needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1280,900"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for get_log
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    return driver, profile


@pytest.fixture(scope="module")
def site():
    """Serve _build/html on 127.0.0.1, open every page once, return what each page holds."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    _build_if_missing()
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    driver = profile = None
    try:
        driver, profile = _chromium_driver()
        pages, redirects = {}, {}
        for path in sorted(SITE.rglob("*.html")):
            rel = path.relative_to(SITE).as_posix()
            if rel.split("/")[0] in ASSET_DIRS:
                continue
            redirect = REDIRECT.search(path.read_text(errors="replace"))
            if redirect:  # index.html only forwards to the root page: check where it points
                redirects[rel] = posixpath.normpath(posixpath.join(posixpath.dirname(rel),
                                                                   redirect.group(1)))
                continue
            driver.get(base + rel)
            try:  # html-manager draws the widgets after the load event
                WebDriverWait(driver, 30, poll_frequency=0.2).until(
                    lambda d: d.execute_script(WIDGETS_SETTLED_SCRIPT))
            except TimeoutException:
                pass  # the widget tests report what is missing
            pages[rel] = driver.execute_script(PAGE_SCRIPT)
            pages[rel]["widgets"] = driver.execute_script(WIDGET_SCRIPT)
            pages[rel]["console"] = driver.get_log("browser")  # entries since the previous page
        yield {"base": base, "pages": pages, "redirects": redirects}
    finally:
        if driver is not None:
            driver.quit()
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _local_target(url: str, base: str):
    """(path relative to the site, fragment) for a link into the site, else None."""
    if not url.startswith(base):
        return None
    parts = urlsplit(url)
    path = posixpath.normpath(unquote(parts.path).lstrip("/")) if parts.path.strip("/") else ""
    if path in ("", "."):
        path = "index.html"
    elif (SITE / path).is_dir():
        path = posixpath.join(path, "index.html")
    return path, unquote(parts.fragment)


def test_site_opens_on_the_intro_page(site):
    assert "book/intro.html" in site["pages"]
    assert site["redirects"].get("index.html") == "book/intro.html"
    for page, target in site["redirects"].items():
        assert target in site["pages"], f"{page} forwards to a missing page {target}"


def test_every_image_loads(site):
    broken = [f"{page}: {image['src']}" for page, info in site["pages"].items()
              for image in info["images"] if not image["ok"]]
    assert not broken, "images that did not load:\n" + "\n".join(broken)


def test_every_internal_link_resolves(site):
    broken = []
    for page, info in site["pages"].items():
        for url in info["links"]:
            target = _local_target(url, site["base"])
            if target is None:
                continue  # external, mailto:, javascript: ... not checked offline
            path, fragment = target
            if not (SITE / path).is_file():
                broken.append(f"{page}: {url} (no such file)")
            elif fragment and path in site["pages"] and fragment not in site["pages"][path]["anchors"]:
                broken.append(f"{page}: {url} (no anchor #{fragment})")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_colab_buttons_open_notebooks_of_this_repository_on_main(site):
    assert BRANCH == "main"
    notebook_pages = {p for p in site["pages"]
                      if (SITE / "_sources" / p).with_suffix(".ipynb").is_file()}
    assert "book/intro.html" in notebook_pages
    wrong, with_button = [], set()
    for page, info in site["pages"].items():
        for url in info["links"]:
            if "colab.research.google.com" not in url:
                continue
            with_button.add(page)
            notebook = url[len(COLAB_PREFIX):] if url.startswith(COLAB_PREFIX) else None
            if not notebook or not notebook.endswith(".ipynb") or not (ROOT / notebook).is_file():
                wrong.append(f"{page}: {url}")
            elif re.sub(r"\.ipynb$", ".html", notebook) != page:
                wrong.append(f"{page}: {url} (opens another notebook)")
    assert not wrong, f"Colab links not of the form {COLAB_PREFIX}<existing>.ipynb:\n" + "\n".join(wrong)
    missing = sorted(notebook_pages - with_button)
    assert not missing, f"notebook pages without a Colab button: {missing}"


# ---------------------------------------------------------------- pages with widgets

def _notebook(page: str) -> Path:
    return ROOT / Path(page).with_suffix(".ipynb")


def _saved_widget_state(notebook: Path) -> dict:
    """The notebook's saved widget state ({} if none), as MyST-NB reads it."""
    metadata = json.loads(notebook.read_text()).get("metadata", {})
    return (metadata.get("widgets") or {}).get(STATE_TYPE, {}).get("state") or {}


def _widget_pages(site) -> list[str]:
    """Pages whose HTML holds widget views or whose notebook holds saved widget state."""
    return sorted(page for page, info in site["pages"].items()
                  if info["widgets"]["views"]
                  or (_notebook(page).is_file() and _saved_widget_state(_notebook(page))))


def test_some_page_has_widgets(site):
    """Chapters 2, 3, 4, 5 and 7 display explorers: at least one page must show widgets."""
    pages = _widget_pages(site)
    assert pages, "no page of the site has widgets (no chapter displays an explorer yet)"


def test_widgets_render_into_controls(site):
    wrong = []
    for page in _widget_pages(site):
        info = site["pages"][page]["widgets"]
        if not info["state"]:
            wrong.append(f"{page}: no embedded widget state (the panels would render blank)")
        if not info["views"]:
            wrong.append(f"{page}: its notebook saved widget state but the page shows no widget")
        for view in info["views"]:
            if not view["drawn"] or not view["controls"]:
                wrong.append(f"{page}: widget {view['model_id']} was not drawn into controls")
            elif view["errors"]:
                wrong.append(f"{page}: widget {view['model_id']} was drawn as an error")
    assert not wrong, "\n".join(wrong)


def test_widget_scripts_come_from_the_site(site):
    local = site["base"] + "_static/widgets/"
    wrong = []
    for page in _widget_pages(site):
        scripts = site["pages"][page]["widgets"]["scripts"]
        wrong += [f"{page}: {s}" for s in scripts if not s.startswith(local)
                  and re.search(r"require|html-manager|embed-amd|jupyter-widgets", s)]
        if not any(s.startswith(local + "embed-amd.js") for s in scripts):
            wrong.append(f"{page}: does not load {local}embed-amd.js")
    assert not wrong, "widget scripts not served by the site itself:\n" + "\n".join(wrong)


def test_widget_pages_log_no_console_errors(site):
    errors = []
    for page in _widget_pages(site):
        for entry in site["pages"][page]["console"]:
            if entry["level"] != "SEVERE":
                continue
            if any(re.search(pattern, entry["message"]) for pattern, _ in KNOWN_CONSOLE_ERRORS):
                continue
            errors.append(f"{page}: {entry['message']}")
    assert not errors, "errors in the browser console:\n" + "\n".join(errors)


def test_every_widget_has_a_figure_near_it(site):
    alone = [f"{page}: widget {view['model_id']}"
             for page in _widget_pages(site)
             for view in site["pages"][page]["widgets"]["views"] if not view["figures"]]
    assert not alone, ("widgets without a loaded figure in their cell or the next code cell:\n"
                       + "\n".join(alone))


def test_widget_pages_say_the_controls_are_static(site):
    silent = [page for page in _widget_pages(site)
              if not any("On this page the controls" in text
                         for text in site["pages"][page]["widgets"]["static_notes"])]
    assert not silent, ("pages with widgets but no visible note of class explorer-static saying "
                        "'On this page the controls ...' (see this module's docstring):\n"
                        + "\n".join(silent))


def test_widget_cells_are_tagged_nbval_ignore_output():
    """The convention of this module's docstring, on the notebooks' stored outputs."""
    wrong = []
    for notebook in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        for number, cell in enumerate(cells, start=1):
            shows_widget = any(VIEW_TYPE in output.get("data", {})
                               for output in cell.get("outputs", []))
            if not shows_widget:
                continue
            tags = cell.get("metadata", {}).get("tags", [])
            where = f"{notebook.relative_to(ROOT)}, cell {number}"
            if "nbval-ignore-output" not in tags:
                wrong.append(f"{where}: displays a widget without the tag nbval-ignore-output")
            if "nbval-skip" in tags:
                wrong.append(f"{where}: displays a widget and is tagged nbval-skip (it must run)")
    assert not wrong, "\n".join(wrong)
