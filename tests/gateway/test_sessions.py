"""Sessions cannot be forged, tampered with, swapped or chosen by the client."""

from __future__ import annotations

from typing import Any

import httpx

from tandem.gateway.sessions import COOKIE_NAME, SessionCodec

from .conftest import SECRET, say, start_session
from .fakes import FakeRasa

KEY = SECRET.encode()


def test_a_token_round_trips_and_derives_a_stable_conversation_id() -> None:
    codec = SessionCodec(KEY, ttl_seconds=3600)
    token, session = codec.issue()
    again = codec.verify(token)
    assert again == session
    assert session.conversation_id.startswith("web-") and session.session_id not in session.conversation_id
    assert codec.issue()[1].conversation_id != session.conversation_id


def test_tampered_forged_and_foreign_tokens_are_refused() -> None:
    codec = SessionCodec(KEY, ttl_seconds=3600)
    token, _ = codec.issue()
    version, sid, issued, signature = token.split(".")
    other_sid = codec.issue()[1].session_id
    for bad in (
        f"{version}.{other_sid}.{issued}.{signature}",  # swap the session id, keep the signature
        f"{version}.{sid}.{int(issued) + 3600}.{signature}",  # extend the issue time
        f"{version}.{sid}.{issued}.{signature[:-2]}AA",  # touch the signature
        f"v2.{sid}.{issued}.{signature}",
        token + ".extra",
        "",
        "garbage",
        "é" * 50,
        "v1." * 100,
    ):
        assert codec.verify(bad) is None, bad
    assert SessionCodec(b"another-secret-of-sufficient-length", ttl_seconds=3600).verify(token) is None


def test_tokens_expire() -> None:
    now = [1_000_000.0]
    codec = SessionCodec(KEY, ttl_seconds=600, clock=lambda: now[0])
    token, _ = codec.issue()
    now[0] += 599
    assert codec.verify(token) is not None
    now[0] += 2
    assert codec.verify(token) is None


async def test_the_cookie_is_httponly_and_scoped_to_the_api(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/session", json={})
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "Path=/api/v1" in cookie
    assert "samesite=lax" in cookie.lower()
    assert response.json()["created"] is True and response.json()["token"] is None
    # Asking again keeps the session (the widget does this on every page load).
    again = await client.post("/api/v1/session", json={})
    assert again.json()["created"] is False and "set-cookie" not in again.headers


async def test_the_conversation_id_is_derived_on_the_server(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    token = await start_session(client)
    assert (await say(client, text="hello")).status_code == 200
    expected = SessionCodec(KEY, ttl_seconds=3600).verify(token)
    assert expected is not None
    assert fake.requests[-1]["body"]["sender"] == expected.conversation_id
    # A client cannot name the conversation: extra fields are refused, not ignored.
    for field in ("sender", "conversation_id", "sender_id"):
        response = await say(client, text="hello", **{field: "web-someone-else"})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_shape"
    assert {r["body"]["sender"] for r in fake.requests} == {expected.conversation_id}


async def test_no_session_and_forged_sessions_get_401(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    response = await say(client, text="hello")
    assert response.status_code == 401 and response.json()["error"]["code"] == "no_session"
    for forged in ("v1.AAAAAAAAAAAAAAAAAAAAAA.1700000000.c2lnbmF0dXJl", "nonsense"):
        client.cookies.set(COOKIE_NAME, forged, domain="gateway.test", path="/api/v1")
        response = await say(client, text="hello")
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_session"
        assert (await client.get("/api/v1/history")).status_code == 401
    foreign, _ = SessionCodec(b"an attacker's own secret, long enough", ttl_seconds=3600).issue()
    client.cookies.set(COOKIE_NAME, foreign, domain="gateway.test", path="/api/v1")
    assert (await say(client, text="hello")).status_code == 401
    assert fake.requests == []


async def test_two_visitors_never_see_each_other(client_for: Any, settings_for: Any, fake: FakeRasa) -> None:
    settings = settings_for()
    async with client_for(settings) as alice, client_for(settings) as bob:
        await start_session(alice)
        await start_session(bob)
        assert (await say(alice, text="my secret is 42")).status_code == 200
        assert (await say(bob, text="hi")).status_code == 200
        alice_history = (await alice.get("/api/v1/history")).json()["messages"]
        bob_history = (await bob.get("/api/v1/history")).json()["messages"]
        assert [m["text"] for m in alice_history if m["role"] == "user"] == ["my secret is 42"]
        assert [m["text"] for m in bob_history if m["role"] == "user"] == ["hi"]
        assert len({r["body"]["sender"] for r in fake.requests}) == 2


async def test_new_conversation_gets_a_new_conversation_id(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    first = await start_session(client)
    await say(client, text="one")
    response = await client.post("/api/v1/session", json={"new": True})
    assert response.json()["created"] is True
    assert client.cookies.get(COOKIE_NAME) != first
    await say(client, text="two")
    assert fake.requests[0]["body"]["sender"] != fake.requests[1]["body"]["sender"]
    history = (await client.get("/api/v1/history")).json()["messages"]
    assert [m["text"] for m in history if m["role"] == "user"] == ["two"]


async def test_bearer_tokens_for_other_front_ends(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    response = await client.post("/api/v1/session", json={"mode": "bearer"})
    token = response.json()["token"]
    assert token and "set-cookie" not in response.headers
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/v1/messages", json={"text": "hello"}, headers=headers)).status_code == 200
    history = await client.get("/api/v1/history", headers=headers)
    assert [m["role"] for m in history.json()["messages"]] == ["user", "bot"]
    bad = await client.post(
        "/api/v1/messages", json={"text": "hello"}, headers={"Authorization": "Bearer " + token[:-3]}
    )
    assert bad.status_code == 401
    basic = await client.post("/api/v1/messages", json={"text": "hello"}, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


async def test_cookie_calls_from_other_origins_are_refused(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    response = await client.post("/api/v1/messages", json={"text": "hello"}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    same = await client.post("/api/v1/messages", json={"text": "hello"}, headers={"Origin": "http://gateway.test"})
    assert same.status_code == 200
    assert len(fake.requests) == 1


async def test_an_invalid_cookie_is_replaced_by_a_new_session(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    client.cookies.set(COOKIE_NAME, "v1.forged.1700000000.nothing", domain="gateway.test", path="/api/v1")
    response = await client.post("/api/v1/session", json={})
    assert response.status_code == 200 and response.json()["created"] is True
    assert client.cookies.get(COOKIE_NAME) != "v1.forged.1700000000.nothing"
    assert (await say(client, text="hello")).status_code == 200


async def test_the_own_host_behind_a_tls_proxy_is_same_origin(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    response = await client.post("/api/v1/messages", json={"text": "hi"}, headers={"Origin": "https://gateway.test"})
    assert response.status_code == 200
    lookalike = await client.post(
        "/api/v1/messages", json={"text": "hi"}, headers={"Origin": "https://gateway.test.evil.example"}
    )
    assert lookalike.status_code == 403
