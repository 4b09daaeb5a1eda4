"""The agent console API's JSON shapes, for the OpenAPI description (docs/handoff.md has the prose)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tandem.gateway.schemas import ErrorOut

AGENT_API = "/agent/api"


class LoginIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class AgentOut(BaseModel):
    id: int
    email: str
    display_name: str = Field(description="What customers see, e.g. 'Ploy'.")
    role: Literal["agent", "admin"]


class LoginOut(BaseModel):
    csrf_token: str = Field(description="Send it as X-CSRF-Token on every state-changing call.")
    agent: AgentOut


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ResolveIn(BaseModel):
    note: str | None = Field(default=None, max_length=1000, description="For the ticket; never shown to the customer.")
    outcome: Literal["solved", "unsolved"] = Field(
        default="solved", description="solved: the bot says '<agent> marked this as solved'."
    )


class CloseIn(BaseModel):
    note: str | None = Field(default=None, max_length=1000)


class TranscriptMessage(BaseModel):
    id: int | str
    role: Literal["customer", "bot", "agent", "system"]
    text: str
    at: str | None
    agent_name: str | None
    phase: Literal["before", "after"] = Field(description="before: the turns before the handoff; after: since.")


class HandoffOut(BaseModel):
    id: int
    status: Literal["queued", "assigned", "resolved", "closed", "expired", "cancelled"]
    channel: str | None
    reason: str
    summary: str = Field(description="Deterministic: reason, topics, active form.")
    llm_summary: str | None = Field(description="At most 3 sentences of the PII-masked transcript (with an LLM).")
    created_at: str
    assigned_at: str | None
    ended_at: str | None
    agent_id: int | None
    agent_name: str | None
    messages: int


class TicketEventOut(BaseModel):
    at: str
    from_: str | None = Field(alias="from")
    to: str
    actor: str


class HandoffDetailOut(HandoffOut):
    transcript: list[TranscriptMessage]
    slots: dict[str, Any] = Field(description="The conversation's slots (PII included: agents only).")
    note: str | None
    events: list[TicketEventOut]


class HandoffListOut(BaseModel):
    handoffs: list[HandoffOut]


class HandoffBody(BaseModel):
    handoff: HandoffDetailOut


class ResolvedOut(HandoffBody):
    bot_messages: int = Field(description="How many messages the bot sent on taking the conversation back.")


class MessageOut(BaseModel):
    message: TranscriptMessage
    delivered: bool = Field(description="False when the customer's platform refused it (it stays on the ticket).")


class ApprovalOut(BaseModel):
    id: int
    status: Literal["queued", "approved", "denied"]
    booking_reference: str | None
    refund: str | None = Field(description="The quoted refund, a decimal string such as '4250.00'.")
    currency: str | None
    channel: str | None
    summary: str
    created_at: str
    decided_at: str | None
    agent_name: str | None


class ApprovalListOut(BaseModel):
    approvals: list[ApprovalOut]


class DecisionOut(BaseModel):
    approval: ApprovalOut
    notified: bool = Field(description="Whether the bot told the customer in their conversation.")


AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in {
        400: "Invalid body or parameter",
        401: "No agent session, or an unknown, expired or revoked one (not_authenticated)",
        403: "Missing or wrong X-CSRF-Token (csrf_failed), or another agent's ticket (forbidden)",
        404: "No such ticket",
        409: "The ticket is not in a state that allows this (already_assigned, not_assigned, ticket_<status>, "
        "already_decided)",
        429: "Too many login attempts (Retry-After)",
        503: "The database is unavailable",
    }.items()
}
