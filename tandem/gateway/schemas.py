"""The API's JSON shapes, for the OpenAPI description (``/openapi.json``) and the responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

API = "/api/v1"
"""The prefix of the versioned endpoints (also the session cookie's path)."""

CLIENT_MESSAGE_ID = Field(
    default=None,
    pattern=r"^[A-Za-z0-9_-]{8,64}$",
    description="Optional, chosen by the client per message and sent again unchanged with each retry of it: "
    "a retry is answered with the first send's answer (same turn_id) instead of reaching the bot twice; "
    "while the first is still being answered the retry waits for it (at most RASA_TIMEOUT_SECONDS), then "
    "409 duplicate_in_flight. Remembered 10 minutes per conversation; reused for another message: 409 "
    "client_message_id_reused.",
)


class TextIn(BaseModel):
    """What the visitor typed."""

    text: str = Field(description="1 to GATEWAY_MAX_MESSAGE_CHARS characters; may not start with '/'.")
    client_message_id: str | None = CLIENT_MESSAGE_ID


class PayloadIn(BaseModel):
    """A click on a button: its payload, which must be one the bot offered in its last turn."""

    payload: str = Field(description='For example /inform{"cabin": "economy"}.')
    client_message_id: str | None = CLIENT_MESSAGE_ID


class SessionIn(BaseModel):
    """Optional body of POST /api/v1/session."""

    new: bool = Field(
        default=False,
        description="Start a new conversation even when a session exists; the presented session is revoked.",
    )
    mode: Literal["cookie", "bearer"] = Field(
        default="cookie",
        description="cookie: an HttpOnly cookie (the widget). bearer: the token in the body, for other front ends.",
    )


class Button(BaseModel):
    title: str
    payload: str


class Message(BaseModel):
    """One message of the conversation."""

    id: str
    role: Literal["bot", "user"]
    text: str | None = Field(description="Plain text with light markdown; never HTML.")
    buttons: list[Button]
    image: str | None = Field(description="An image URL.")
    custom: dict[str, Any] | None = Field(
        description='Structured payload; {"handoff": {"state": "pending"|"agent_joined"|"ended", ...}} marks '
        "the human handoff."
    )
    payload: str | None = Field(
        default=None, description="History only: the payload of the button a visitor's message came from."
    )
    timestamp: str = Field(description="ISO 8601, UTC.")


class TurnOut(BaseModel):
    turn_id: str = Field(description="Random; also the X-Correlation-Id header (never the conversation id).")
    messages: list[Message]


class HistoryOut(BaseModel):
    messages: list[Message]


class SessionOut(BaseModel):
    created: bool = Field(description="False when the existing session was kept.")
    expires_at: str
    token: str | None = Field(default=None, description="Only in bearer mode: send it as 'Authorization: Bearer'.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, for programs: message_too_long, rate_limited, upstream_timeout, ...")
    message: str = Field(description="For people; shown by the widget.")
    retry_after: int | None = Field(default=None, description="Seconds, with 429 (also in Retry-After).")


class ErrorOut(BaseModel):
    error: ErrorBody


class Check(BaseModel):
    ok: bool
    latency_ms: float | None = None
    reason: str | None = None


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Check] | None = Field(
        default=None,
        description="Only with 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>' when that token is set "
        "(always in production); without it the status code and status only.",
    )


def request_body(*models: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """An OpenAPI requestBody for handlers that parse their body themselves (to control the errors)."""
    schemas = [m.model_json_schema() for m in models]
    schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "Invalid message (shape, encoding, control characters, length, button not offered)",
        401: "No session, or an invalid, expired or revoked one",
        403: "Origin not allowed",
        413: "Body too large",
        409: "A retry of a message still being answered (duplicate_in_flight), or a client_message_id "
        "reused for another message (client_message_id_reused)",
        415: "Not JSON",
        429: "Rate limited (Retry-After)",
        502: "Rasa answered with an error",
        503: "Rasa or a dependency is unavailable",
        504: "Rasa did not answer in time",
    }.items()
}
