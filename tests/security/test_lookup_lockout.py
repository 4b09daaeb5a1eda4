"""Finding 3: the three-tries lookup limit must not reset itself.

Failed lookups (reference + last name) are counted in the database per booking reference, per
client key and per conversation, with a lock-out window: asking again, a new conversation or a
new session gives no fresh tries. A reference that does not exist locks exactly like one that
does, and each failure and each lock-out leaves an audit row (no surnames stored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.context import use_toolbox
from actions.lookup import ActionGetBooking, ValidateBookingLookupForm
from tandem.clock import FixedClock, utc_now
from tandem.db.models import AuditLog
from tandem.errors import NotFound, RateLimited
from tandem.ratelimit import InMemoryRateLimiter
from tandem.tools import Caller, Toolbox
from tests.security.trackers import DOMAIN, responses, tracker

if TYPE_CHECKING:
    from tests.conftest import Db

WINDOW = timedelta(minutes=15)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(utc_now())


@pytest.fixture
def box(db: Db, clock: FixedClock, settings_factory: Any) -> Iterator[Toolbox]:
    settings = settings_factory(
        db.settings.database.database_url,
        SCHEDULE_DAYS=35,
        LOOKUP_MAX_FAILURES_PER_REFERENCE=3,
        LOOKUP_MAX_FAILURES_PER_CONVERSATION=5,
        LOOKUP_MAX_FAILURES_PER_CLIENT=10,
        LOOKUP_LOCKOUT_MINUTES=15,
    )
    toolbox = Toolbox(sessions=db.sessions, settings=settings, limiter=InMemoryRateLimiter(), clock=clock)
    use_toolbox(toolbox)
    yield toolbox
    use_toolbox(None)


async def _try(
    name: str, reference: str, *, sender: str, client: str | None = None, failures: float = 0.0
) -> tuple[dict[str, Any], list[str]]:
    """One last-name answer to the lookup form, as Rasa would validate it."""
    dispatcher = CollectingDispatcher()
    slots = {"booking_ref": reference, "lookup_failures": failures}
    result = await ValidateBookingLookupForm().validate_last_name(
        name, dispatcher, tracker(slots, sender=sender, client=client, text=name), DOMAIN
    )
    return result, responses(dispatcher)


async def _three_wrong(reference: str, *, sender: str, client: str | None = None) -> dict[str, Any]:
    failures = 0.0
    result: dict[str, Any] = {}
    for _ in range(3):
        result, _ = await _try("Jones", reference, sender=sender, client=client, failures=failures)
        failures = float(result.get("lookup_failures") or failures + 1)
    assert result.get("lookup_locked") is True  # the conversation's own UX limit, as before
    return result


async def test_a_new_conversation_does_not_reset_the_limit(box: Toolbox, clock: FixedClock) -> None:
    await _three_wrong("AB12CD", sender="attacker-1")
    # A new session (new sender id), the right surname, no client key: still locked out.
    result, said = await _try("Smith", "AB12CD", sender="attacker-2")
    assert result.get("lookup_locked") is True and result.get("last_name") is None
    assert "utter_booking_not_found" not in said
    dispatcher = CollectingDispatcher()
    await ActionGetBooking().run(
        dispatcher, tracker({"booking_ref": "AB12CD", "last_name": "Smith"}, sender="attacker-3"), DOMAIN
    )
    assert responses(dispatcher) == ["utter_lookup_locked", "utter_offer_human"]
    with pytest.raises(RateLimited):
        await box.get_booking(Caller("attacker-4"), reference="AB12CD", last_name="Smith")
    with pytest.raises(RateLimited):
        await box.quote_cancellation(Caller("attacker-5"), reference="ab12cd", last_name="Smith")
    with pytest.raises(RateLimited):
        await box.cancel_booking(Caller("attacker-6"), reference="AB12CD", last_name="Smith")

    # After the window the owner gets in again.
    clock.advance(WINDOW + timedelta(seconds=1))
    result, said = await _try("Smith", "AB12CD", sender="owner")
    assert result == {"last_name": "Smith"} and said == []


async def test_an_unknown_reference_locks_exactly_like_a_real_one(box: Toolbox) -> None:
    seen = []
    for reference in ("AB12CD", "QQ22QQ"):  # exists / does not exist
        await _three_wrong(reference, sender=f"probe-{reference}")
        result, said = await _try("Smith", reference, sender=f"fresh-{reference}")
        with pytest.raises(RateLimited) as err:
            await box.get_booking(Caller(f"tool-{reference}"), reference=reference, last_name="Smith")
        seen.append((result, said, str(err.value), err.value.retry_after_seconds))
    assert seen[0] == seen[1]


async def test_failures_and_lockouts_are_audited_without_surnames(box: Toolbox, db: Db) -> None:
    await _three_wrong("XK93PQ", sender="audited", client="client-a")
    with pytest.raises(RateLimited):
        await box.get_booking(Caller("audited-2", client="client-a"), reference="XK93PQ", last_name="Tanaka")
    with db.sessions() as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
    tools = [r.tool for r in rows]
    assert tools.count("lookup_failure") == 3
    assert tools.count("lookup_lockout") == 1
    lockout = next(r for r in rows if r.tool == "lookup_lockout")
    assert lockout.actor == "audited" and "reference" in json.dumps(lockout.arguments)
    assert [r.outcome for r in rows if r.tool == "get_booking"][-1] == "RateLimited"
    dumped = json.dumps([r.arguments for r in rows])
    assert "Jones" not in dumped and "Tanaka" not in dumped
    from tandem.db.models import LookupFailure  # the counting table: no surnames either

    with db.sessions() as s:
        stored = [(f.scope, f.subject) for f in s.scalars(select(LookupFailure))]
    assert ("reference", "XK93PQ") in stored and ("client", "client-a") in stored
    assert not [subject for _, subject in stored if "jones" in subject.lower()]


async def test_one_client_is_limited_across_many_references(box: Toolbox, clock: FixedClock) -> None:
    # Ten different references, one failure each, each from a new conversation: the client's limit.
    for i in range(10):
        with pytest.raises(NotFound):
            await box.get_booking(Caller(f"spray-{i}", client="sprayer"), reference=f"ZZ{i}9QQ", last_name="Jones")
    with pytest.raises(RateLimited):
        await box.get_booking(Caller("spray-last", client="sprayer"), reference="AB12CD", last_name="Smith")
    # Another client is not affected; the sprayer is let in after the window.
    assert (await box.get_booking(Caller("other", client="someone-else"), reference="AB12CD", last_name="Smith")).status
    clock.advance(WINDOW + timedelta(seconds=1))
    later = await box.get_booking(Caller("spray-later", client="sprayer"), reference="AB12CD", last_name="Smith")
    assert later.reference == "AB12CD"


async def test_one_conversation_is_limited_across_references(box: Toolbox) -> None:
    for i in range(5):
        with pytest.raises(NotFound):
            await box.get_booking(Caller("one-conv"), reference=f"YY{i}8QQ", last_name="Jones")
    with pytest.raises(RateLimited):
        await box.get_booking(Caller("one-conv"), reference="AB12CD", last_name="Smith")
    assert (await box.get_booking(Caller("two-conv"), reference="AB12CD", last_name="Smith")).reference == "AB12CD"
