"""The agent console's security, through the whole gateway app: sessions, CSRF, logins, the cookie.

Every ``/agent/api`` route (read from ``app.routes``, so a new route is covered without editing this
file) refuses a request without a valid ``tandem_agent`` cookie, and every state-changing one a
request without the right ``X-CSRF-Token``. A visitor's session token is never an agent session.
Logins are limited per client address and per e-mail; the password is kept only as an argon2id
hash and never logged (docs/handoff.md, "The API").
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from tandem.clock import utc_now
from tandem.db.models import Agent, AgentSession, Ticket
from tandem.gateway import create_app
from tandem.gateway.agent_routes import AGENT_COOKIE, CSRF_HEADER
from tandem.gateway.sessions import COOKIE_NAME
from tandem.services import agents
from tandem.settings import GatewayAppSettings, load_gateway_settings

from .conftest import BASE, SECRET, start_session
from .desk_support import PASSWORD, DeskDb, csrf, desk_db, login
from .fakes import FakeRasa

PLOY = "ploy@andaman.example"
LEK = "lek@andaman.example"
TTL = 3600

# What docs/handoff.md's table documents.
DOCUMENTED = {
    ("POST", "/agent/api/login"),
    ("GET", "/agent/api/me"),
    ("POST", "/agent/api/logout"),
    ("GET", "/agent/api/handoffs"),
    ("GET", "/agent/api/handoffs/{ticket_id}"),
    ("POST", "/agent/api/handoffs/{ticket_id}/claim"),
    ("POST", "/agent/api/handoffs/{ticket_id}/messages"),
    ("POST", "/agent/api/handoffs/{ticket_id}/resolve"),
    ("POST", "/agent/api/handoffs/{ticket_id}/close"),
    ("GET", "/agent/api/approvals"),
    ("POST", "/agent/api/approvals/{approval_id}/approve"),
    ("POST", "/agent/api/approvals/{approval_id}/deny"),
}


def _console_routes() -> list[tuple[str, str]]:
    """(method, path) of every ``/agent/api`` route of an app (building one does no I/O)."""
    settings = load_gateway_settings(_env_file=None, DATABASE_URL="sqlite://", REDIS_URL=None, GATEWAY_SECRET=SECRET)
    app = create_app(settings)
    found = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/agent/api")
        for method in route.methods or ()
        if method != "HEAD"
    }
    return sorted(found)


ROUTES = _console_routes()
PROTECTED = [r for r in ROUTES if r != ("POST", "/agent/api/login")]
STATE_CHANGING = [r for r in PROTECTED if r[0] != "GET"]
READS = [r for r in PROTECTED if r[0] == "GET"]


def _ids(routes: list[tuple[str, str]]) -> list[str]:
    return [f"{method} {path}" for method, path in routes]


def concrete(path: str, ticket_id: int = 999_999) -> str:
    return re.sub(r"\{[^}]+\}", str(ticket_id), path)


async def call(
    client: httpx.AsyncClient, method: str, path: str, *, headers: dict[str, Any] | None = None
) -> httpx.Response:
    if method == "GET":
        return await client.get(path, headers=headers)
    return await client.post(path, json={"text": "hello"}, headers=headers)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
def settings(settings_for: Callable[..., GatewayAppSettings]) -> GatewayAppSettings:
    return settings_for(AGENT_LOGIN_RATE_LIMIT="100/minute", AGENT_SESSION_TTL_SECONDS=TTL)


@pytest.fixture
def db(settings: GatewayAppSettings, fake: FakeRasa) -> DeskDb:
    database = desk_db(settings)
    database.add_agent()
    database.add_agent(email=LEK, name="Lek")
    fake.on_handoff = database.opener()
    return database


@pytest.fixture
def app(settings: GatewayAppSettings, client_for: Any, db: DeskDb) -> Any:
    return client_for(settings).app


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """New clients of the same app (each its own cookie jar; ``address``: the client's IP)."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str = "127.0.0.1") -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)), base_url=BASE)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def agent(browser: Callable[..., httpx.AsyncClient]) -> tuple[httpx.AsyncClient, str]:
    """Ploy, logged in: the client (with the cookie) and the CSRF token."""
    client = browser()
    return client, await login(client)


def test_the_route_list_is_the_documented_one() -> None:
    assert set(ROUTES) == DOCUMENTED
    assert len(STATE_CHANGING) == 7 and len(READS) == 4


# --- no session, or not one of ours --------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=_ids(PROTECTED))
async def test_no_cookie_is_not_authenticated(
    browser: Callable[..., httpx.AsyncClient], method: str, path: str
) -> None:
    response = await call(browser(), method, concrete(path))
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": {"code": "not_authenticated", "message": "Please log in to the agent console.", "retry_after": None}
    }


