"""The book (``scripts/build_book.sh``) built from the sources under test and opened in a real browser.

The site is built into a temporary folder, so what is checked is always this checkout's notebooks
and pages, never an older ``build/book/``. Served from a local ``http.server`` on 127.0.0.1, every
page is opened in Chromium (driven by Playwright) and must: log no error in the console, load every
image, show its math typeset by MathJax (no raw ``$$`` left), link only to pages, files and anchors
that exist, and request nothing from any host but 127.0.0.1 (such requests are aborted and listed).

Without a browser, the built files are checked too: one page per notebook and markdown page, all of
them in the contents, and no script, stylesheet or font named outside the site.

The build needs the ``book`` extra (``pip install -e '.[book]'``); without it these tests are skipped.
The browser tests run when ``GROWLIB_BROWSER_TESTS=1`` and need Chromium (Debian: ``apt-get install
chromium``; ``$GROWLIB_CHROMIUM`` names another binary) and ``playwright`` (the ``dev`` extra). Under
``CI=true`` anything missing is a failure, not a skip. On a failure the page's screenshot is kept in
the test's temporary folder, named in the message.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

from browser_setup import chromium, console_errors, require_browser, screenshot_on_failure, skip_or_fail

# one worker builds the site once and opens all its pages
pytestmark = pytest.mark.xdist_group("book")

REPO = Path(__file__).parents[1]
BUILD_TIMEOUT_S = 600
MATH_TIMEOUT_MS = 30_000
LOCAL_HOSTS = {"127.0.0.1"}
# the pages of every site (the root index.html leads to the landing page book/index.html)
SITE_PAGES = ["index.html", "book/index.html", "genindex.html", "search.html"]
# the sources that become pages: each notebook a chapter, each markdown file a page
PAGE_SOURCES = ["notebooks/*.ipynb", "notebooks/*.md", "docs/*.md"]
# folders of the built site that hold assets, not pages
ASSET_FOLDERS = {"_static", "_images", "_sources", "_downloads", ".doctrees"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # no calls home


def _sources() -> list[Path]:
    return [p for pattern in PAGE_SOURCES for p in sorted(REPO.glob(pattern))]


def _page_of(source: Path) -> str:
    return source.relative_to(REPO).with_suffix(".html").as_posix()


EXPECTED_PAGES = SITE_PAGES + [_page_of(s) for s in _sources()]


def _book_extra_missing() -> str | None:
    for module in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx-mathjax-offline"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[book]')"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The book, built by scripts/build_book.sh into a temporary folder."""
    why = _book_extra_missing()
    if why:
        skip_or_fail("the book test", why)
    out = tmp_path_factory.mktemp("book") / "site"
    done = subprocess.run(["bash", str(REPO / "scripts" / "build_book.sh"), str(out)], cwd=REPO,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"scripts/build_book.sh failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return out


def _built_pages(site: Path) -> set[str]:
    return {p.relative_to(site).as_posix() for p in site.rglob("*.html")
            if not ASSET_FOLDERS & set(p.relative_to(site).parts)}


def test_every_notebook_and_markdown_page_is_a_page_of_the_site(site):
    assert list(REPO.glob("notebooks/*.ipynb")), f"no notebooks/*.ipynb under {REPO}"
    built, expected = _built_pages(site), set(EXPECTED_PAGES)
    assert built == expected, f"missing pages: {sorted(expected - built)}; unexpected pages: {sorted(built - expected)}"


class _Links(HTMLParser):
    """Every URL a page loads or links to, as (tag, attribute, rel, value)."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str, str, str]] = []
        self.styles: list[str] = []  # inline <style> blocks and style="" attributes
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "data", "poster"):
            if attrs.get(name):
                self.urls.append((tag, name, (attrs.get("rel") or "").lower(), attrs[name]))
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_the_contents_list_every_chapter_and_page(site):
    linked = {urldefrag(value)[0] for tag, _, _, value in _parse(site / "book" / "index.html").urls if tag == "a"}
    unlisted = [page for page in EXPECTED_PAGES if page not in SITE_PAGES and f"../{page}" not in linked]
    assert not unlisted, f"pages missing from the contents of book/index.html: {unlisted}"


def _is_outside(url: str) -> bool:
    """True for an absolute or protocol-relative URL whose host is not this machine's."""
    parts = urlsplit(url.strip())
    return bool(parts.netloc) and parts.scheme in ("http", "https", "") and parts.hostname not in LOCAL_HOSTS


# what a stylesheet loads: url(...) and @import "..." (comments removed first)
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
CSS_LOADS = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")
# <link rel=...> values that make the browser fetch the href
FETCHING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch", "icon",
                 "shortcut icon", "apple-touch-icon", "manifest"}


def _css_loads(text: str) -> list[str]:
    return [a or b for a, b in CSS_LOADS.findall(CSS_COMMENT.sub("", text))]


