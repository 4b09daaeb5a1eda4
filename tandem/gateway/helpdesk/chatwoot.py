"""The Chatwoot adapter of the help-desk port: each handoff is a conversation in an API-channel inbox.

Chatwoot's application API (``/api/v1/accounts/{account}/...``, header ``api_access_token``):

- ``open``: a contact (named ``Customer <8 hex of a hash of the conversation id>``, never the
  customer's name or anything they typed; ``identifier`` = the conversation id, which is a keyed
  hash and no PII) and a conversation in ``CHATWOOT_INBOX_ID`` (status ``open``, custom attributes
  ``tandem_ticket_id``, ``channel``, ``reason``), then ONE private note with the summary, the AI
  summary when there is one, and the transcript (at most :data:`MAX_NOTE_CHARS`; the oldest lines
  go first). The desk's reference of the handoff is the conversation's id (Chatwoot's per-account
  ``display_id``, the one its URLs and webhooks use). A contact's ``identifier`` is unique in an
  account, so the second handoff of a conversation finds the contact made for the first one
  (``contacts/search``) and reuses its contact inbox.
- ``customer_message``: an ``incoming`` message (Chatwoot shows it as the contact's).
- ``ended``: a private note saying why (the customer went back to the bot, no agent in time...),
  then ``toggle_status`` ``resolved`` (a conversation already resolved stays resolved: 200 too).

Every call has the timeout; nothing is retried (posting is not idempotent); a timeout, a network
error, a non-2xx answer or a body that is not a JSON object raises
:class:`~tandem.gateway.helpdesk.port.HelpDeskError` and is logged without URL, body or token.
The ids of the messages posted here (and of the conversations resolved here) are remembered for
:data:`POSTED_TTL_SECONDS` (in process, bounded, plus a :class:`PostedStore` shared by the
replicas when given, e.g. :class:`RedisPostedStore`) so that the webhook drops their echoes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import redis.asyncio as aioredis

from tandem.gateway.helpdesk.port import DeskTicket, HelpDeskError
from tandem.settings.desk import ChatwootSettings

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_NOTE_CHARS",
    "POSTED_TTL_SECONDS",
    "ChatwootDesk",
    "HelpDeskError",
    "MemoryPostedStore",
    "PostedStore",
    "RedisPostedStore",
    "contact_name",
    "ended_note",
    "handoff_note",
]

DEFAULT_TIMEOUT_SECONDS = 10.0
# One private note per handoff, at most this long (Chatwoot allows far more; agents read less).
MAX_NOTE_CHARS = 10_000
MAX_SUMMARY_CHARS = 2_000
MAX_LINE_CHARS = 2_000
MAX_REASON_CHARS = 200
# Chatwoot's own limit on a message's content.
MAX_MESSAGE_CHARS = 150_000
# How long a posted message id (or a conversation resolved here) is remembered: longer than
# Chatwoot's webhook redeliveries.
POSTED_TTL_SECONDS = 24 * 3600
DEFAULT_MAX_POSTED = 10_000

ENDED_NOTES = {
    "cancelled": "The customer went back to the bot (cancelled).",
    "expired": "No agent in time (expired): the customer was told, and the bot has the conversation again.",
    "closed": "The handoff was closed in the agent console (closed); the bot has the conversation again.",
    "resolved": "The handoff was resolved in the agent console (resolved); the bot has the conversation again.",
}
_ROLES = {"customer": "Customer", "bot": "Bot", "agent": "Agent", "system": "System"}

_log = logging.getLogger(__name__)


class PostedStore(Protocol):
    """Keys of what this adapter did in Chatwoot (``message:<id>``, ``resolved:<conversation>``)."""

    async def add(self, key: str, ttl_seconds: int) -> None: ...

    async def contains(self, key: str) -> bool: ...


class MemoryPostedStore:
    """One process's keys: expiry per key, at most ``max_keys`` (the oldest go first)."""

    def __init__(self, *, max_keys: int = DEFAULT_MAX_POSTED, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max = max_keys
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def add(self, key: str, ttl_seconds: int) -> None:
        self._expiry[key] = self._clock() + ttl_seconds
        self._expiry.move_to_end(key)
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)

    async def contains(self, key: str) -> bool:
        expires = self._expiry.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expiry[key]
            return False
        return True


