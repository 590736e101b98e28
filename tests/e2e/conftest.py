"""Browser tests: Playwright driving Debian's chromium against a live server of the app.

- `browser` (one per session): /usr/bin/chromium, headless, with the flags that keep it quiet on a
  closed network (PRODUCT.md). Never `playwright install`: that downloads a browser.
- `page`: a fresh browser context per test; relative URLs resolve against the live server.
- `alice` / `alice_page`: a user and a page already signed in as her (session cookie, no form).
- `screenshot(page, name)`: writes docs/screenshots/<name>.png (full page), linked from the README.

The live server serves static files through the staticfiles finders, so the front end must be built
(`make frontend`; `make test` does it). Every test here is marked `browser`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

# Playwright's sync API runs an event loop in this thread; Django's ORM must still be usable from the test body.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ARPO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
BUNDLE = ROOT / "webapp" / "core" / "static" / "dist" / "app.js"
PASSWORD = "correct-horse-battery-9"
VIEWPORT = {"width": 1280, "height": 800}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is open, and
# the asyncio tests (Channels consumers) that may run after the browser tests need the thread's loop free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make deps` installs Debian's chromium (apt-get install chromium).")
    if not BUNDLE.exists():
        pytest.fail("The front end is not built: run `make frontend`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def alice(transactional_db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def alice_page(page: Page, alice: User, live_server: Any) -> Page:
    """A page signed in as alice: her session cookie, made by Django's test client."""
    client = Client()
    client.force_login(alice)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    return page


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    def take(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # A full-page shot of a scrolled page draws the sticky top bar mid-page: shoot from the top.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(autouse=True)
def _no_throttling(settings: Any) -> None:
    # Many browser tests sign in within a minute; throttling has its own tests (tests/webapp/accounts).
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"sign_in": None, "upload": None}}
