"""Property-based: whatever a client sends to the message endpoint, the gateway never answers 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.gateway import create_app

from .fakes import CABIN_BUTTONS

ALLOWED = {200, 400, 401, 403, 413, 415, 429}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
message_bodies = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=1200)}),
    st.fixed_dictionaries({"payload": st.sampled_from([b["payload"] for b in CABIN_BUTTONS]) | st.text(max_size=60)}),
    st.dictionaries(st.sampled_from(["text", "payload", "sender", "metadata"]), json_values, max_size=3),
    json_values,
)


@pytest.fixture
def http(settings_for: Any, fake: Any) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings_for(GATEWAY_RATE_LIMIT_SESSION="100000/minute")), base_url="http://gateway.test"
    ) as client:
        assert client.post("/api/v1/session", json={}).status_code == 200
        client.post("/api/v1/messages", json={"text": "book"})  # so that some payloads are offered
        yield client


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=message_bodies)
def test_any_json_body_gets_a_documented_answer(http: TestClient, body: Any) -> None:
    response = http.post("/api/v1/messages", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code in ALLOWED, (response.status_code, response.text)
    data = response.json()
    if response.status_code == 200:
        assert isinstance(data["messages"], list)
    else:
        assert set(data["error"]) == {"code", "message", "retry_after"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=latin-1"]),
)
def test_any_bytes_get_a_documented_answer(http: TestClient, raw: bytes, content_type: str) -> None:
    response = http.post("/api/v1/messages", content=raw, headers={"Content-Type": content_type})
    assert response.status_code in ALLOWED, (response.status_code, response.text)
    assert "error" in response.json() or response.status_code == 200