class RedisPostedStore:
    """``SET <prefix><key> 1 EX ttl`` / ``EXISTS``: what one replica posted, every replica knows."""

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def add(self, key: str, ttl_seconds: int) -> None:
        await self._client.set(self._prefix + key, b"1", ex=ttl_seconds)

    async def contains(self, key: str) -> bool:
        return bool(await self._client.exists(self._prefix + key))


def contact_name(conversation_id: str) -> str:
    """The contact's name in Chatwoot: a short hash, neither PII nor the conversation id itself."""
    return "Customer " + hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:8]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _at(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return ""
    return _clip(_one_line(value), 40)


def _transcript_line(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return None
    text = entry.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    role = entry.get("role")
    label = _ROLES.get(role, _clip(_one_line(role), 20) or "?") if isinstance(role, str) else "?"
    at = _at(entry.get("at"))
    line = f"{label}: {_one_line(text)}"
    return _clip(f"[{at}] {line}" if at else line, MAX_LINE_CHARS)


def handoff_note(ticket: DeskTicket, *, limit: int = MAX_NOTE_CHARS) -> str:
    """The private note opening a handoff: summary, AI summary, transcript (newest lines kept)."""
    channel = _one_line(ticket.channel or "unknown")
    reason = _clip(_one_line(ticket.reason), MAX_REASON_CHARS)
    head = [
        f"**Handoff from the assistant** · ticket #{ticket.ticket_id}",
        f"Channel: {channel} · Reason: {reason}",
        "",
        "**Summary**",
        _clip(ticket.summary.strip() or "(none)", MAX_SUMMARY_CHARS),
    ]
    if ticket.llm_summary and ticket.llm_summary.strip():
        head += ["", "**AI summary**", _clip(ticket.llm_summary.strip(), MAX_SUMMARY_CHARS)]
    head += ["", "**Transcript** (oldest first)"]
    lines = [line for line in map(_transcript_line, ticket.transcript) if line is not None]
    if not lines:
        return "\n".join([*head, "(no messages before the handoff)"])[:limit]
    text_head = "\n".join(head)
    # Room for the head, the "not shown" line and the newlines; the newest lines are kept.
    budget = limit - len(text_head) - len(f"\n({len(lines)} earlier messages not shown)")
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        if used + len(line) + 1 > budget:
            break
        kept.append(line)
        used += len(line) + 1
    kept.reverse()
    dropped = len(lines) - len(kept)
    body = ([f"({dropped} earlier messages not shown)"] if dropped else []) + kept
    return "\n".join([text_head, *body])[:limit]


def ended_note(status: str) -> str:
    """The private note saying why the handoff ended outside Chatwoot."""
    return ENDED_NOTES.get(status, f"The handoff ended ({_clip(_one_line(status), 40) or 'unknown'}).")


def chatwoot_id(value: Any) -> int | None:
    """A Chatwoot id (an int, or a string of digits in older payloads)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value) or None
    return None


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class ChatwootDesk:
    """:class:`~tandem.gateway.helpdesk.port.HelpDesk` over Chatwoot's application API."""

    name = "chatwoot"

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: ChatwootSettings,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        *,
        posted: PostedStore | None = None,
    ) -> None:
        if not settings.configured or settings.chatwoot_api_token is None:
            raise ValueError("Chatwoot is not configured (all five CHATWOOT_* values are needed)")
        base = (settings.chatwoot_base_url or "").rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise ValueError("CHATWOOT_BASE_URL must be an http(s):// URL")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._client = client
        self._base = base
        self._account = int(settings.chatwoot_account_id or 0)
        self._inbox = int(settings.chatwoot_inbox_id or 0)
        self._headers = {
            "api_access_token": settings.chatwoot_api_token.get_secret_value(),
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._memory = MemoryPostedStore()
        self._shared = posted

    def __repr__(self) -> str:  # never the token
        return f"ChatwootDesk(base_url={self._base!r}, account={self._account}, inbox={self._inbox})"

    @property
    def account_id(self) -> int:
        return self._account

    @property
    def inbox_id(self) -> int:
        return self._inbox

    # --- what the webhook asks ---------------------------------------------------------------

    async def posted_by_us(self, message_id: int) -> bool:
        """Whether this adapter posted the message (its webhook is our own echo)."""
        return await self._seen(f"message:{message_id}")

    async def resolved_by_us(self, conversation_id: int) -> bool:
        """Whether this adapter resolved the conversation (in ``ended``)."""
        return await self._seen(f"resolved:{conversation_id}")

    async def _remember(self, key: str) -> None:
        await self._memory.add(key, POSTED_TTL_SECONDS)
        if self._shared is not None:
            try:
                await self._shared.add(key, POSTED_TTL_SECONDS)
            except Exception as exc:  # the shared store is down: this replica still knows
                _log.warning(
                    "chatwoot: the posted-id store failed", extra={"helpdesk": self.name, "error": type(exc).__name__}
                )

    async def _seen(self, key: str) -> bool:
        if await self._memory.contains(key):
            return True
        if self._shared is None:
            return False
        try:
            return await self._shared.contains(key)
        except Exception as exc:  # our own posts are private or incoming: the webhook drops them anyway
            _log.warning(
                "chatwoot: the posted-id store failed", extra={"helpdesk": self.name, "error": type(exc).__name__}
            )
            return False

    # --- the HTTP calls ----------------------------------------------------------------------

    def _fail(self, operation: str, code: str, *, status: int | None = None, log: bool = True) -> HelpDeskError:
        if log:
            # No URL, body or token in the line: the operation and what went wrong.
            _log.warning(
                "chatwoot call failed",
                extra={"helpdesk": self.name, "operation": operation, "code": code, "status": status},
            )
        return HelpDeskError(self.name, code, operation=operation, status=status)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        quiet: tuple[int, ...] = (),
    ) -> dict[str, Any]:
        url = f"{self._base}/api/v1/accounts/{self._account}{path}"
        try:
            response = await self._client.request(
                method, url, json=body, params=params, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            raise self._fail(operation, "timeout") from None
        except httpx.HTTPError:
            raise self._fail(operation, "connection_error") from None
        status = response.status_code
        if not 200 <= status < 300:
            raise self._fail(operation, f"http_{status}", status=status, log=status not in quiet)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._fail(operation, "bad_response", status=status)
        return data

    async def _post_message(self, ref: str, content: str, *, message_type: str, private: bool, operation: str) -> None:
        data = await self._call(
            operation,
            "POST",
            f"/conversations/{ref}/messages",
            body={
                "content": _clip(content, MAX_MESSAGE_CHARS),
                "message_type": message_type,
                "private": private,
                "content_type": "text",
            },
        )
        message_id = chatwoot_id(data.get("id"))
        if message_id is not None:
            await self._remember(f"message:{message_id}")

    def _ref(self, ticket: DeskTicket, operation: str) -> str:
        ref = ticket.desk_ref
        if chatwoot_id(ref) is None:  # it goes into a URL path: digits only
            raise self._fail(operation, "no_desk_ref")
        return str(chatwoot_id(ref))

    # --- contacts ----------------------------------------------------------------------------

    async def _contact_inbox(self, contact_id: int) -> str:
        data = await self._call(
            "create_contact_inbox", "POST", f"/contacts/{contact_id}/contact_inboxes", body={"inbox_id": self._inbox}
        )
        source_id = data.get("source_id")
        if not isinstance(source_id, str) or not source_id:
            raise self._fail("create_contact_inbox", "bad_response")
        return source_id

    def _source_in(self, contact: Mapping[str, Any]) -> str | None:
        inboxes = contact.get("contact_inboxes")
        for item in inboxes if isinstance(inboxes, list) else []:
            entry = as_mapping(item)
            inbox = as_mapping(entry.get("inbox"))
            source_id = entry.get("source_id")
            if (
                chatwoot_id(inbox.get("id", entry.get("inbox_id"))) == self._inbox
                and isinstance(source_id, str)
                and source_id
            ):
                return source_id
        return None

    async def _existing_contact(self, identifier: str) -> tuple[int, str]:
        """The contact an earlier handoff of this conversation made (identifiers are unique)."""
        data = await self._call("search_contact", "GET", "/contacts/search", params={"q": identifier})
        found = data.get("payload")
        for item in found if isinstance(found, list) else []:
            contact = as_mapping(item)
            contact_id = chatwoot_id(contact.get("id"))
            if contact_id is not None and contact.get("identifier") == identifier:
                return contact_id, self._source_in(contact) or await self._contact_inbox(contact_id)
        raise self._fail("search_contact", "contact_not_found")

    async def _contact(self, ticket: DeskTicket) -> tuple[int, str]:
        body = {
            "inbox_id": self._inbox,
            "name": contact_name(ticket.conversation_id),
            "identifier": ticket.conversation_id,
        }
        try:
            data = await self._call("create_contact", "POST", "/contacts", body=body, quiet=(422,))
        except HelpDeskError as error:
            if error.status != 422:  # 422: "Identifier has already been taken"
                raise
            return await self._existing_contact(ticket.conversation_id)
        payload = as_mapping(data.get("payload"))
        contact = as_mapping(payload.get("contact"))
        contact_id = chatwoot_id(contact.get("id"))
        if contact_id is None:
            raise self._fail("create_contact", "bad_response")
        source_id = as_mapping(payload.get("contact_inbox")).get("source_id")
        if isinstance(source_id, str) and source_id:
            return contact_id, source_id
        return contact_id, self._source_in(contact) or await self._contact_inbox(contact_id)

    # --- the port ----------------------------------------------------------------------------

    async def open(self, ticket: DeskTicket) -> str | None:
        """Contact, conversation, one private note; the conversation's id. A note that failed
        raises with ``desk_ref`` set: the conversation exists in Chatwoot."""
        contact_id, source_id = await self._contact(ticket)
        data = await self._call(
            "create_conversation",
            "POST",
            "/conversations",
            body={
                "source_id": source_id,
                "inbox_id": self._inbox,
                "contact_id": contact_id,
                "status": "open",
                "custom_attributes": {
                    "tandem_ticket_id": ticket.ticket_id,
                    "channel": ticket.channel,
                    "reason": _clip(ticket.reason, MAX_REASON_CHARS),
                },
            },
        )
        conversation_id = chatwoot_id(data.get("id"))
        if conversation_id is None:
            raise self._fail("create_conversation", "bad_response")
        ref = str(conversation_id)
        try:
            await self._post_message(
                ref, handoff_note(ticket), message_type="outgoing", private=True, operation="post_note"
            )
        except HelpDeskError as error:
            error.desk_ref = ref
            raise
        return ref

    async def customer_message(self, ticket: DeskTicket, text: str) -> None:
        ref = self._ref(ticket, "customer_message")
        if not text.strip():
            return
        await self._post_message(ref, text, message_type="incoming", private=False, operation="customer_message")

    async def ended(self, ticket: DeskTicket, status: str) -> None:
        """A private note saying why, then ``resolved`` (tried even when the note failed)."""
        ref = self._ref(ticket, "ended")
        note_error: HelpDeskError | None = None
        try:
            await self._post_message(
                ref, ended_note(status), message_type="outgoing", private=True, operation="end_note"
            )
        except HelpDeskError as error:
            note_error = error
        # Before the call: Chatwoot's webhook of the change may arrive before its answer.
        await self._remember(f"resolved:{ref}")
        # An already resolved conversation answers 200 too (the status is set, not toggled).
        await self._call("resolve", "POST", f"/conversations/{ref}/toggle_status", body={"status": "resolved"})
        if note_error is not None:
            raise note_error

    async def aclose(self) -> None:
        return None  # the HTTP client belongs to the caller