def test_no_page_or_stylesheet_names_a_script_style_or_font_outside_the_site(site):
    outside = []
    for page in sorted(site.rglob("*.html")):
        parsed = _parse(page)
        for tag, attr, rel, value in parsed.urls:
            # <a href> and navigation <link>s (next, prev, canonical) are followed only when clicked
            if tag == "a" or (tag == "link" and not FETCHING_RELS & {rel, *rel.split()}):
                continue
            if _is_outside(value):
                outside.append(f"{page.relative_to(site)}: <{tag} {attr}={value!r}>")
        outside += [f"{page.relative_to(site)}: style {u!r}" for s in parsed.styles for u in _css_loads(s) if _is_outside(u)]
    for sheet in sorted(site.rglob("*.css")):
        outside += [f"{sheet.relative_to(site)}: {u!r}" for u in _css_loads(sheet.read_text(encoding="utf-8"))
                    if _is_outside(u)]
    assert not outside, "the site names resources outside itself:\n" + "\n".join(outside)


def test_the_book_command_names_the_missing_build_script(tmp_path):
    from growlib.harness.book import build_book

    missing = tmp_path / "scripts" / "build_book.sh"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        build_book(missing)


# ---- in the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(site):
    """The built site over HTTP on a free 127.0.0.1 port; yields its base URL."""
    require_browser("the book test")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@functools.cache
def _fetch(url: str) -> tuple[int, str]:
    """Status and body of a URL on the local server (cached: pages share their links)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def _broken_links(page, base: str) -> list[str]:
    """Links to this site (relative, or on 127.0.0.1) whose file or anchor does not exist."""
    links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href])")
    broken = []
    for written, resolved in links:
        if written.startswith("#") or urlsplit(resolved).scheme not in ("http", "https") or _is_outside(resolved):
            continue  # a pure anchor on this page, a mailto:, or a link out (not followed here)
        target, anchor = urldefrag(resolved)
        status, body = _fetch(target)
        if status != 200:
            broken.append(f"{written!r}: HTTP {status}")
        elif anchor and target.endswith(".html") and not re.search(rf"""\bid=["']{re.escape(anchor)}["']""", body):
            broken.append(f"{written!r}: no element with id {anchor!r} in {target.removeprefix(base)}")
    return broken


def _figures_in(source: Path) -> int:
    """How many images a notebook's committed outputs hold."""
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    return sum(any(m.startswith("image/") for m in o.get("data", {})) for c in cells for o in c.get("outputs", []))


def _has_math(source: Path) -> bool:
    """True when the source's markdown has $...$ or $$...$$ math."""
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = source.read_text(encoding="utf-8")
    return re.search(r"\$[^$\s][^$]*\$", text) is not None


SOURCE_OF = {_page_of(s): s for s in _sources()}


def _check_page(page, name: str, base: str) -> list[str]:
    """Everything wrong with the open page, one line each."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems = []
    # images: loaded, and none broken (lazy ones are asked for now)
    page.evaluate("() => document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
    broken = page.evaluate("() => [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src'))")
    problems += [f"image not loaded: {src}" for src in broken]
    # math: every element Sphinx marked as math holds MathJax's output, and no TeX error
    maths = page.locator(".math").count()
    if maths:
        try:
            page.wait_for_function("() => [...document.querySelectorAll('.math')].every(m => m.querySelector('mjx-container'))",
                                   timeout=MATH_TIMEOUT_MS)
        except PlaywrightTimeout:  # say how far MathJax got
            done = page.locator(".math:has(mjx-container)").count()
            loaded = page.evaluate("() => typeof window.MathJax?.typesetPromise === 'function'")
            problems.append(f"math not typeset: {maths - done} of {maths} math elements have no MathJax output "
                            f"(MathJax loaded: {loaded})")
        errors = page.locator("mjx-merror").count()
        if errors:
            problems.append(f"{errors} math expressions show a TeX error: {page.locator('mjx-merror').first.inner_text()!r}")
    text = page.evaluate("() => document.body.innerText")
    if "$$" in text:
        at = text.index("$$")
        problems.append(f"raw $$ in the visible text: ...{text[max(0, at - 80):at + 80]!r}...")
    source = SOURCE_OF.get(name)
    if source is not None:
        if _has_math(source) and not maths:
            problems.append(f"{source.name} has $ math in its markdown, the page has no math element")
        if source.suffix == ".ipynb":
            figures, shown = _figures_in(source), page.locator("article img, main img").count()
            if shown < figures:
                problems.append(f"{source.name} has {figures} figures in its outputs, the page shows {shown}")
    problems += [f"broken link {b}" for b in _broken_links(page, base)]
    return problems


@pytest.mark.parametrize("name", EXPECTED_PAGES)
def test_page_in_chromium(browser, server, name, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def keep_local(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:  # recorded and refused: the page must work offline
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", keep_local)
    page = context.new_page()
    errors = console_errors(page)
    try:
        with screenshot_on_failure(page, tmp_path / f"{name.replace('/', '_')}.png"):
            page.goto(f"{server}/{name}", wait_until="load")
            if name == "index.html":  # the site's root leads to the landing page
                page.wait_for_url(f"{server}/book/index.html", timeout=10_000)
                page.wait_for_load_state("load")
            problems = _check_page(page, name, server)
            page.wait_for_load_state("networkidle")  # anything the page's scripts ask for late is routed too
            problems += errors
            problems += [f"request outside 127.0.0.1: {url}" for url in outside]
            assert not problems, f"{name}:\n" + "\n".join(problems)
    finally:
        context.close()
