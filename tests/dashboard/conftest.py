"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright)
against a real uvicorn serving ``api.app:app`` and a real Celery worker, on the suite's
PostgreSQL and Redis. One browser, server and worker for the session; a fresh browser
context (cookies) and fresh rows per test."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.auth import issue_key
from models import Mode
from tests.api.web import server_in_thread
from tests.worker.processes import WorkerProcess, flush_broker

CHROMIUM = os.environ.get("ORDERCOPY_TEST_CHROMIUM", "/usr/bin/chromium")
#: Set to a directory (``make screenshots``: docs/screenshots) to save each page's picture.
SCREENSHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")
#: Milliseconds the browser waits for what a page should come to show (a bound, not a goal).
WAIT_MS = 20_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    with server_in_thread() as url:
        yield url


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A real ``celery -A worker worker`` process on this run's database and broker, for
    one module: a worker left running would take the copies and webhook messages of the
    tests that start workers of their own later in the same xdist worker (same broker
    prefix), and they would wait for their own in vain."""
    flush_broker()
    process = WorkerProcess(tmp_path_factory.mktemp("dashboard-worker"), "dashboard")
    yield process
    process.stop()
    flush_broker()


@dataclass
class Dashboard:
    url: str
    page: Any
    token: str
    sessions: sessionmaker[Session]

    def go(self, path: str) -> Any:
        return self.page.goto(self.url + path)

    def sign_in(self, path: str = "/dashboard") -> None:
        """Ask for ``path``, be sent to sign in, sign in, land on ``path``."""
        self.go(path)
        assert "/dashboard/sign-in" in self.page.url
        self.page.get_by_label("API key").fill(self.token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(re.escape(self.url + path) + "$"))

    def shot(self, name: str) -> None:
        """Save the page's picture as ``<name>.png`` when screenshots are asked for."""
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def key_for(sessions: sessionmaker[Session], mode: Mode) -> str:
    with sessions.begin() as session:
        _, token = issue_key(session, name=f"dashboard {mode}", mode=mode)
    return token


@pytest.fixture
def dashboard(
    browser: Any, server: str, worker: WorkerProcess, committed: Any
) -> Iterator[Dashboard]:
    """A new browser context (no cookies) at 1280 px, with a test-mode key to sign in with."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield Dashboard(server, page, key_for(committed, Mode.TEST), committed)
    finally:
        context.close()
