"""The Toolbox: roles, validation, timeouts, error mapping and the audit trail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tandem.clock import FixedClock, local_date, utc_now
from tandem.db.models import AuditLog, Booking
from tandem.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unavailable
from tandem.ratelimit import InMemoryRateLimiter
from tandem.tools import TOOL_ROLES, Caller, Services, Toolbox

if TYPE_CHECKING:
    from tests.conftest import Db


CUSTOMER = Caller("conv-tools")


def _toolbox(db: Db, **overrides: Any) -> Toolbox:
    kwargs: dict[str, Any] = {"sessions": db.sessions, "settings": db.settings, "limiter": InMemoryRateLimiter()}
    kwargs.update(overrides)
    return Toolbox(**kwargs)


def _audit_rows(db: Db) -> list[AuditLog]:
    with db.sessions() as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


async def test_search_and_book_through_the_toolbox(db: Db) -> None:
    tools = _toolbox(db)
    day = local_date(utc_now(), db.settings.business.timezone) + timedelta(days=4)
    result = await tools.search_flights(
        CUSTOMER, origin="bkk", destination="CNX", date=day, passengers=2, cabin="economy"
    )
    assert 1 <= len(result.options) <= db.settings.business.search_max_options
    created = await tools.create_booking(
        CUSTOMER,
        flight_id=result.options[0].flight_id,
        passengers=2,
        cabin="economy",
        last_name="Okafor",
        email="ada.okafor@example.com",
    )
    details = await tools.get_booking(CUSTOMER, reference=created.reference.lower(), last_name="okafor")
    assert details.status == "held" and details.payment_link == created.payment_link
    rows = _audit_rows(db)
    assert [(r.tool, r.outcome, r.actor, r.role) for r in rows] == [
        ("search_flights", "ok", "conv-tools", "customer"),
        ("create_booking", "ok", "conv-tools", "customer"),
        ("get_booking", "ok", "conv-tools", "customer"),
    ]
    assert all(r.duration_ms >= 0 for r in rows)
    stored = json.dumps([r.arguments for r in rows])
    assert "ada.okafor" not in stored and "Okafor" not in stored and "okafor" not in stored
    assert rows[1].arguments["email"] == "a***@e***.com" and rows[1].arguments["last_name"] == "O***"
    assert rows[0].arguments["date"] == day.isoformat()


async def test_invalid_arguments_are_rejected_before_the_service_and_audited(db: Db) -> None:
    calls: list[object] = []

    def spy(*args: object, **kwargs: object) -> NoReturn:
        calls.append(kwargs)
        raise AssertionError("must not be called")

    tools = _toolbox(db, services=Services(create_booking=spy))
    bad_calls: list[dict[str, Any]] = [
        {"flight_id": 1, "passengers": 0, "cabin": "economy", "last_name": "X", "email": "x@example.com"},
        {"flight_id": 1, "passengers": 1, "cabin": "first", "last_name": "X", "email": "x@example.com"},
        {"flight_id": 1, "passengers": 1, "cabin": "economy", "last_name": "", "email": "x@example.com"},
        {"flight_id": 1, "passengers": 1, "cabin": "economy", "last_name": "X", "email": "nope"},
        {"flight_id": "one", "passengers": 1, "cabin": "economy", "last_name": "X", "email": "x@example.com"},
    ]
    for kwargs in bad_calls:
        with pytest.raises(Invalid) as err:
            await tools.create_booking(CUSTOMER, **kwargs)
        assert err.value.reason == "arguments"
    with pytest.raises(Invalid):
        await tools.get_booking(CUSTOMER, reference="AB12C", last_name="Smith")
    with pytest.raises(Invalid):
        await tools.flight_status(CUSTOMER, flight_number="TG 204")
    assert calls == []
    assert [r.outcome for r in _audit_rows(db)] == ["Invalid"] * 7


async def test_roles_are_enforced_and_refusals_audited(db: Db) -> None:
    tools = _toolbox(db)
    with pytest.raises(Forbidden):
        await tools.create_booking(
            Caller("ops", "admin"),
            flight_id=1,
            passengers=1,
            cabin="economy",
            last_name="Smith",
            email="john.smith@example.com",
        )
    with pytest.raises(Forbidden):
        await tools.record_rating(Caller("agent-1", "agent"), rating=5)
    with pytest.raises(Forbidden):
        await tools.record_rating(Caller("x", "pirate"), rating=5)  # type: ignore[arg-type]
    assert await tools.record_rating(CUSTOMER, rating=4) > 0
    rows = _audit_rows(db)
    assert [(r.tool, r.role, r.outcome) for r in rows] == [
        ("create_booking", "admin", "Forbidden"),
        ("record_rating", "agent", "Forbidden"),
        ("record_rating", "pirate", "Forbidden"),
        ("record_rating", "customer", "ok"),
    ]
    assert "john.smith" not in json.dumps(rows[0].arguments)
    # Customers may use every tool of the table.
    assert all("customer" in roles for roles in TOOL_ROLES.values())


async def test_timeout_becomes_unavailable_and_is_audited(db: Db) -> None:
    def slow(*args: object, **kwargs: object) -> NoReturn:
        time.sleep(0.5)
        raise AssertionError("the result of a timed-out call must not be used")

    fast_settings = db.settings.updated(tool_timeout_seconds=0.05)
    tools = _toolbox(db, settings=fast_settings, services=Services(search_flights=slow))
    started = time.perf_counter()
    with pytest.raises(Unavailable):
        await tools.search_flights(
            CUSTOMER, origin="BKK", destination="HKT", date=utc_now().date(), passengers=1, cabin="economy"
        )
    assert time.perf_counter() - started < 0.45
    [row] = _audit_rows(db)
    assert (row.tool, row.outcome) == ("search_flights", "Unavailable") and row.duration_ms < 450


async def test_database_errors_become_unavailable(db: Db) -> None:
    def broken(*args: object, **kwargs: object) -> NoReturn:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    tools = _toolbox(db, services=Services(flight_status=broken))
    with pytest.raises(Unavailable):
        await tools.flight_status(CUSTOMER, flight_number="AN204")
    assert [r.outcome for r in _audit_rows(db)] == ["Unavailable"]


async def test_service_errors_pass_through_unchanged(db: Db, flight_factory: Callable[..., int]) -> None:
    tools = _toolbox(db)
    with pytest.raises(NotFound):
        await tools.get_booking(CUSTOMER, reference="AB12CD", last_name="Jones")
    full = flight_factory(departure_at=utc_now() + timedelta(days=2), seats_economy=0)
    with pytest.raises(Conflict) as err:
        await tools.create_booking(
            CUSTOMER, flight_id=full, passengers=1, cabin="economy", last_name="Smith", email="john.smith@example.com"
        )
    assert err.value.reason == "sold_out"
    rows = _audit_rows(db)
    # The failed lookup is counted for the lock-out (tests/security/test_lookup_lockout.py) and audited.
    assert [(r.tool, r.outcome) for r in rows] == [
        ("lookup_failure", "NotFound"),
        ("get_booking", "NotFound"),
        ("create_booking", "Conflict"),
    ]
    assert rows[1].arguments == {"reference": "AB12CD", "last_name": "J***"}


async def test_cancel_uses_the_callers_conversation_and_the_clock(db: Db) -> None:
    clock = FixedClock(utc_now())
    tools = _toolbox(db, clock=clock)
    quote = await tools.quote_cancellation(CUSTOMER, reference="AB12CD", last_name="Smith")
    result = await tools.cancel_booking(CUSTOMER, reference="AB12CD", last_name="Smith")
    assert result.status == "cancelled" and result.refund_amount == quote.refund_amount
    with db.sessions() as s:
        booking = s.scalars(select(Booking).where(Booking.reference == "AB12CD")).one()
        assert booking.cancelled_at == clock()
    pending = await tools.cancel_booking(Caller("conv-tanaka"), reference="XK93PQ", last_name="Tanaka")
    assert pending.status == "pending_approval" and pending.ticket_id is not None


async def test_password_reset_and_handoff_tools(db: Db) -> None:
    tools = _toolbox(db)
    for _ in range(db.settings.business.password_reset_limit_per_email):
        await tools.request_password_reset(CUSTOMER, email="nobody@example.com")  # no error, no payload
    with pytest.raises(RateLimited):
        await tools.request_password_reset(Caller("other-conv"), email="NOBODY@example.com")
    ticket = await tools.create_handoff(
        CUSTOMER,
        reason="asked for a human",
        transcript=[{"event": "user", "text": "I am yuki@example.org"}],
        slots={"last_name": "Tanaka"},
        summary="",
    )
    assert ticket.ticket_id > 0 and ticket.created
    rows = _audit_rows(db)
    assert rows[-1].tool == "create_handoff" and rows[-1].arguments == {
        "reason": "asked for a human",
        "transcript_events": 1,
        "slots": {"last_name": "T***"},
    }
    assert "nobody@" not in json.dumps([r.arguments for r in rows])
    assert rows[-2].outcome == "RateLimited"


async def test_from_settings_builds_a_working_toolbox(db: Db) -> None:
    tools = Toolbox.from_settings(db.settings)
    try:
        info = await tools.flight_status(CUSTOMER, flight_number="AN 305")
        assert info.flight_number == "AN305" and info.origin == "KBV"
    finally:
        tools.close()