@pytest.mark.parametrize(
    "value",
    [
        b"garbage",
        b"",
        secrets.token_urlsafe(32).encode(),  # the right shape, nobody's
        b"a" * 201,  # longer than any token of ours
        b"a" * 4000,
        "t\u00f6ken-\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35".encode(),  # not ASCII
        b"\xff\xfe\x00garbage",
    ],
    ids=["garbage", "empty", "random", "201_chars", "4000_chars", "non_ascii", "bytes"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/agent/api/me"), ("POST", "/agent/api/logout")])
async def test_a_bad_cookie_is_not_authenticated(
    browser: Callable[..., httpx.AsyncClient],
    agent: tuple[httpx.AsyncClient, str],
    value: bytes,
    method: str,
    path: str,
) -> None:
    _, token = agent  # an agent is logged in meanwhile: no effect
    response = await call(browser(), method, path, headers={"Cookie": b"tandem_agent=" + value, CSRF_HEADER: token})
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


async def test_a_visitors_session_token_is_never_an_agent_session(
    browser: Callable[..., httpx.AsyncClient], agent: tuple[httpx.AsyncClient, str]
) -> None:
    visitor = browser()
    bearer = await visitor.post("/api/v1/session", json={"mode": "bearer"})
    assert bearer.status_code == 200, bearer.text
    bearer_token = bearer.json()["token"]
    assert bearer_token
    cookie_token = await start_session(visitor)  # the widget's cookie mode: tandem_session
    assert cookie_token and cookie_token != "None"
    for token in (bearer_token, cookie_token):
        for method, path in [("GET", "/agent/api/me"), ("GET", "/agent/api/handoffs")]:
            response = await call(browser(), method, path, headers={"Cookie": f"{AGENT_COOKIE}={token}"})
            assert (response.status_code, error_code(response)) == (401, "not_authenticated")
        # Bearer-style, the way a visitor's front end sends it, neither.
        response = await browser().get("/agent/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    # The visitor's own client, its tandem_session cookie in the jar, is no agent either.
    assert visitor.cookies.get(COOKIE_NAME)
    for method, path in PROTECTED:
        response = await call(visitor, method, concrete(path))
        assert (response.status_code, error_code(response)) == (401, "not_authenticated"), (method, path)


# --- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), STATE_CHANGING, ids=_ids(STATE_CHANGING))
async def test_a_state_changing_call_without_the_csrf_token_is_refused(
    agent: tuple[httpx.AsyncClient, str], db: DeskDb, method: str, path: str
) -> None:
    client, _ = agent
    ticket_id = db.open_ticket("web-" + "ab" * 16)
    response = await call(client, method, concrete(path, ticket_id))
    assert response.status_code == 403, response.text
    assert error_code(response) == "csrf_failed"
    # Nothing happened: the ticket is still queued and the session still valid (logout too was refused).
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "queued"
    assert (await client.get("/agent/api/me")).status_code == 200


@pytest.mark.parametrize("kind", ["another_agents", "random", "empty", "upper_case", "the_session_token"])
async def test_a_wrong_csrf_token_is_refused(
    agent: tuple[httpx.AsyncClient, str], browser: Callable[..., httpx.AsyncClient], db: DeskDb, kind: str
) -> None:
    client, token = agent
    ticket_id = db.open_ticket("web-" + "cd" * 16)
    wrong = {
        "another_agents": await login(browser(), LEK),
        "random": secrets.token_hex(32),
        "empty": "",
        "upper_case": token.upper(),
        "the_session_token": str(client.cookies.get(AGENT_COOKIE)),
    }[kind]
    assert wrong != token
    refused = await client.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=csrf(wrong))
    assert (refused.status_code, error_code(refused)) == (403, "csrf_failed")
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "queued"
    # The right one works.
    claimed = await client.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=csrf(token))
    assert claimed.status_code == 200, claimed.text


async def test_the_get_routes_need_no_csrf_token(agent: tuple[httpx.AsyncClient, str], db: DeskDb) -> None:
    client, token = agent
    ticket_id = db.open_ticket("web-" + "ef" * 16)
    for method, path in READS:
        response = await client.get(concrete(path, ticket_id))
        assert response.status_code == 200, (path, response.text)
    me = (await client.get("/agent/api/me")).json()
    assert me["csrf_token"] == token  # the same token after a reload
    assert me["agent"] == {"id": me["agent"]["id"], "email": PLOY, "display_name": "Ploy", "role": "agent"}


# --- logins -------------------------------------------------------------------------------------


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    browser: Callable[..., httpx.AsyncClient],
) -> None:
    client = browser()
    answers = [
        await client.post("/agent/api/login", json={"email": PLOY, "password": "not the password at all"}),
        await client.post("/agent/api/login", json={"email": "nobody@andaman.example", "password": PASSWORD}),
        await client.post("/agent/api/login", json={"email": "not an e-mail", "password": PASSWORD}),
        await client.post("/agent/api/login", json={"email": PLOY, "password": "short"}),
    ]
    for response in answers:
        assert response.status_code == 401
        assert AGENT_COOKIE not in response.headers.get("set-cookie", "")
    bodies = [response.json() for response in answers]
    assert bodies == [bodies[0]] * len(bodies)
    assert bodies[0] == {
        "error": {"code": "invalid_credentials", "message": "Wrong e-mail or password.", "retry_after": None}
    }
    assert not client.cookies.get(AGENT_COOKIE)


