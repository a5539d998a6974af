"""The notebooks' widgets in a real browser: JupyterLab, driven by Playwright on Chromium.

Kernel-side tests cannot see where widgets break: a front end that does not match the
kernel's ipywidgets, a callback that raises, a figure drawn but never displayed. Here each
notebook with widgets is opened in JupyterLab and run from the top; then every control is
moved as a learner would (sliders dragged with the mouse, buttons clicked, a dropdown
chosen) and the figure under the controls must change, with no error in the page's console.

Runs when ``GROWLIB_BROWSER_TESTS=1``. Needs Chromium (Debian: ``apt-get install chromium``;
``$GROWLIB_CHROMIUM`` names another binary), ``playwright`` and ``jupyterlab`` (the ``dev``
extra). Without them the test is skipped, except under ``CI=true``, where a missing browser
is a failure. On a failure the page's screenshot is kept in the test's temporary folder,
named in the message.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from browser_setup import chromium, console_errors, require_browser, screenshot_on_failure

# one worker runs them all: one JupyterLab, and 03 reuses the checkpoints 02 made
pytestmark = pytest.mark.xdist_group("browser")

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
# every notebook with widgets, and how many controls each shows
# (02: top-k, the rule buttons; 03: width, + layers and split noise sliders, the placement dropdown, the
# "turn off" rule buttons)
WIDGET_NOTEBOOKS = {"00_overview.ipynb": 5, "02_upcycling.ipynb": 4, "03_bilateral_growth.ipynb": 5}
RUN_TIMEOUT_S = 600  # one notebook run from the top, phases shortened by GROWLIB_STEPS
REDRAW_TIMEOUT_S = 30


def _jupyterlab_missing() -> str | None:
    if shutil.which("jupyter-lab") is None and shutil.which("jupyter") is None:
        return "jupyterlab is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free 127.0.0.1 port with a token, over a copy of the notebooks."""
    require_browser("the browser test", _jupyterlab_missing())
    root = tmp_path_factory.mktemp("lab")
    for name in WIDGET_NOTEBOOKS:  # a copy: JupyterLab saves what it runs
        shutil.copy(NOTEBOOKS / name, root / name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = uuid.uuid4().hex
    env = {**os.environ, "GROWLIB_RUNS_DIR": str(root / "runs"),
           # a fresh JupyterLab: no workspace or settings of an earlier session restored
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"), "GROWLIB_STEPS": "2",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "GROWLIB_HEADLESS": ""}  # show the explorers
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         "--LabApp.news_url=", "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI containers run as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: see {root / 'jupyterlab.log'}")
            time.sleep(0.5)
    yield url, token, root
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _run_all(page) -> None:
    """Run every cell through JupyterLab's Run menu; wait until the kernel is done."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.locator(".jp-Notebook").wait_for()
    # JupyterLab may ask which kernel to start: the notebook's own (Python 3), as a learner would
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    try:
        select.click(timeout=15_000)
    except PlaywrightTimeout:
        pass
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=120_000)  # the kernel started
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # done when every cell has run, or when one raised (Run All stops there)
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
        const failed = [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
            .some(o => o.textContent.includes('Traceback (most recent call last)'));  // not a warning
        return failed || (prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t)));
    }""", timeout=RUN_TIMEOUT_S * 1000, polling=1000)
    failed = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                          has_text="Traceback (most recent call last)")
    if failed.count():
        raise AssertionError(f"a cell raised while running all cells:\n{failed.first.inner_text()[-2000:]}")


def _figure(explorer) -> str:
    """The explorer's figure, as the PNG's data URL (the image the learner sees)."""
    img = explorer.locator(".widget-output img").last
    img.wait_for(timeout=REDRAW_TIMEOUT_S * 1000)
    return img.get_attribute("src")


