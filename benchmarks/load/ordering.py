"""The ordering check (issue 15): after a level, every conversation's history as Rasa stored it
(its tracker store's ``events`` table) against what the clients sent and got.

A stored history is cut into turns at each ``user`` event: the turn is that event and every event
up to the next ``user`` event. A stored turn is matched to the client's turn by the correlation id
Rasa keeps in the user event's metadata (the gateway's turn id, or the one this benchmark sent to
Rasa's channel). Per conversation, each of these is a violation (counted by kind):

- ``missing``: a turn the client got an answer for is not in the history;
- ``duplicated``: a turn is in the history more than once (each extra copy counts);
- ``unexpected``: user events the client never sent (beyond the turns it gave up on without
  learning their correlation id: those may or may not have run);
- ``text_differs``: the stored user text is not the text sent;
- ``out_of_order``: a turn stored after a turn that was sent after it. Turns of one burst (sent at
  once) may be stored in any order among themselves, never before an earlier burst's;
- ``interleaved``: the bot texts stored between a turn's user event and the next user event are
  not the texts its client got (another turn's events in between, or its own lost);
- ``concurrent``: a turn's user event is older than the last event of the turn stored before it:
  the two ran at the same time (under a working lock a turn's events are all made while it holds
  the conversation's lock, so the next turn's user event, made after it took the lock, is newer);
- ``extra_session_start``: more than one ``session_started``: two "first" turns each found the
  conversation empty and started it (a short benchmark conversation never expires).

The functions but :func:`read_events` are pure (tests/unit/test_load_bench.py).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from benchmarks.load.stats import Turn

KINDS = (
    "missing",
    "duplicated",
    "unexpected",
    "text_differs",
    "out_of_order",
    "interleaved",
    "concurrent",
    "extra_session_start",
)
EXAMPLES = 5


@dataclass(frozen=True)
class StoredEvent:
    """A row of Rasa's ``events`` table: its id (insertion order), type and the event's JSON."""

    id: int
    type_name: str
    data: dict[str, Any]

    @property
    def timestamp(self) -> float:
        value = self.data.get("timestamp")
        return float(value) if isinstance(value, int | float) else 0.0


@dataclass
class StoredTurn:
    """A user event and the events after it, up to the next user event."""

    correlation_id: str | None
    text: str | None
    first: float
    last: float
    bot_texts: list[str] = field(default_factory=list)


def stored_turns(events: Iterable[StoredEvent]) -> tuple[list[StoredTurn], int]:
    """The turns of a stored history (in insertion order) and its number of ``session_started``."""
    turns: list[StoredTurn] = []
    starts = 0
    for event in sorted(events, key=lambda e: e.id):
        if event.type_name == "session_started":
            starts += 1
        if event.type_name == "user":
            metadata = event.data.get("metadata")
            cid = metadata.get("correlation_id") if isinstance(metadata, dict) else None
            text = event.data.get("text")
            turns.append(
                StoredTurn(
                    cid if isinstance(cid, str) else None,
                    text if isinstance(text, str) else None,
                    event.timestamp,
                    event.timestamp,
                )
            )
        elif turns:
            turns[-1].last = max(turns[-1].last, event.timestamp)
            text = event.data.get("text")
            if event.type_name == "bot" and isinstance(text, str) and text:
                turns[-1].bot_texts.append(text)
    return turns, starts


class SentTurn(Protocol):
    """What :func:`check_turns` reads of a turn a client sent (a :class:`Turn`, a faults ``Request``)."""

    @property
    def correlation_id(self) -> str | None: ...

    @property
    def text(self) -> str: ...

    @property
    def reply_texts(self) -> tuple[str, ...]: ...


S = TypeVar("S", bound=SentTurn)


def check_turns(
    sent: Sequence[S],
    events: Iterable[StoredEvent],
    *,
    ok: Callable[[S], bool],
    order: Callable[[S], int],
    count_failed: bool = False,
) -> Counter[str]:
    """One conversation's stored history (``events``, its rows) against its client's turns (``sent``):
    the kinds found, without the zero counts. ``ok(turn)``: the client got its answer; ``order(turn)``:
    its position, stored turns must not go back in it (equal positions: any order among them).

    A turn that got its answer is stored exactly once (else ``missing`` / ``duplicated``), with the
    text sent (``text_differs``), in order (``out_of_order``), followed by the bot texts its client
    got (``interleaved``). A failed turn may be stored or not, the two rules differ in the rest:

    - ``count_failed`` False (the level check, :func:`check_conversation`): a failed turn stored is
      checked for its text and its order like the others; its extra copies are ``duplicated``;
    - ``count_failed`` True (the check under faults): a failed turn stored once is only counted
      (``failed_stored``, so it is not checked for text nor order, nor does it move the order on),
      not stored ``failed_not_stored``, stored more than once ``failed_duplicated``.

    Turns whose correlation id the client never learnt (no answer) may each account for one user
    event nobody else matches (beyond those: ``unexpected``)."""
    stored, starts = stored_turns(events)
    found: Counter[str] = Counter()
    by_id = {t.correlation_id: t for t in sent if t.correlation_id is not None}
    # Turns whose correlation id the client never learnt (no answer): allowed to be stored or not.
    unknown = sum(1 for t in sent if t.correlation_id is None)
    seen: Counter[str] = Counter()
    unmatched = 0
    latest = -1
    for turn in stored:
        client = by_id.get(turn.correlation_id) if turn.correlation_id is not None else None
        if client is None or turn.correlation_id is None:
            unmatched += 1
            continue
        answered = ok(client)
        seen[turn.correlation_id] += 1
        if seen[turn.correlation_id] > 1:
            found["failed_duplicated" if count_failed and not answered else "duplicated"] += 1
            continue
        if count_failed and not answered:
            found["failed_stored"] += 1
            continue
        if turn.text != client.text:
            found["text_differs"] += 1
        position = order(client)
        if position < latest:
            found["out_of_order"] += 1
        latest = max(latest, position)
        if answered and tuple(turn.bot_texts) != client.reply_texts:
            found["interleaved"] += 1
    for t in sent:
        if t.correlation_id is not None and not seen[t.correlation_id]:
            if ok(t):
                found["missing"] += 1
            elif count_failed:
                found["failed_not_stored"] += 1
    found["unexpected"] += max(0, unmatched - unknown)
    found["concurrent"] += sum(1 for a, b in itertools.pairwise(stored) if b.first < a.last)
    found["extra_session_start"] += max(0, starts - 1)
    return +found  # without the zero counts


def check_conversation(sent: Sequence[Turn], events: Iterable[StoredEvent]) -> Counter[str]:
    """The violations of one conversation: ``sent`` are its client's turns, ``events`` its rows.
    A turn is ordered by its burst (its index when it has none); a failed turn may be stored or not."""
    return check_turns(
        sent,
        events,
        ok=lambda t: t.error is None,
        order=lambda t: t.burst if t.burst is not None else t.index,
    )


def check_level(
    turns: Sequence[Turn], senders: Sequence[str | None], events: Mapping[str, Sequence[StoredEvent]]
) -> dict[str, Any]:
    """Every conversation of a level: ``senders[n]`` is session n's sender id (None: unknown, not
    checked), ``events`` the stored rows by sender id. Counts by kind, and a few examples."""
    by_session: dict[int, list[Turn]] = {}
    for turn in turns:
        by_session.setdefault(turn.session, []).append(turn)
    total: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    checked = with_violations = user_events = 0
    for number, sender in enumerate(senders):
        if sender is None:
            continue
        checked += 1
        rows = events.get(sender, [])
        user_events += sum(1 for e in rows if e.type_name == "user")
        found = check_conversation(by_session.get(number, []), rows)
        if found:
            total.update(found)
            with_violations += 1
            if len(examples) < EXAMPLES:
                examples.append({"session": number, "sender": sender, "violations": dict(sorted(found.items()))})
    http_errors = sum(1 for t in turns if t.error is not None)
    return {
        "conversations": checked,
        "unchecked_sessions": len(senders) - checked,
        "turns_sent": len(turns),
        "user_events": user_events,
        "http_errors": http_errors,
        "violations": sum(total.values()),
        "by_kind": {kind: total.get(kind, 0) for kind in KINDS},
        "conversations_with_violations": with_violations,
        "examples": examples,
        "holds": sum(total.values()) == 0 and http_errors == 0,
    }


def read_events(url: str, senders: Iterable[str], chunk: int = 500) -> dict[str, list[StoredEvent]]:
    """The rows of Rasa's ``events`` table of ``senders`` (SQLAlchemy ``url``: the production
    PostgreSQL database, or the embedded SQLite tracker), by sender id, in insertion order."""
    import json

    import sqlalchemy as sa

    wanted = sorted(set(senders))
    query = sa.text(
        "SELECT id, sender_id, type_name, data FROM events WHERE sender_id IN :senders ORDER BY id"
    ).bindparams(sa.bindparam("senders", expanding=True))
    found: dict[str, list[StoredEvent]] = {}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            for start in range(0, len(wanted), chunk):
                for row_id, sender, type_name, data in connection.execute(
                    query, {"senders": wanted[start : start + chunk]}
                ):
                    parsed = json.loads(data) if isinstance(data, str) else data
                    found.setdefault(sender, []).append(
                        StoredEvent(int(row_id), str(type_name), parsed if isinstance(parsed, dict) else {})
                    )
    finally:
        engine.dispose()
    return found
