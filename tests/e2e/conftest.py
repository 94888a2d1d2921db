"""Browser tests: Playwright driving the system Chromium against the live test server."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from generations.fake_segmind import FakeSegmind
from tests.support.queue import run_tasks

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        if os.environ.get("MOCHI_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required for the browser tests but was not found")
        pytest.skip("Chromium is not installed (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    # Playwright's synchronous API runs an event loop in the test thread; the test
    # code still talks to the database directly, which Django otherwise forbids there.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open a page in a fresh browser context (its own cookies), closed after the test."""
    contexts: list[Any] = []

    def open_page(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def site_url(live_server: object, settings: object) -> str:
    url = str(live_server.url)  # type: ignore[attr-defined]
    settings.SITE_URL = url  # type: ignore[attr-defined]
    return url


@pytest.fixture
def pipeline(site_url: str, settings: Any) -> Iterator[FakeSegmind]:
    """The fake upstream plus a worker thread running queued tasks, so the browser can
    watch generations move while the live server serves the pages."""
    from generations import upstream

    with FakeSegmind(latency=2.0) as fake:
        settings.SEGMIND_BASE_URL = fake.url
        settings.SEGMIND_API_KEY = "test-key"
        settings.SEGMIND_POLL_SECONDS = 0.5
        settings.SEGMIND_TYPICAL_SECONDS = 2
        settings.SEGMIND_RPM = 100_000
        upstream.reset_sessions()
        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            from django.db import connection

            try:
                while not stop.is_set():
                    if not run_tasks(timeout=0.3):
                        time.sleep(0.1)
            except BaseException as error:  # reported by the test below
                errors.append(error)
            finally:
                connection.close()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        yield fake
        stop.set()
        worker.join(timeout=30)
        upstream.reset_sessions()
        if errors:
            raise errors[0]


@pytest.fixture
def snap(artifacts: Path) -> Callable[[Any, str], None]:
    """Save a screenshot as a test artifact; with MOCHI_SCREENSHOTS=<folder> also there."""
    extra = os.environ.get("MOCHI_SCREENSHOTS")

    def take(page: Any, name: str) -> None:
        page.screenshot(path=artifacts / f"{name}.png", full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=Path(extra) / f"{name}.png", full_page=True)

    return take
