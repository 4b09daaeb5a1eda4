"""Browser fixtures: the real stack (action server + Rasa, from tests/e2e), the gateway started with
uvicorn on a free port, and Debian's Chromium driven by Playwright (launched by its path, because
Playwright's own browser download cannot work on our machines: scripts/ensure_chromium.sh installs it)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

# `stack` (the real action server + Rasa server) is the session fixture of tests/conftest.py.
from tests.stack import ARTIFACTS, ROOT, Stack, free_port, stop, wait_until_up

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ARTIFACTS / "browser"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> Iterator[str]:
    """The gateway in front of the real stack, as `make run` starts it; its base URL."""
    port = free_port()
    env = {
        **stack.env,
        "RASA_URL": stack.rasa_url,
        "RASA_API_TOKEN": stack.token,
        "ACTION_SERVER_URL": f"{stack.action_url}/webhook",
        "GATEWAY_SECRET": secrets.token_urlsafe(32),
        "GATEWAY_RATE_LIMIT_SESSION": "120/minute",
        "GATEWAY_RATE_LIMIT_ADDRESS": "2000/minute",
        "GATEWAY_RATE_LIMIT_NEW_SESSION": "1000/minute",
        "RASA_TIMEOUT_SECONDS": "30",
    }
    env.pop("REDIS_URL", None)
    log = ARTIFACTS / "gateway.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tandem.gateway", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", process, log, 30)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's sync API keeps an event loop running while it lives, which
    would break the asyncio tests collected after the browser tests."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run scripts/ensure_chromium.sh (or set CHROMIUM_PATH)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, gateway: str) -> Iterator[BrowserContext]:
    """A fresh visitor (own cookies), desktop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=gateway, locale="en-GB")
    context.set_default_timeout(45_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        page.screenshot(path=str(SHOTS / f"FAILED-{request.node.name}.png"))
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
