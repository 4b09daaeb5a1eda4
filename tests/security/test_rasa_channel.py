"""Finding 1 (Rasa's side): its REST channel ran a turn for anyone who reached the port, in any
conversation (``sender``) and with any ``metadata`` (which the action server now uses for limits
per client). Rasa now listens only to the gateway's channel (tandem_rasa/channel.py): a bearer
token, a strict body, and metadata reduced to the keys the gateway sends."""

from __future__ import annotations

import httpx
import pytest

from tests.stack import Stack, new_sender

pytestmark = pytest.mark.e2e

# What Rasa itself adds to every message's metadata.
RASA_OWN_METADATA = {"model_id", "assistant_id"}


def test_the_rest_channel_is_gone(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.rasa_url}/webhooks/rest/webhook", json={"sender": new_sender(), "message": "hi"}, timeout=30
    )
    assert response.status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer", "Basic xyz", "Bearer {token}x", "bearer {token}"])
def test_the_gateway_channel_needs_the_token(stack: Stack, header: str | None) -> None:
    sender = new_sender()
    headers = {"Authorization": header.format(token=stack.token)} if header else {}
    response = httpx.post(
        f"{stack.rasa_url}/webhooks/gateway/webhook",
        json={"sender": sender, "message": "hello"},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 401
    # No turn ran: the conversation has no user event.
    events = stack.tracker(sender)["events"]
    assert not [e for e in events if e.get("event") == "user"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"sender": 5, "message": "hi"}', 400),
        (b'{"sender": "", "message": "hi"}', 400),
        (b'{"sender": "x", "message": null}', 400),
        (b'{"sender": "x", "message": 1' + b"0" * 5000 + b"}", 400),  # Python's int-string limit
        (b'{"sender": "x", "message": "' + b"a" * 30_000 + b'"}', 400),
        (b'{"sender": "e2e-bad-body", "message": "' + b"9" * 5000 + b'"}', 200),  # long but a turn
    ],
)
def test_a_bad_body_is_a_400_not_a_turn(stack: Stack, body: bytes, status: int) -> None:
    response = httpx.post(
        f"{stack.rasa_url}/webhooks/gateway/webhook",
        content=body,
        headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == status, response.text


def test_only_the_gateways_metadata_reaches_the_tracker(stack: Stack) -> None:
    sender = new_sender()
    stack.say(
        sender,
        "hello",
        metadata={
            "channel": "website",
            "client": "c" * 32,
            "correlation_id": "turn-1",
            "role": "agent",
            "client_nested": {"x": 1},
        },
    )
    user = [e for e in stack.tracker(sender)["events"] if e.get("event") == "user"][-1]
    given = {k: v for k, v in user["metadata"].items() if k not in RASA_OWN_METADATA}
    assert given == {"channel": "website", "client": "c" * 32, "correlation_id": "turn-1"}
    assert user["input_channel"] == "website"
    # A value that is not a short printable string is dropped.
    other = new_sender()
    stack.say(other, "hello", metadata={"channel": "pigeon", "client": "x" * 65, "correlation_id": "a\nb"})
    user = [e for e in stack.tracker(other)["events"] if e.get("event") == "user"][-1]
    assert not {k for k in user.get("metadata") or {} if k not in RASA_OWN_METADATA}


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("traceparent", "kept"),
    [
        (TRACEPARENT, True),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),  # an all-zero trace id
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),  # an all-zero span id
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),  # another version
        (TRACEPARENT.upper(), False),
        (TRACEPARENT + "\n", False),
        ({"nested": TRACEPARENT}, False),
    ],
)
def test_only_a_well_formed_trace_context_reaches_the_tracker(stack: Stack, traceparent: object, kept: bool) -> None:
    """The gateway's W3C trace context is kept for the action server (Rasa passes the metadata on
    unchanged); a malformed one is dropped, and its tracestate with it."""
    sender = new_sender()
    given = {"channel": "website", "correlation_id": "turn-t", "traceparent": traceparent, "tracestate": "rojo=1"}
    stack.say(sender, "hello", metadata=given)
    user = [e for e in stack.tracker(sender)["events"] if e.get("event") == "user"][-1]
    stored = {k: v for k, v in user["metadata"].items() if k not in RASA_OWN_METADATA}
    expected = {"channel": "website", "correlation_id": "turn-t"}
    if kept:
        expected |= {"traceparent": TRACEPARENT, "tracestate": "rojo=1"}
    assert stored == expected
