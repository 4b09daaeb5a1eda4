"""The agent console's page and files: served from an allow-list, CSP-friendly (no inline script or
style), and a script that never turns text into HTML."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI

from tandem.gateway.console_routes import CONSOLE_DIR, install_console_page

BASE = "http://gateway.test"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_console_page(app, CONSOLE_DIR)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


class PageScan(HTMLParser):
    """Collects scripts, stylesheets, inline script content, style attributes and data-testids."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.stylesheets: list[str | None] = []
        self.inline_script = ""
        self.inline_style_elements = 0
        self.style_attributes = 0
        self.event_handler_attributes: list[str] = []
        self.testids: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts.append(values.get("src"))
            self._in_script = True
        if tag == "style":
            self.inline_style_elements += 1
        if tag == "link" and values.get("rel") == "stylesheet":
            self.stylesheets.append(values.get("href"))
        for name, value in attrs:
            if name == "style":
                self.style_attributes += 1
            if name.startswith("on"):
                self.event_handler_attributes.append(name)
            if name == "data-testid" and value:
                self.testids.add(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data


async def test_the_page_is_html_with_its_own_script_and_no_inline_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/agent/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    html = response.text
    assert '<script src="/agent/static/console.js" defer></script>' in html
    scan = PageScan()
    scan.feed(html)
    assert scan.scripts == ["/agent/static/console.js"]
    assert scan.stylesheets == ["/agent/static/console.css"]
    assert scan.inline_script.strip() == ""
    assert scan.inline_style_elements == 0
    assert scan.style_attributes == 0 and not re.search(r"\sstyle\s*=", html, re.IGNORECASE)
    assert scan.event_handler_attributes == []
    assert "javascript:" not in html.lower()
    # Nothing from other origins.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    # The static hooks the browser tests use (the others are built by the script).
    assert {
        "login-email",
        "login-password",
        "login-submit",
        "login-error",
        "agent-name",
        "logout",
        "tab-queued",
        "tab-assigned",
        "tab-resolved",
        "tab-approvals",
        "handoff-detail",
        "status-message",
    } <= scan.testids


async def test_agent_without_a_slash_redirects(client: httpx.AsyncClient) -> None:
    response = await client.get("/agent")
    assert response.status_code == 307
    assert response.headers["location"] == "/agent/"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("console.js", "application/javascript"), ("console.css", "text/css")],
)
async def test_static_files_have_their_content_types(client: httpx.AsyncClient, name: str, content_type: str) -> None:
    response = await client.get(f"/agent/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0].strip() == content_type
    assert response.content == (CONSOLE_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/agent/static/index.html",
        "/agent/static/unknown.js",
        "/agent/static/",
        "/agent/static/CONSOLE.JS",
        "/agent/static/console.js.map",
        "/agent/static/../app.py",
        "/agent/static/%2e%2e/app.py",
        "/agent/static/%2e%2e%2fapp.py",
        "/agent/static/%2e%2e%2f%2e%2e%2fconsole_routes.py",
        "/agent/static/..%2f..%2fconsole_routes.py",
        "/agent/static/console%2fconsole.js",
        "/agent/static/%2fetc%2fpasswd",
    ],
)
async def test_unknown_names_and_traversal_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404, (path, response.text[:200])
    assert "import" not in response.text and "root:" not in response.text


def test_the_routes_are_not_in_the_openapi_schema() -> None:
    app = FastAPI()
    install_console_page(app, CONSOLE_DIR)
    assert not any(path.startswith("/agent") for path in app.openapi()["paths"])


def test_the_script_never_builds_html_from_strings_or_sets_inline_styles() -> None:
    source = (CONSOLE_DIR / "console.js").read_text(encoding="utf-8")
    # Comments may mention what the code does not do; the checks read the code only.
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    code = re.sub(r"(?m)^\s*//.*$", "", code)
    forbidden = {
        "innerHTML": r"\.innerHTML\b",
        "outerHTML": r"\.outerHTML\s*=",
        "insertAdjacentHTML": r"insertAdjacentHTML",
        "document.write": r"document\.write",
        "eval": r"\beval\s*\(",
        "new Function": r"\bnew\s+Function\b",
        "string setTimeout": r"setTimeout\(\s*[\"'`]",
        "DOMParser": r"DOMParser",
        "createContextualFragment": r"createContextualFragment",
        ".style.": r"\.style\.",
        ".style =": r"\.style\s*=",
        "style attribute": r"setAttribute\(\s*[\"']style[\"']",
        "cssText": r"cssText",
    }
    found = [name for name, pattern in forbidden.items() if re.search(pattern, code)]
    assert found == []
    assert code.lstrip().startswith("(() => {")
    assert '"use strict";' in code
    # No other origin: every call goes to the console's own API.
    assert not re.search(r"https?://", code)


def test_the_script_uses_the_documented_api_and_hooks() -> None:
    source = (CONSOLE_DIR / "console.js").read_text(encoding="utf-8")
    for fragment in (
        '"/login"',
        '"/me"',
        '"/logout"',
        "`/handoffs?status=",
        "`/handoffs/${encodeURIComponent(id)}`",
        '"/claim"',
        "/messages`",
        '"/resolve"',
        '"/close"',
        "`/approvals?status=",
        "`/approvals/${encodeURIComponent(approval.id)}/${decision}`",
    ):
        assert fragment in source, fragment
    assert "X-CSRF-Token" in source
    assert 'credentials: "same-origin"' in source
    for testid in (
        "handoff-row",
        "claim",
        "reply-text",
        "reply-send",
        "resolve",
        "resolve-note",
        "close",
        "transcript",
        "transcript-message",
        "approval-row",
        "approve",
        "deny",
    ):
        assert f'"data-testid": "{testid}"' in source, testid


def test_the_stylesheet_imports_nothing() -> None:
    css = (CONSOLE_DIR / "console.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", css)
