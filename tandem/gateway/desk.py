"""The gateway's desk: who has a conversation (the bot or a person), and everything a handoff does.

The gateway owns the mode. Before a customer's message goes to Rasa, :meth:`Desk.intercept` asks
the database for the conversation's open handoff (one indexed query): with one, the message is
stored on the ticket (and passed to the help desk) and never reaches Rasa; while still queued,
"cancel" / "back to the bot" ends the handoff instead. After a turn, :meth:`Desk.after_turn`
reads the bot's markers (``{"handoff": {"state": "pending", "ticket_id"}}`` from
``action_handoff``, ``{"approval": {...}}`` from a cancellation waiting for approval): it records
where a platform customer is answered and opens the handoff on the help desk.

Agents act through the console's API (or a help desk's webhook): claim, reply (delivered on the
customer's channel: Slack and Telegram through the doors' senders, the website through
``GET /api/v1/handoff``), resolve or close (the hand-back: Rasa's conversation is resumed and an
external intent makes the bot say so), decide refunds. Queued handoffs past
``HANDOFF_QUEUE_TIMEOUT`` expire in :meth:`Desk.sweep` (run periodically by the app). Database
work runs in worker threads, one transaction each; a database failure is a clear 503.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from tandem.clock import Clock, utc_now
from tandem.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from tandem.gateway.doors import Doors
from tandem.gateway.errors import GatewayError, UpstreamError
from tandem.gateway.helpdesk.port import DeskTicket, HelpDesk
from tandem.gateway.messages import handoff_message
from tandem.gateway.state import GatewayState
from tandem.services import approvals, audit, handoff, handoff_views
from tandem.services.handoff import CUSTOMER, SYSTEM, Actor, Transition
from tandem.settings import HandoffSettings

R = TypeVar("R")

# While queued, these end the handoff and give the conversation back to the bot (the whole message,
# give or take politeness and punctuation: "cancel please", "go back to the bot").
_CANCEL = re.compile(
    r"^(?:please\s+)?(?:cancel(?:\s+(?:it|that|the\s+request|my\s+request))?|stop\s+waiting|never\s*mind|nevermind|"
    r"(?:(?:go|take\s+me|get\s+me)\s+)?back\s+to\s+the\s+(?:bot|assistant)|talk\s+to\s+the\s+(?:bot|assistant)|"
    r"i(?:'|’)?ll\s+(?:wait\s+)?(?:ask|talk\s+to)\s+the\s+(?:bot|assistant)|no\s+agent(?:\s+needed)?|/cancel)"
    r"(?:\s+please)?[\s.!]*$",
    re.IGNORECASE,
)

# What a platform customer reads when an agent joins (the website shows its own banner).
JOINED = "{name} from our support team has joined the conversation."


def wants_the_bot(text: str) -> bool:
    """Whether a message sent while waiting for an agent asks to go back to the bot."""
    folded = unicodedata.normalize("NFKC", text).strip()
    return len(folded) <= 60 and _CANCEL.match(folded) is not None


def _gateway_error(error: ServiceError) -> GatewayError:
    if isinstance(error, NotFound):
        return GatewayError(404, "not_found", "No such ticket.")
    if isinstance(error, Forbidden):
        return GatewayError(403, "forbidden", "This ticket is assigned to another agent.")
    if isinstance(error, Conflict):
        messages = {
            "already_assigned": "Someone else has claimed this handoff.",
            "not_assigned": "Claim the handoff before replying.",
            "already_decided": "This refund has been decided already.",
        }
        return GatewayError(409, error.reason, messages.get(error.reason, "The ticket has changed; reload it."))
    if isinstance(error, Invalid):
        return GatewayError(400, "invalid", str(error), reason=f"invalid_{error.reason}")
    return GatewayError(503, "temporarily_unavailable", "The desk is unavailable right now. Please try again.")


class Desk:
    """The handoff coordinator of one gateway app (see the module docstring)."""

    def __init__(
        self,
        state: GatewayState,
        doors: Doors,
        helpdesk: HelpDesk,
        settings: HandoffSettings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.state = state
        self.doors = doors
        self.helpdesk = helpdesk
        self.settings = settings
        self.clock = clock
        self.log = logging.getLogger("tandem.gateway.desk")
        self._sessions: sessionmaker[Session] | None = None
        # Hand-backs Rasa did not take (it was down): retried by the sweep and before the
        # conversation's next message, so a customer is never left with a paused bot.
        self._unresumed: dict[str, tuple[Transition, str, dict[str, Any]]] = {}

    # --- plumbing --------------------------------------------------------------------------

    def _factory(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = sessionmaker(self.state.database_engine(), expire_on_commit=False)
        return self._sessions

    async def tx(self, work: Callable[[Session], R]) -> R:
        """``work(session)`` in a worker thread, in one transaction; service errors become the API's errors."""

        def run() -> R:
            with self._factory().begin() as session:
                return work(session)

        try:
            return await asyncio.wait_for(asyncio.to_thread(run), timeout=10.0)
        except ServiceError as error:
            raise _gateway_error(error) from error
        except (TimeoutError, sa_exc.SQLAlchemyError) as exc:
            self.log.warning(
                "desk: database unavailable", extra={"event": "desk_database", "error": type(exc).__name__}
            )
            raise GatewayError(
                503,
                "temporarily_unavailable",
                "We can't take messages right now. Please try again in a moment.",
                reason="desk_database",
            ) from exc

    async def audited(self, actor: Actor, tool: str, arguments: dict[str, Any], work: Callable[[Session], R]) -> R:
        """``work`` in one transaction, then an ``audit_log`` row for it whatever the outcome: the
        agents' tools of DOMAIN.md (``claim_handoff``, ``reply_handoff``, ``resolve_handoff``,
        ``decide_refund``) are audited like the bot's."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self.tx(work)
        except GatewayError as error:
            outcome = error.code
            raise
        finally:
            duration_ms = int((time.perf_counter() - started) * 1000)
            await self._audit_row(actor, tool, arguments, outcome, duration_ms)

    async def _audit_row(
        self, actor: Actor, tool: str, arguments: dict[str, Any], outcome: str, duration_ms: int
    ) -> None:
        label = actor.label if actor.kind != "desk" else f"{actor.label}:{(actor.name or '')[:40]}"
        role = actor.role or ("agent" if actor.kind in ("agent", "desk") else actor.kind)
        at = self.clock()

        def write(session: Session) -> int:
            return audit.record(
                session,
                actor=label,
                role=role,
                tool=tool,
                arguments=arguments,
                outcome=outcome,
                duration_ms=duration_ms,
                at=at,
            )

        try:
            await self.tx(write)
        except GatewayError:
            self.log.warning("desk: the audit row was not written", extra={"event": "desk_audit", "tool": tool})

    def _counted(self, to_status: str) -> None:
        self.state.metrics.handoff_transitions.labels(to_status).inc()

    def _ticket(self, detail: handoff_views.HandoffDetail) -> DeskTicket:
        return DeskTicket(
            ticket_id=detail.row.id,
            conversation_id=detail.conversation_id,
            channel=detail.row.channel,
            reason=detail.row.reason,
            summary=detail.row.summary,
            llm_summary=detail.row.llm_summary,
            desk_ref=detail.desk_ref,
            transcript=[t for t in detail.transcript if t.get("phase") == "before"],
        )

    async def _tell_helpdesk(self, what: str, call: Any) -> None:
        try:
            await call
        except Exception as exc:  # the help desk is down: the embedded record still holds everything
            self.log.warning(
                "desk: the help desk call failed",
                extra={
                    "event": "helpdesk_failed",
                    "call": what,
                    "helpdesk": self.helpdesk.name,
                    "error": type(exc).__name__,
                },
            )

    async def deliver(
        self, conversation_id: str, channel: str | None, address: dict[str, Any] | None, messages: list[dict[str, Any]]
    ) -> bool:
        """Post ``messages`` to a platform customer; True also for the website (it polls the gateway)."""
        if not messages:
            return True
        send = self.doors.sender(channel, address, conversation_id)
        if send is None:
            return channel not in ("slack", "telegram")
        try:
            offered = await send(messages)
            if offered:
                await self.state.offers.set(conversation_id, offered)
            return True
        except Exception as exc:  # the platform refused or is down: the message stays on the ticket
            self.log.warning(
                "desk: delivery failed",
                extra={"event": "desk_delivery", "channel": channel, "error": type(exc).__name__},
            )
            return False

    # --- the customer's side ---------------------------------------------------------------

    async def intercept(self, conversation_id: str, *, text: str) -> list[dict[str, Any]] | None:
        """None when the bot has the conversation; else the replies for the customer (the message is the agent's)."""
        if conversation_id in self._unresumed:
            await self._retry_hand_back(conversation_id)
        found = await self.tx(lambda s: handoff.open_handoff(s, conversation_id=conversation_id))
        if found is None:
            return None
        now = self.clock()
        if found.status == "queued" and (now - found.created_at).total_seconds() >= self.settings.handoff_queue_timeout:
            # Past the timeout but not swept yet: the customer is told now, and this message
            # stays on the ticket for the e-mail follow-up.
            await self.tx(
                lambda s: handoff.add_message(s, ticket_id=found.ticket_id, actor=CUSTOMER, text=text, now=now)
            )
            expired = await self.tx(
                lambda s: handoff.expire_due(s, now=now, timeout_seconds=self.settings.handoff_queue_timeout)
            )
            mine = [t for t in expired if t.ticket_id == found.ticket_id]
            # Not delivered here: the caller answers the customer's turn with these replies.
            return await self._hand_back(mine[0], "handoff_expired", {}, deliver=False) if mine else []
        if found.status == "queued" and wants_the_bot(text):
            cancelled = await self.tx(lambda s: handoff.cancel(s, conversation_id=conversation_id, now=now))
            if cancelled is not None:
                return await self._hand_back(cancelled, "handoff_cancelled", {}, deliver=False)
        await self.tx(lambda s: handoff.add_message(s, ticket_id=found.ticket_id, actor=CUSTOMER, text=text, now=now))
        self.state.metrics.handoff_messages.labels("customer", "stored").inc()
        if self.helpdesk.name != "embedded":
            detail = await self.tx(lambda s: handoff_views.handoff_detail(s, ticket_id=found.ticket_id))
            await self._tell_helpdesk("customer_message", self.helpdesk.customer_message(self._ticket(detail), text))
        state = "agent_joined" if found.status == "assigned" else "pending"
        marker: dict[str, Any] = {"state": state, "ticket_id": found.ticket_id}
        if found.agent_name:
            marker["agent_name"] = found.agent_name
        return [{"custom": {"handoff": marker}}]

    async def cancel_by_customer(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """The widget's "back to the assistant": the bot's replies, or None when nothing was queued."""
        now = self.clock()
        cancelled = await self.tx(lambda s: handoff.cancel(s, conversation_id=conversation_id, now=now))
        if cancelled is None:
            return None
        return await self._hand_back(cancelled, "handoff_cancelled", {})

    async def after_turn(
        self, conversation_id: str, *, channel: str, address: dict[str, Any] | None, replies: list[dict[str, Any]]
    ) -> None:
        """Read the bot's ticket markers: remember the platform address, open the handoff on the help desk."""
        for ticket_id, kind in _markers(replies):
            await self._announced(conversation_id, ticket_id, kind, address)

    async def _announced(self, conversation_id: str, ticket_id: int, kind: str, address: dict[str, Any] | None) -> None:
        detail = None
        if kind == "handoff" and self.helpdesk.name != "embedded":
            detail = await self.tx(lambda s: handoff_views.handoff_detail(s, ticket_id=ticket_id))
        desk_ref = None
        if detail is not None and detail.conversation_id == conversation_id and detail.desk_ref is None:
            try:
                desk_ref = await self.helpdesk.open(self._ticket(detail))
            except Exception as exc:
                self.log.warning(
                    "desk: the help desk did not open the handoff",
                    extra={"event": "helpdesk_failed", "call": "open", "error": type(exc).__name__},
                )
        if address is not None or desk_ref is not None:
            await self.tx(
                lambda s: handoff.set_address(
                    s, ticket_id=ticket_id, conversation_id=conversation_id, address=address, desk_ref=desk_ref
                )
            )

    async def history_messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The handoffs' messages of the conversation in the API's message shape (for the history)."""
        rows = await self.tx(lambda s: handoff_views.conversation_messages(s, conversation_id=conversation_id))
        return [handoff_message(handoff_views.message_json(message, agent_name)) for message, agent_name in rows]

    async def customer_view(self, conversation_id: str, *, after: int) -> handoff_views.CustomerView:
        return await self.tx(lambda s: handoff_views.customer_view(s, conversation_id=conversation_id, after=after))

    # --- agents ----------------------------------------------------------------------------

    async def claim(self, actor: Actor, ticket_id: int) -> handoff_views.HandoffDetail:
        now = self.clock()
        done = await self.audited(
            actor,
            "claim_handoff",
            {"ticket_id": ticket_id},
            lambda s: handoff.claim(s, ticket_id=ticket_id, actor=actor, now=now),
        )
        self._counted("assigned")
        name = done.agent_name or "An agent"
        await self.deliver(done.conversation_id, done.channel, done.address, [{"text": JOINED.format(name=name)}])
        return await self.detail(ticket_id)

    async def detail(self, ticket_id: int) -> handoff_views.HandoffDetail:
        return await self.tx(lambda s: handoff_views.handoff_detail(s, ticket_id=ticket_id))

    async def reply(
        self, actor: Actor, ticket_id: int, text: str, *, external_id: str | None = None
    ) -> tuple[dict[str, Any] | None, bool]:
        """Store an agent's message and deliver it; (the message, delivered). None: a repeated help-desk delivery."""
        now = self.clock()

        def store(session: Session) -> tuple[int | None, handoff_views.HandoffDetail]:
            message_id = handoff.add_message(
                session, ticket_id=ticket_id, actor=actor, text=text, now=now, external_id=external_id
            )
            return message_id, handoff_views.handoff_detail(session, ticket_id=ticket_id)

        message_id, detail = await self.audited(
            actor, "reply_handoff", {"ticket_id": ticket_id, "chars": len(text)}, store
        )
        if message_id is None:
            return None, False
        message = next(m for m in detail.transcript if m.get("id") == message_id)
        name = detail.row.agent_name or "Support"
        delivered = await self.deliver(
            detail.conversation_id, detail.row.channel, detail.address, [{"text": f"{name}: {message['text']}"}]
        )
        platform = detail.row.channel in ("slack", "telegram")
        delivery = ("delivered" if delivered else "failed") if platform else "stored"
        self.state.metrics.handoff_messages.labels("agent", delivery).inc()
        return message, delivered

    async def resolve(
        self, actor: Actor, ticket_id: int, *, note: str | None, outcome: str = "solved"
    ) -> tuple[handoff_views.HandoffDetail, int]:
        now = self.clock()
        done = await self.audited(
            actor,
            "resolve_handoff",
            {"ticket_id": ticket_id, "outcome": outcome},
            lambda s: handoff.resolve(s, ticket_id=ticket_id, actor=actor, now=now, note=note),
        )
        replies = await self._hand_back(
            done, "handoff_returned", {"agent_name": done.agent_name or "Our agent", "handoff_outcome": outcome}
        )
        return await self.detail(ticket_id), len(replies)

    async def close(
        self, actor: Actor, ticket_id: int, *, note: str | None, tell_helpdesk: bool = True
    ) -> handoff_views.HandoffDetail:
        now = self.clock()
        done = await self.audited(
            actor,
            "close_handoff",
            {"ticket_id": ticket_id},
            lambda s: handoff.close(s, ticket_id=ticket_id, actor=actor, now=now, note=note),
        )
        await self._hand_back(
            done,
            "handoff_returned",
            {"agent_name": done.agent_name or "Our team", "handoff_outcome": "closed"},
            tell_helpdesk=tell_helpdesk,
        )
        return await self.detail(ticket_id)

    async def decide(self, actor: Actor, approval_id: int, *, approve: bool) -> tuple[approvals.ApprovalRow, bool]:
        """An agent's refund decision; (the approval, whether the customer was told)."""
        now = self.clock()
        decision = await self.audited(
            actor,
            "decide_refund",
            {"ticket_id": approval_id, "decision": "approve" if approve else "deny"},
            lambda s: approvals.decide_refund(s, ticket_id=approval_id, approve=approve, actor=actor, now=now),
        )
        row = decision.approval
        self._counted(row.status)
        entities = {
            "refund_decision": "approved" if approve else "denied",
            "booking_ref": row.booking_reference or "",
            "refund_amount": f"{row.refund:.2f}" if row.refund is not None else "",
            "currency": row.currency or "",
        }
        try:
            replies = await self.state.rasa.trigger(decision.conversation_id, "refund_decided", entities)
        except UpstreamError as exc:
            self.log.warning(
                "desk: the customer could not be told", extra={"event": "refund_notice", "error": exc.kind}
            )
            return row, False
        notified = bool(replies) and await self.deliver(
            decision.conversation_id, row.channel, decision.address, replies
        )
        return row, notified

    async def sweep(self) -> int:
        """Expire the queued handoffs past the timeout and give their conversations back to the bot."""
        now = self.clock()
        expired = await self.tx(
            lambda s: handoff.expire_due(s, now=now, timeout_seconds=self.settings.handoff_queue_timeout)
        )
        for done in expired:
            await self._hand_back(done, "handoff_expired", {})
        for conversation_id in list(self._unresumed):
            await self._retry_hand_back(conversation_id)
        return len(expired)

    async def _retry_hand_back(self, conversation_id: str) -> None:
        pending = self._unresumed.pop(conversation_id, None)
        if pending is not None:
            await self._hand_back(*pending)

    # --- a help desk's agents (Chatwoot's webhook) ---------------------------------------------

    async def _by_desk_ref(self, desk_ref: str) -> handoff.OpenHandoff | None:
        found = await self.tx(lambda s: handoff.open_handoff_by_desk_ref(s, desk_ref=desk_ref))
        return found

    async def agent_message_from_desk(self, *, desk_ref: str, agent_name: str, text: str, external_id: str) -> bool:
        try:
            return await self._desk_message(desk_ref, agent_name, text, external_id)
        except GatewayError as error:
            self.log.info(
                "desk: a help-desk message was not taken", extra={"event": "helpdesk_refused", "code": error.code}
            )
            return False

    async def resolved_by_desk(self, *, desk_ref: str, agent_name: str | None) -> bool:
        try:
            return await self._desk_resolved(desk_ref, agent_name)
        except GatewayError as error:
            self.log.info(
                "desk: a help-desk resolve was not taken", extra={"event": "helpdesk_refused", "code": error.code}
            )
            return False

    async def _desk_message(self, desk_ref: str, agent_name: str, text: str, external_id: str) -> bool:
        found = await self._by_desk_ref(desk_ref)
        if found is None:
            return False
        actor = Actor("desk", name=agent_name, desk=self.helpdesk.name)
        if found.status == "queued":
            try:
                await self.claim(actor, found.ticket_id)
            except GatewayError as error:
                if error.status != 409:
                    raise
        message, _ = await self.reply(actor, found.ticket_id, text, external_id=external_id)
        return message is not None

    async def _desk_resolved(self, desk_ref: str, agent_name: str | None) -> bool:
        found = await self._by_desk_ref(desk_ref)
        if found is None:
            return False
        actor = Actor("desk", name=agent_name or found.agent_name or "Support", desk=self.helpdesk.name)
        if found.status == "queued":
            # The help desk ended it: nothing to tell the help desk back.
            await self.close(actor, found.ticket_id, note=None, tell_helpdesk=False)
        else:
            await self.resolve(actor, found.ticket_id, note=None)
        return True

    # --- the hand-back ---------------------------------------------------------------------

    async def _hand_back(
        self,
        done: Transition,
        intent: str,
        entities: dict[str, Any],
        *,
        deliver: bool = True,
        tell_helpdesk: bool = True,
    ) -> list[dict[str, Any]]:
        """Resume Rasa's conversation and let the bot say so; the bot's replies (delivered to a
        platform unless ``deliver`` is False: the customer's own turn is being answered with them)."""
        self._counted(done.to_status)
        ended_elsewhere = done.to_status in ("cancelled", "expired", "closed")
        if tell_helpdesk and self.helpdesk.name != "embedded" and done.desk_ref and ended_elsewhere:
            detail = await self.detail(done.ticket_id)
            await self._tell_helpdesk("ended", self.helpdesk.ended(self._ticket(detail), done.to_status))
        try:
            await self.state.rasa.resume(done.conversation_id)
            replies = await self.state.rasa.trigger(done.conversation_id, intent, entities)
        except UpstreamError as exc:
            # The ticket has ended either way; the hand-back is retried before the conversation's
            # next message and by the sweep. Logged, never raised at the agent.
            self.log.warning("desk: the hand-back did not reach Rasa", extra={"event": "hand_back", "error": exc.kind})
            self._unresumed[done.conversation_id] = (done, intent, entities)
            return []
        if deliver:
            await self.deliver(done.conversation_id, done.channel, done.address, replies)
        return replies


def _markers(replies: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """The tickets the bot announced in a turn: ``(ticket id, "handoff" | "approval")``."""
    found: list[tuple[int, str]] = []
    for reply in replies:
        custom = reply.get("custom")
        if not isinstance(custom, dict):
            continue
        for kind in ("handoff", "approval"):
            marker = custom.get(kind)
            if not isinstance(marker, dict):
                continue
            ticket_id = marker.get("ticket_id")
            if not isinstance(ticket_id, int) or isinstance(ticket_id, bool) or ticket_id <= 0:
                continue
            if kind == "approval" or marker.get("state") == "pending":
                found.append((ticket_id, kind))
    return found


__all__ = ["JOINED", "SYSTEM", "Desk", "wants_the_bot"]