async def _attempt(client: httpx.AsyncClient, email: str, password: str = "wrong password, guessed") -> httpx.Response:
    return await client.post("/agent/api/login", json={"email": email, "password": password})


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()["error"]
    assert body["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert body["retry_after"] == retry_after


async def test_logins_are_limited_per_address_and_per_email(
    settings_for: Callable[..., GatewayAppSettings], client_for: Any, fake: FakeRasa
) -> None:
    settings = settings_for(AGENT_LOGIN_RATE_LIMIT="3/minute")
    database = desk_db(settings)
    database.add_agent()
    database.add_agent(email=LEK, name="Lek")
    app = client_for(settings).app

    def at(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)), base_url=BASE)

    async with at("198.51.100.1") as first, at("198.51.100.2") as second, at("198.51.100.3") as third:
        for _ in range(3):
            assert (await _attempt(first, PLOY)).status_code == 401
        # The 4th attempt from that address: refused, even with the right password.
        _assert_limited(await _attempt(first, PLOY))
        _assert_limited(await _attempt(first, PLOY, PASSWORD))
        # The address limit: another e-mail from the same address is refused too.
        _assert_limited(await _attempt(first, LEK, PASSWORD))
        # The e-mail limit: Ploy's e-mail from a fresh address is refused (3 attempts were counted for it)...
        _assert_limited(await _attempt(second, PLOY, PASSWORD))
        # ...while that address may still log in as someone else, and so may a third address.
        assert (await _attempt(second, LEK, PASSWORD)).status_code == 200
        assert (await _attempt(third, LEK, PASSWORD)).status_code == 200
        # The e-mail's key is the normalised address: other spellings share it.
        _assert_limited(await _attempt(third, "  PLOY@Andaman.Example ", PASSWORD))


