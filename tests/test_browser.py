"""The book's widgets in a real browser: JupyterLab on localhost, driven by Chromium.

``test_widgets.py`` checks the widget logic as Python objects; this file checks
what a reader sees (issue 15, item 3). One JupyterLab server serves a temporary
copy of ``book/`` under the quick setting (``VFMATCH_QUICK=1``) with its own
vfmatch cache; Playwright drives Debian's Chromium (the system browser, found on
``PATH``: nothing is downloaded). For each chapter in ``CHAPTERS`` the test opens
the notebook, runs every cell, moves one control of the chapter's widget and
checks that

* the widget's displayed output changed (its text, figure titles included),
* no cell raised (no ``error`` output in any cell) and no widget failed to render.

Screenshots (before and after the move) go to the test's temporary folder; the
path is printed, so ``pytest -s`` shows where to look. Every process started
here (the server and its kernels, the browser) is stopped, also on failure.

Skips, with the reason, only when Chromium or the ``playwright`` package is
absent; the README's test command installs both.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

# chapter stem -> how to move its widget (in the last cell that calls a build_*_widget):
# "slider": focus the first slider's handle and press the right arrow once (one step);
# "dropdown": choose the next option of the first dropdown;
# "dropdown+button": that, then click the widget's button (chapter 01 redraws on "Simulate").
# Three chapters whose widgets show three kinds of output: a matplotlib image and audio
# players (01), a plotly figure (02), a table (08).
CHAPTERS = {
    "01_population": "dropdown+button",     # gender, then Simulate: new faces, spectrograms and clips
    "02_voice_encoders": "slider",          # Mel bands: the spectrogram's title says how many
    "08_evaluation": "slider",              # gallery size N': the recall table's values
}
# Known bug, found by this test: vfmatch.widgets.display.rich_output formats a plotly
# figure with IPython's display_formatter.format(), which returns nothing for objects
# with _ipython_display_ (plotly figures have one: it displays them directly instead).
# So a plotly figure never reaches the widget's Output: the first one lands in the
# cell's output, and a redraw is lost. Remove a chapter from here when that is fixed
# (the test then passes, and strict=True makes it fail until the mark goes).
PLOTLY_REDRAW_BUG: set[str] = set()  # fixed in vfmatch.widgets.display.rich_output
SERVER_START_S = 180     # JupyterLab's first start builds its settings; slow on a loaded machine
RUN_ALL_S = 900          # one chapter, every cell, quick setting (5 min seen on 2 heavily loaded cores)
REDRAW_S = 120           # one widget redraw (a figure, or a degraded clip)


def _chromium() -> str | None:
    """The system Chromium (Debian's package ``chromium`` installs /usr/bin/chromium)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and everything it started (its kernels): they share its process group."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _settings(folder: Path) -> None:
    """JupyterLab user settings for the test: render every cell (no windowing, so
    the widget is in the page however far down it is) and fetch no news."""
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port with a token, serving a copy
    of book/; yields ``(base_url, token, folder)`` and stops the server after."""
    root = tmp_path_factory.mktemp("browser")
    work = root / "book"
    shutil.copytree(BOOK, work, ignore=shutil.ignore_patterns("_build"))
    _settings(root / "lab-settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "VFMATCH_QUICK": "1",
        "VFMATCH_CACHE": str(root / "vfmatch-cache"),   # isolated: this test trains what it needs
        "JUPYTER_CONFIG_DIR": str(root / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(root / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--LabApp.expose_app_in_browser=True",   # window.jupyterapp: run all cells, read the kernel's state
           "--allow-root",                            # CI runs as root
           # nothing from the network: no update check, no extension index, no terminals
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
           "--ServerApp.terminals_enabled=False"]
    log = open(root / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}: {(root / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within {SERVER_START_S} s")
            time.sleep(1)
        yield base, token, root
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system, through Playwright; closed after."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to start as root, which CI is
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


# JavaScript run in the page. The notebook panel is the shell's current widget.
_KERNEL_IDLE = """() => {
  const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!nb || !nb.sessionContext || !nb.sessionContext.session) return false;
  return nb.sessionContext.session.kernel !== null && nb.sessionContext.kernelDisplayStatus === 'idle';
}"""
_RUN_ALL = "() => window.jupyterapp.commands.execute('notebook:run-all-cells')"
_CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(c => c.model.type === 'code')
  .map(c => ({count: c.model.executionCount,
              errors: c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                        .map(o => o.ename + ': ' + o.evalue)}))"""


