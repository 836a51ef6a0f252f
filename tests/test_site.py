"""A browser check of the built book (_build/html), in headless Chromium.

Every page is opened once; the tests then fail on an image that did not load, an internal link
to a page or anchor that does not exist, and a Colab launch button that does not open an
.ipynb of this repository on the configured branch.

`make test` builds the book first; run alone, this module builds it if _build/html is missing.
It needs the Debian packages chromium and chromium-driver (the Makefile installs them). Without
them the tests are skipped locally and fail under CI (CI=true).
"""
from __future__ import annotations

import functools
import http.server
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


def _build_if_missing():
    if (SITE / "index.html").exists():
        return
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
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    return driver, profile


@pytest.fixture(scope="module")
def site():
    """Serve _build/html on 127.0.0.1, open every page once, return what each page holds."""
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
            pages[rel] = driver.execute_script(PAGE_SCRIPT)
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
