"""Fixtures of the dashboard tests: the dashboard served by uvicorn on 127.0.0.1 (a free port)
in a thread, and the system's Chromium driven by Playwright.

No browser is downloaded: Playwright launches the Chromium of the system packages
(`apt-get install chromium`, which scripts/bootstrap.sh does when it is missing and it runs as
root). Screenshots go to $TUNIX_RT_TEST_OUTPUT/dashboard (default build/test-output/dashboard).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tunix_rt.dashboard.app import create_app
from tunix_rt.dashboard.connections import Settings

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def screenshot_dir() -> Path:
    base = Path(os.environ.get("TUNIX_RT_TEST_OUTPUT", ROOT / "build" / "test-output"))
    directory = base / "dashboard"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def serve_dashboard(settings: Settings) -> Iterator[str]:
    """The dashboard for `settings` served in a thread; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        timeout_graceful_shutdown=3,  # live streams never end by themselves
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium through Playwright. Module-scoped, and asked for after the
    services: Playwright's sync API marks an event loop as running on this thread until it
    stops, and the services' LoopThread cannot close its loop while one is."""
    executable = next((found for b in BROWSERS if (found := shutil.which(b))), None)
    if executable is None:
        pytest.skip(
            "no system Chromium (scripts/bootstrap.sh installs it: apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()
