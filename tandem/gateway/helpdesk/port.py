"""The help-desk port: what the desk tells a help desk, and what a help desk's agents do back.

Outbound (:class:`HelpDesk`): ``open`` (a new handoff: the desk returns its own id of it, stored
on the ticket as ``desk_ref``), ``customer_message`` (the customer wrote while a person has the
conversation), ``ended`` (the customer cancelled, the queue timed out, or the console closed it).
Inbound (:class:`DeskInbound`, implemented by the gateway's desk): an agent's message, and
"resolved", identified by the help desk's id of the ticket. An adapter is one module plus one
line in the gateway's app factory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class DeskTicket:
    """A handoff as a help desk sees it (the transcript is already what an agent may read)."""

    ticket_id: int
    conversation_id: str
    channel: str | None
    reason: str
    summary: str
    llm_summary: str | None
    desk_ref: str | None
    transcript: list[dict[str, Any]] = field(default_factory=list)  # [{"role", "text", "at"}]


class HelpDeskError(Exception):
    """A help-desk call that did not succeed. ``code``: ``timeout``, ``connection_error``,
    ``http_<status>``, ``bad_response``, ``no_desk_ref``; ``operation`` names the call (never a URL,
    a body or a token). ``desk_ref`` is set when the help desk holds the handoff although the call failed."""

    def __init__(
        self, desk: str, code: str, *, operation: str, status: int | None = None, desk_ref: str | None = None
    ) -> None:
        super().__init__(f"{desk} {operation}: {code}")
        self.desk = desk
        self.code = code
        self.operation = operation
        self.status = status
        self.desk_ref = desk_ref


class HelpDesk(Protocol):
    """What the gateway's desk tells a help desk. Every call has a timeout; failures raise."""

    name: str

    async def open(self, ticket: DeskTicket) -> str | None:
        """A new handoff: the help desk's id of it (None: the help desk keeps none)."""
        ...

    async def customer_message(self, ticket: DeskTicket, text: str) -> None:
        """The customer wrote ``text`` while the handoff is open."""
        ...

    async def ended(self, ticket: DeskTicket, status: str) -> None:
        """The handoff ended outside the help desk (``cancelled``, ``expired``, ``closed``, ``resolved``)."""
        ...

    async def aclose(self) -> None: ...


class DeskInbound(Protocol):
    """What a help desk's webhook may do (the gateway's desk implements it)."""

    async def agent_message_from_desk(self, *, desk_ref: str, agent_name: str, text: str, external_id: str) -> bool:
        """A help-desk agent's reply to the customer; False when no open handoff has that id or it was seen."""
        ...

    async def resolved_by_desk(self, *, desk_ref: str, agent_name: str | None) -> bool:
        """The help desk resolved the conversation: hand it back to the bot; False when nothing was open."""
        ...


class EmbeddedDesk:
    """The default: the agent console reads and writes the database itself; nothing to tell."""

    name = "embedded"

    async def open(self, ticket: DeskTicket) -> str | None:
        return None

    async def customer_message(self, ticket: DeskTicket, text: str) -> None:
        return None

    async def ended(self, ticket: DeskTicket, status: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
