# ruff: noqa: F811  (the gateway suite's fixtures are imported by name, then requested as arguments)
"""Issue 10, fuzzing beyond the message endpoint: the session endpoints and the history.

Hypothesis draws bodies, content types, origins and credentials (random strings, truncated and
tampered tokens, tokens signed with another secret, expired and revoked ones, in a cookie or an
``Authorization`` header with any scheme) for ``POST /api/v1/session``, ``DELETE /api/v1/session``
and ``GET /api/v1/history``: never a 500, always a documented status, every error in the one shape.
The setup is tests/gateway/test_fuzz.py's (a TestClient on the app, the fake Rasa over real HTTP).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.gateway import create_app
from tandem.gateway.sessions import COOKIE_NAME, SessionCodec
from tests.gateway.conftest import SECRET, fake, fake_server, fake_url, settings_for  # noqa: F401 (fixtures)
from tests.gateway.test_fuzz import json_values

ALLOWED = {200, 204, 400, 401, 403, 413, 415}
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@dataclass
class Pool:
    """Credentials of every kind, made once per test (valid ones come from the app itself)."""

    valid: list[str]
    revoked: list[str]
    expired: str
    foreign: str

    def variants(self) -> list[str]:
        token = self.valid[0]
        version, sid, issued, signature = token.split(".")
        return [
            *self.valid,
            *self.revoked,
            self.expired,
            self.foreign,
            token[:-1],
            token[: len(token) // 2],
            f"{version}.{sid}.{issued}.{signature[::-1]}",
            f"{version}.{sid}.{int(issued) + 1}.{signature}",
            f"v2.{sid}.{issued}.{signature}",
            f"{version}.{sid}.{issued}.{signature}.{signature}",
            f"{version}.{sid}.-{issued}.{signature}",
            f"{version}.{sid}.{'9' * 5000}.{signature}",
            f"{version}.{sid}.{issued}.",
            "...",
        ]


@pytest.fixture
def http(settings_for: Any, fake: Any) -> Iterator[tuple[TestClient, Pool]]:
    app_settings = settings_for(
        GATEWAY_RATE_LIMIT_SESSION="100000/minute",
        GATEWAY_RATE_LIMIT_ADDRESS="100000/minute",
        GATEWAY_RATE_LIMIT_NEW_SESSION="100000/minute",
    )
    with TestClient(create_app(app_settings), base_url="http://gateway.test") as client:

        def bearer() -> str:
            response = client.post("/api/v1/session", json={"mode": "bearer"})
            assert response.status_code == 200
            return str(response.json()["token"])

        valid = [bearer() for _ in range(3)]
        revoked = [bearer() for _ in range(2)]
        for token in revoked:
            assert client.delete("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).status_code == 204
        codec = SessionCodec(
            SECRET.encode(), ttl_seconds=app_settings.gateway.gateway_session_ttl_seconds, clock=lambda: 1e9
        )
        foreign = SessionCodec(b"an attacker's own secret, long enough", ttl_seconds=3600).issue()[0]
        yield client, Pool(valid=valid, revoked=revoked, expired=codec.issue()[0], foreign=foreign)


def _credentials(pool: Pool) -> st.SearchStrategy[dict[str, str]]:
    token = st.sampled_from(pool.variants()) | HEADER_TEXT
    scheme = st.sampled_from(["Bearer ", "bearer ", "Basic ", "", "Bearer  ", "Token "]) | HEADER_TEXT
    return st.one_of(
        st.just({}),
        st.builds(lambda t: {"Cookie": f"{COOKIE_NAME}={t}"}, token),
        st.builds(lambda s, t: {"Authorization": s + t}, scheme, token),
        st.builds(lambda s, t, c: {"Authorization": s + t, "Cookie": f"{COOKIE_NAME}={c}"}, scheme, token, token),
    )


ORIGINS = st.one_of(
    st.just({}),
    st.sampled_from(["http://gateway.test", "https://gateway.test", "https://evil.example", "null", ""]).map(
        lambda o: {"Origin": o}
    ),
    HEADER_TEXT.map(lambda o: {"Origin": o}),
)
SESSION_BODIES = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"new": json_values | st.booleans(), "mode": st.sampled_from(["cookie", "bearer"]) | json_values}
    ),
    json_values,
)


def _check(response: Any) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text)
    if response.status_code == 204:
        assert response.content == b""
        return
    data = response.json()
    if response.status_code == 200:
        assert isinstance(data, dict) and "error" not in data
    else:
        assert set(data) == {"error"} and set(data["error"]) == {"code", "message", "retry_after"}
        assert isinstance(data["error"]["code"], str) and data["error"]["message"]


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_post_session_never_500(http: tuple[TestClient, Pool], data: st.DataObject) -> None:
    client, pool = http
    headers = {**data.draw(_credentials(pool)), **data.draw(ORIGINS)}
    if data.draw(st.booleans()):
        content = json.dumps(data.draw(SESSION_BODIES)).encode()
    else:
        content = data.draw(st.binary(max_size=200))
    headers["Content-Type"] = data.draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])
    )
    client.cookies.clear()
    _check(client.post("/api/v1/session", content=content, headers=headers))


@FUZZ
@given(data=st.data())
def test_delete_session_never_500(http: tuple[TestClient, Pool], data: st.DataObject) -> None:
    client, pool = http
    headers = {**data.draw(_credentials(pool)), **data.draw(ORIGINS)}
    client.cookies.clear()
    _check(client.request("DELETE", "/api/v1/session", content=data.draw(st.binary(max_size=50)), headers=headers))


@FUZZ
@given(data=st.data())
def test_history_never_500(http: tuple[TestClient, Pool], data: st.DataObject) -> None:
    client, pool = http
    headers = {**data.draw(_credentials(pool)), **data.draw(ORIGINS)}
    client.cookies.clear()
    response = client.get("/api/v1/history", headers=headers)
    _check(response)
    if response.status_code == 200:
        assert isinstance(response.json()["messages"], list)


def test_revoked_and_forged_credentials_are_refused_in_one_shape(http: tuple[TestClient, Pool]) -> None:
    """The fuzzed pool's known-bad members, checked one by one: 401 invalid_session everywhere."""
    client, pool = http
    bad = [t for t in pool.variants() if t not in pool.valid]
    for token in bad:
        for headers in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"{COOKIE_NAME}={token}"}):
            client.cookies.clear()
            response = client.get("/api/v1/history", headers=headers)
            assert response.status_code == 401, (token, response.text)
            assert response.json()["error"]["code"] == "invalid_session"
    for token in pool.valid:
        assert client.get("/api/v1/history", headers={"Authorization": f"Bearer {token}"}).status_code == 200
