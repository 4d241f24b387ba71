"""A real browser for the console's tests: Debian's Chromium driven by Playwright.

The console is served by uvicorn in a thread on a free loopback port; the
browser is ``/usr/bin/chromium`` (Playwright's own browser download is not
used). ``.ci/run`` installs Chromium; elsewhere the tests skip with a
message saying how to get it (and fail under ``CI=true``).

Screenshots go to ``$QUNYUN_SCREENSHOTS`` (default ``build/console-screenshots``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("QUNYUN_SCREENSHOTS") or ROOT / "build" / "console-screenshots")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # waiting for a server thread to bind is not time-dependent behaviour under test
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    else:
        raise RuntimeError("the console did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def launch() -> Iterator[Any]:
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: .ci/run should have installed it (apt-get install chromium)")
        pytest.skip("Chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(browser: Any, url: str, username: str, password: str, *, lang: str = "zh-CN") -> Any:
    """A new browser context signed in as ``username`` through the form; the page records its errors.

    ``page.errors`` collects uncaught exceptions and console errors; ``page.dialogs``
    the text of every dialog (the "are you sure?" of destructive forms), which is
    accepted — or dismissed once ``page.accept_dialogs`` is set to ``False``.
    """
    context = browser.new_context(locale=lang, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(f"{msg.text} ({msg.location.get('url')})")
            if msg.type == "error" else None)

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        if page.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", accept)
    page.errors = errors
    page.dialogs = dialogs
    page.accept_dialogs = True
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot named ``name`` and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