def _wait(page, js: str, timeout_s: float, what: str, poll_s: float = 1.0):
    """Poll ``js`` in the page until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate(js)
        if value:
            return value
        page.wait_for_timeout(poll_s * 1000)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _run_all(page, stem: str) -> None:
    """Run every cell and wait until each code cell has run (or one raised)."""
    _wait(page, _KERNEL_IDLE, SERVER_START_S, f"{stem}'s kernel to start")
    page.evaluate(_RUN_ALL)
    deadline = time.monotonic() + RUN_ALL_S
    while True:
        page.wait_for_timeout(2000)
        cells = page.evaluate(_CELLS)
        errors = [e for c in cells for e in c["errors"]]
        assert not errors, f"{stem}: a cell raised: {errors}"
        if all(c["count"] is not None for c in cells) and page.evaluate(_KERNEL_IDLE):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{stem}: not every cell ran within {RUN_ALL_S} s")


def _notebook(page):
    """The notebook panel on show (the shell's current widget), as a locator."""
    panel_id = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    return page.locator(f"[id='{panel_id}']")


def _widget_cell(page):
    """The chapter's widget cell: the last code cell that calls a ``build_*_widget(...)``."""
    cells = _notebook(page).locator(".jp-CodeCell").filter(has_text=re.compile(r"build_\w+_widget\("))
    assert cells.count() > 0, "no cell calls a build_*_widget function"
    cell = cells.last
    assert cell.locator(".jupyter-widgets.widget-output").count() > 0, "the widget cell shows no ipywidgets Output area"
    return cell


def _signature(output) -> str:
    """What the Output area shows, as text: its text (plotly titles and tick labels
    are SVG text) and the sources of any audio or image in it."""
    return output.evaluate("""el => el.textContent + ' | ' +
        Array.from(el.querySelectorAll('audio, audio source, img')).map(e => e.getAttribute('src') || '').join(' ')""")


def _move(cell, kind: str) -> None:
    """Move the first control of the widget in ``cell`` (see ``CHAPTERS``)."""
    box = cell.locator(".jp-OutputArea")
    if kind == "slider":
        handle = box.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
    else:
        select = box.locator(".widget-dropdown select").first
        n = select.locator("option").count()
        current = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(current + 1) % n)
        if kind == "dropdown+button":
            box.locator("button.jupyter-button").first.click()


def _params():
    bug = pytest.mark.xfail(strict=True, raises=AssertionError,
                            reason="plotly figures do not reach an ipywidgets Output (see PLOTLY_REDRAW_BUG)")
    return [pytest.param(stem, id=stem, marks=[bug] if stem in PLOTLY_REDRAW_BUG else []) for stem in CHAPTERS]


@pytest.mark.slow
@pytest.mark.parametrize("stem", _params())
def test_widget_redraws_in_the_browser(stem, browser, lab):   # browser first: it may skip before a server starts
    base, token, root = lab
    shots = root / "screenshots"
    shots.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.set_default_timeout(60_000)
        # ?reset: a fresh workspace, so the chapters opened before are not reopened beside this one
        page.goto(f"{base}/lab/tree/{stem}.ipynb?reset&token={token}", timeout=SERVER_START_S * 1000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=SERVER_START_S * 1000)
        _run_all(page, stem)
        cell = _widget_cell(page)
        output = cell.locator(".jupyter-widgets.widget-output").first
        output.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)   # let the figure finish drawing
        page.screenshot(path=str(shots / f"{stem}-before.png"))        # what the window shows
        cell.screenshot(path=str(shots / f"{stem}-widget-before.png"))  # the whole widget cell
        before = _signature(output)
        assert before.strip(" |"), f"{stem}: the widget shows nothing"

        _move(cell, CHAPTERS[stem])
        deadline = time.monotonic() + REDRAW_S
        while _signature(output) == before:
            assert time.monotonic() < deadline, f"{stem}: the widget's output did not change within {REDRAW_S} s"
            page.wait_for_timeout(1000)
        _wait(page, _KERNEL_IDLE, REDRAW_S, f"{stem}'s kernel to finish the redraw")
        page.screenshot(path=str(shots / f"{stem}-after.png"))
        cell.screenshot(path=str(shots / f"{stem}-widget-after.png"))

        errors = [e for c in page.evaluate(_CELLS) for e in c["errors"]]
        assert not errors, f"{stem}: a cell raised: {errors}"
        shown = _notebook(page).inner_text()
        for bad in ("Error displaying widget", "Traceback (most recent call last)"):
            assert bad not in shown, f"{stem}: the page shows {bad!r}"
        print(f"{stem}: screenshots in {shots}")
    finally:
        # shut the chapter's kernel down now: three torch kernels at once are a lot for a small
        # machine (the server stops any that is left when the module's tests end)
        try:
            page.evaluate("() => { const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                          " return nb && nb.sessionContext ? nb.sessionContext.shutdown() : null; }")
        finally:
            context.close()
