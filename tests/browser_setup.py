"""What the browser tests share (tests/test_browser.py, tests/test_book.py): the switch that runs
them, where Chromium is, a skip that ``CI=true`` turns into a failure, the page's console errors
and a screenshot kept on failure."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

BROWSER_VAR = "GROWLIB_BROWSER_TESTS"


def chromium() -> str | None:
    """``$GROWLIB_CHROMIUM``, else the first Chromium or Chrome on the PATH."""
    named = os.environ.get("GROWLIB_CHROMIUM")
    if named:
        return named
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(test: str, why: str) -> None:
    """Skip ``test`` (e.g. "the book test") because of ``why``; under ``CI=true``, fail instead."""
    if on_ci():
        pytest.fail(f"CI=true and {test} cannot run: {why}")
    pytest.skip(why)


def require_browser(test: str, other_missing: str | None = None) -> None:
    """Skip unless ``$GROWLIB_BROWSER_TESTS`` is 1; then skip (or fail on CI) if Playwright, Chromium
    or what the caller found missing (``other_missing``) is not here."""
    if os.environ.get(BROWSER_VAR) != "1":
        pytest.skip(f"browser tests run with {BROWSER_VAR}=1")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail(test, "playwright is not installed (pip install -e '.[dev]')")
    if other_missing:
        skip_or_fail(test, other_missing)
    if chromium() is None:
        skip_or_fail(test, "no Chromium binary (apt-get install chromium, or set GROWLIB_CHROMIUM)")


def console_errors(page) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions from now on."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return errors


@contextmanager
def screenshot_on_failure(page, shot: Path, more: str = ""):
    """On a failure inside the block, keep a full-page screenshot of ``page`` at ``shot`` and print
    where (and ``more``), then let the failure go on."""
    try:
        yield
    except BaseException:
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot kept: {shot}{more}")
        raise