async def test_the_email_limit_holds_across_many_addresses(
    settings_for: Callable[..., GatewayAppSettings], client_for: Any, fake: FakeRasa
) -> None:
    """A distributed guess at one account: each address stays under its limit, the e-mail's is hit."""
    settings = settings_for(AGENT_LOGIN_RATE_LIMIT="3/minute")
    desk_db(settings).add_agent()
    app = client_for(settings).app
    answers = []
    for n in range(5):
        transport = httpx.ASGITransport(app=app, client=(f"203.0.113.{n + 1}", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            answers.append(await _attempt(client, PLOY))
    assert [r.status_code for r in answers] == [401, 401, 401, 429, 429]
    _assert_limited(answers[3])


# --- the cookie ---------------------------------------------------------------------------------


def _agent_cookie(response: httpx.Response) -> Any:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{AGENT_COOKIE}=")]
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return jar[AGENT_COOKIE], header


async def test_the_cookies_attributes(agent: tuple[httpx.AsyncClient, str], browser: Any) -> None:
    response = await browser().post("/agent/api/login", json={"email": PLOY, "password": PASSWORD})
    assert response.status_code == 200
    morsel, header = _agent_cookie(response)
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/agent/"
    assert morsel["max-age"] == str(TTL)
    assert not morsel["secure"]  # GATEWAY_COOKIE_SECURE is false by default
    assert "domain" not in header.lower()
    # The cookie is a random token, not the CSRF token nor anything signed by GATEWAY_SECRET.
    assert len(morsel.value) >= 43 and morsel.value != response.json()["csrf_token"]
    assert response.json()["agent"]["email"] == PLOY


async def test_the_cookie_is_secure_when_gateway_cookie_secure(
    settings_for: Callable[..., GatewayAppSettings], client_for: Any, fake: FakeRasa
) -> None:
    settings = settings_for(GATEWAY_COOKIE_SECURE=True, AGENT_SESSION_TTL_SECONDS=600)
    desk_db(settings).add_agent()
    client = client_for(settings)
    response = await client.post("/agent/api/login", json={"email": PLOY, "password": PASSWORD})
    assert response.status_code == 200
    morsel, _ = _agent_cookie(response)
    assert morsel["secure"] is True
    assert (morsel["httponly"], morsel["samesite"].lower(), morsel["path"], morsel["max-age"]) == (
        True,
        "strict",
        "/agent/",
        "600",
    )


# --- the end of a session -----------------------------------------------------------------------


async def test_logout_revokes_the_session_on_the_server(
    agent: tuple[httpx.AsyncClient, str], browser: Callable[..., httpx.AsyncClient], db: DeskDb
) -> None:
    client, token = agent
    kept = str(client.cookies.get(AGENT_COOKIE))
    out = await client.post("/agent/api/logout", headers=csrf(token))
    assert out.status_code == 204 and out.content == b""
    morsel, _ = _agent_cookie(out)
    assert morsel.value == "" or morsel["max-age"] == "0"  # the browser is told to forget it
    # A client that kept the cookie anyway: refused, everywhere.
    replay = browser()
    for method, path in PROTECTED:
        response = await call(
            replay, method, concrete(path), headers={"Cookie": f"{AGENT_COOKIE}={kept}", **csrf(token)}
        )
        assert (response.status_code, error_code(response)) == (401, "not_authenticated"), (method, path)
    with db.sessions() as session:
        row = session.scalars(select(AgentSession).where(AgentSession.token_hash == agents.hash_token(kept))).one()
        assert row.revoked_at is not None


async def test_an_expired_session_is_not_authenticated(agent: tuple[httpx.AsyncClient, str], app: Any) -> None:
    client, _ = agent
    desk = app.state.desk
    almost = utc_now() + timedelta(seconds=TTL - 60)
    desk.clock = lambda: almost
    assert (await client.get("/agent/api/me")).status_code == 200
    later = utc_now() + timedelta(seconds=TTL + 1)
    desk.clock = lambda: later
    response = await client.get("/agent/api/me")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")


async def test_a_disabled_agents_session_is_not_authenticated(
    agent: tuple[httpx.AsyncClient, str], browser: Callable[..., httpx.AsyncClient], db: DeskDb
) -> None:
    client, _ = agent
    lek = browser()
    await login(lek, LEK)
    with db.sessions.begin() as session:
        assert agents.set_active(session, email=PLOY, active=False)
    response = await client.get("/agent/api/me")
    assert (response.status_code, error_code(response)) == (401, "not_authenticated")
    assert (await lek.get("/agent/api/me")).status_code == 200  # the others stay logged in
    # A disabled agent cannot log in either (the same answer as a wrong password).
    refused = await browser().post("/agent/api/login", json={"email": PLOY, "password": PASSWORD})
    assert (refused.status_code, error_code(refused)) == (401, "invalid_credentials")
    # Enabled again: the old session stays dead, a new login works.
    with db.sessions.begin() as session:
        assert agents.set_active(session, email=PLOY, active=True)
    assert (await client.get("/agent/api/me")).status_code == 401
    assert (await browser().post("/agent/api/login", json={"email": PLOY, "password": PASSWORD})).status_code == 200


# --- secrets at rest and in the logs ------------------------------------------------------------


async def test_the_password_is_never_logged_nor_stored(
    browser: Callable[..., httpx.AsyncClient],
    db: DeskDb,
    settings: GatewayAppSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "an entirely wrong passphrase 4711"
    client = browser()
    with caplog.at_level(logging.DEBUG):
        assert (await client.post("/agent/api/login", json={"email": PLOY, "password": wrong})).status_code == 401
        assert (
            await client.post("/agent/api/login", json={"email": "x@andaman.example", "password": wrong})
        ).status_code == 401
        csrf_token = await login(client)
        session_token = str(client.cookies.get(AGENT_COOKIE))
        assert (await client.get("/agent/api/me")).status_code == 200
        assert (await client.post("/agent/api/logout", headers=csrf(csrf_token))).status_code == 204
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for record in caplog.records:
        everything = f"{record.getMessage()} {record.__dict__!r}"
        for secret in (PASSWORD, wrong, session_token, csrf_token):
            assert secret not in everything, record.getMessage()

    with db.sessions() as session:
        hashes = session.scalars(select(Agent.password_hash)).all()
        stored_tokens = session.scalars(select(AgentSession.token_hash)).all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert all(PASSWORD not in h for h in hashes)
    assert stored_tokens and all(re.fullmatch(r"[0-9a-f]{64}", t) for t in stored_tokens)
    # The bytes of the database (and its journal, if any) hold neither the password nor a token.
    path = Path(settings.database.database_url.removeprefix("sqlite:///"))
    for file in [path, *path.parent.glob(path.name + "-*")]:
        data = file.read_bytes()
        for secret in (PASSWORD, wrong, session_token):
            assert secret.encode() not in data, file
    assert hashlib.sha256(session_token.encode()).hexdigest() in stored_tokens  # only its SHA-256


# --- the description ----------------------------------------------------------------------------


async def test_the_openapi_description_documents_every_console_route(browser: Callable[..., httpx.AsyncClient]) -> None:
    response = await browser().get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    documented = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/agent/api")
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == DOCUMENTED == set(ROUTES)
    for method, path in DOCUMENTED:
        operation = paths[path][method.lower()]
        assert operation.get("summary"), (method, path)
        assert "agent console" in operation.get("tags", [])
        if (method, path) != ("POST", "/agent/api/login"):
            assert "401" in operation["responses"], (method, path)
        if method == "POST" and path != "/agent/api/login":
            assert "403" in operation["responses"], (method, path)
    login_op = paths["/agent/api/login"]["post"]
    assert "429" in login_op["responses"]
    schema = login_op["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"email", "password"}
    assert paths["/agent/api/approvals"]["get"]["responses"]["200"]