def _wait_for_new_figure(page, explorer, before: str, what: str) -> str:
    deadline = time.time() + REDRAW_TIMEOUT_S
    while time.time() < deadline:
        errors = explorer.locator(".widget-output .jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
        if errors.count():
            raise AssertionError(f"{what}: the callback wrote an error under the controls:\n{errors.first.inner_text()}")
        now = _figure(explorer)
        if now != before:
            return now
        page.wait_for_timeout(250)
    raise AssertionError(f"{what}: the figure did not change within {REDRAW_TIMEOUT_S} s")


def _drag_to_the_other_end(page, slider) -> None:
    """Drag the slider's handle to the other end of its track from where it sits.

    The notebook's outputs above the explorer (figures still being laid out) can move the
    page between measuring the handle and pressing the mouse: scroll the slider into view
    and measure until two measurements agree first.
    """
    slider.scroll_into_view_if_needed()
    handle, target = slider.locator(".noUi-handle"), slider.locator(".noUi-target")
    box = handle.bounding_box()
    for _ in range(20):
        page.wait_for_timeout(150)
        again = handle.bounding_box()
        if again == box:
            break
        box = again
    track = target.bounding_box()
    y = box["y"] + box["height"] / 2
    x_to = track["x"] + (0.05 if box["x"] > track["x"] + track["width"] / 2 else 0.95) * track["width"]
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(x_to, y, steps=8)
    page.mouse.up()


def _move_every_control(page, explorer) -> list[str]:
    """Drag each slider, click each toggle button, choose each dropdown's next option; the figure must change."""
    moved = []
    figure = _figure(explorer)
    for i in range(explorer.locator(".widget-slider").count()):
        slider = explorer.locator(".widget-slider").nth(i)
        label = slider.locator(".widget-label").first.inner_text()
        readout = slider.locator(".widget-readout")
        before = readout.inner_text()
        for attempt in range(2):  # a second try only if the page moved under the mouse (see below)
            _drag_to_the_other_end(page, slider)
            if readout.inner_text() != before:
                break
        assert readout.inner_text() != before, f"slider {label!r}: dragging did not change its value {before}"
        figure = _wait_for_new_figure(page, explorer, figure, f"slider {label!r} {before} -> {readout.inner_text()}")
        moved.append(f"{label} {before}->{readout.inner_text()}")
    for group in explorer.locator(".widget-toggle-buttons").all():
        for button in group.locator("button").all():
            if "mod-active" in (button.get_attribute("class") or ""):
                continue
            name = button.inner_text()
            button.click()
            figure = _wait_for_new_figure(page, explorer, figure, f"button {name!r}")
            moved.append(f"button {name}")
    for select in explorer.locator(".widget-dropdown select").all():
        options = select.locator("option").all_inner_texts()
        for option in options:
            if option == select.evaluate("s => s.options[s.selectedIndex].text"):
                continue
            select.select_option(label=option)
            figure = _wait_for_new_figure(page, explorer, figure, f"dropdown option {option!r}")
            moved.append(f"dropdown {option}")
    return moved


@pytest.mark.parametrize("notebook", list(WIDGET_NOTEBOOKS))
def test_every_widget_redraws_its_figure_in_jupyterlab(lab, browser, notebook, tmp_path):
    url, token, root = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = console_errors(page)
    try:
        log = f"; JupyterLab's log: {root / 'jupyterlab.log'}"
        with screenshot_on_failure(page, tmp_path / f"{notebook}.png", log):
            # a workspace of its own, reset: only this notebook open, whatever ran before
            stem = notebook.split(".")[0]
            page.goto(f"{url}/lab/workspaces/{stem}/tree/{notebook}?reset&token={token}",
                      wait_until="domcontentloaded")
            _run_all(page)
            explorers = page.locator(".jp-OutputArea-output .widget-vbox:has(.widget-output)")
            assert explorers.count() == 1, f"expected one explorer, found {explorers.count()}"
            explorer = explorers.first
            explorer.scroll_into_view_if_needed()
            controls = explorer.locator(".widget-slider, .widget-toggle-buttons, .widget-dropdown").count()
            assert controls == WIDGET_NOTEBOOKS[notebook], f"{controls} controls shown"
            moved = _move_every_control(page, explorer)
            print(f"{notebook}: moved {len(moved)}: {'; '.join(moved)}")
            assert not errors, "errors in the page's console:\n" + "\n".join(errors)
    finally:
        context.close()
        _shut_down_kernels(url, token)


def _shut_down_kernels(url: str, token: str) -> None:
    """End every kernel this server started, so the next notebook runs alone."""
    import json

    with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels/{k['id']}?token={token}", method="DELETE"),
                               timeout=30)
