"""Finding 2: nobody may hold a flight's seats indefinitely.

Open (held, unexpired) holds are limited per conversation, per e-mail, per client (the gateway's
opaque client key) and by a share of what the cabin has left to sell; expired holds are released
by ``python -m tandem.cli expire-holds --every SECONDS``, a loop that stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.booking import ActionCreateBooking
from actions.context import use_toolbox
from tandem.clock import FixedClock, utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.models import Booking, Flight
from tandem.errors import Conflict
from tandem.ratelimit import InMemoryRateLimiter
from tandem.services.bookings import create_booking
from tandem.settings import ActionSettings
from tandem.tools import Caller, Toolbox
from tests.security.trackers import DOMAIN, responses, tracker

if TYPE_CHECKING:
    from tests.conftest import Db

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {
    "BOOKING_MAX_HOLDS_PER_CONVERSATION": 3,
    "BOOKING_MAX_HOLDS_PER_EMAIL": 3,
    "BOOKING_MAX_HOLDS_PER_CLIENT": 5,
    "BOOKING_MAX_HELD_SHARE": 0.5,
}


@pytest.fixture
def limited(db: Db, settings_factory: Callable[..., ActionSettings]) -> ActionSettings:
    return settings_factory(db.settings.database.database_url, SCHEDULE_DAYS=35, **LIMITS)


def _hold(
    db: Db,
    settings: ActionSettings,
    flight_id: int,
    *,
    passengers: int = 1,
    cabin: str = "economy",
    email: str = "family@example.com",
    conversation_id: str | None = None,
    client_key: str | None = None,
    now: Any = None,
) -> str:
    extra: dict[str, Any] = {}
    if conversation_id is not None:
        extra["conversation_id"] = conversation_id
    if client_key is not None:
        extra["client_key"] = client_key
    with db.sessions.begin() as s:
        return create_booking(
            s,
            flight_id=flight_id,
            passengers=passengers,
            cabin=cabin,
            last_name="Lee",
            email=email,
            settings=settings.business,
            brand=settings.brand,
            now=now or utc_now(),
            **extra,
        ).reference


def _flights(flight_factory: Callable[..., int], count: int, **kwargs: Any) -> list[int]:
    start = utc_now() + timedelta(days=3)
    return [flight_factory(departure_at=start + timedelta(hours=i), **kwargs) for i in range(count)]


def test_a_family_can_hold_twice(db: Db, limited: ActionSettings, flight_factory: Callable[..., int]) -> None:
    out, back = _flights(flight_factory, 2)
    for flight_id in (out, back):
        _hold(db, limited, flight_id, passengers=4, conversation_id="family", client_key="home")


def test_open_holds_are_limited_per_email(db: Db, limited: ActionSettings, flight_factory: Callable[..., int]) -> None:
    flights = _flights(flight_factory, 4)
    for i, flight_id in enumerate(flights[:3]):
        _hold(db, limited, flight_id, email="Script@Example.com", conversation_id=f"c{i}")
    with pytest.raises(Conflict) as err:
        _hold(db, limited, flights[3], email="script@example.com", conversation_id="c9")
    assert err.value.reason == "too_many_holds"
    with db.sessions() as s:
        assert s.get_one(Flight, flights[3]).seats_economy == 150  # the refused hold took nothing


def test_open_holds_are_limited_per_conversation_and_per_client(
    db: Db, limited: ActionSettings, flight_factory: Callable[..., int]
) -> None:
    flights = _flights(flight_factory, 7)
    for i in range(3):
        _hold(db, limited, flights[i], email=f"a{i}@example.com", conversation_id="one-conv")
    with pytest.raises(Conflict) as err:
        _hold(db, limited, flights[3], email="a9@example.com", conversation_id="one-conv")
    assert err.value.reason == "too_many_holds"
    # New conversations and new e-mails from one client address: the client limit holds.
    for i in range(5):
        _hold(db, limited, flights[i], email=f"b{i}@example.com", conversation_id=f"new-{i}", client_key="k1")
    with pytest.raises(Conflict) as err:
        _hold(db, limited, flights[5], email="b9@example.com", conversation_id="new-9", client_key="k1")
    assert err.value.reason == "too_many_holds"
    _hold(db, limited, flights[6], email="other@example.com", conversation_id="other", client_key="k2")


def test_two_scripted_bookings_cannot_empty_a_business_cabin(
    db: Db, limited: ActionSettings, flight_factory: Callable[..., int]
) -> None:
    (flight_id,) = _flights(flight_factory, 1)  # 12 business seats
    _hold(db, limited, flight_id, passengers=6, cabin="business", email="x1@example.com")
    with pytest.raises(Conflict) as err:
        _hold(db, limited, flight_id, passengers=6, cabin="business", email="x2@example.com")
    assert err.value.reason == "hold_share"
    with db.sessions() as s:
        assert s.get_one(Flight, flight_id).seats_business == 6
    # Paid seats are not holds: once the first booking is paid the cabin's unpaid pool is 6.
    with db.sessions.begin() as s:
        for booking in s.scalars(select(Booking).where(Booking.flight_id == flight_id)):
            booking.status = "confirmed"
    _hold(db, limited, flight_id, passengers=3, cabin="business", email="x3@example.com")
    with pytest.raises(Conflict):
        _hold(db, limited, flight_id, passengers=1, cabin="business", email="x4@example.com")


def test_expired_holds_no_longer_count(db: Db, limited: ActionSettings, flight_factory: Callable[..., int]) -> None:
    flights = _flights(flight_factory, 4)
    now = utc_now()
    for flight_id in flights[:3]:
        _hold(db, limited, flight_id, email="late@example.com", now=now)
    later = now + timedelta(minutes=limited.business.hold_minutes, seconds=1)
    _hold(db, limited, flights[3], email="late@example.com", now=later)


async def test_the_toolbox_stores_client_and_conversation_and_the_action_explains(
    db: Db, limited: ActionSettings, flight_factory: Callable[..., int]
) -> None:
    box = Toolbox(sessions=db.sessions, settings=limited, limiter=InMemoryRateLimiter(), clock=FixedClock(utc_now()))
    flights = _flights(flight_factory, 6)
    created = await box.create_booking(
        Caller("tool-conv", client="client-abc"),
        flight_id=flights[0],
        passengers=1,
        cabin="economy",
        last_name="Lee",
        email="t0@example.com",
    )
    with db.sessions() as s:
        row = s.scalars(select(Booking).where(Booking.reference == created.reference)).one()
        assert (row.conversation_id, row.client_key) == ("tool-conv", "client-abc")
    for i in range(1, 5):
        await box.create_booking(
            Caller(f"tool-conv-{i}", client="client-abc"),
            flight_id=flights[i],
            passengers=1,
            cabin="economy",
            last_name="Lee",
            email=f"t{i}@example.com",
        )

    # Through the action: the sixth hold from the same client gets a clear answer, and the user
    # keeps the offered options (they may pick another or stop).
    use_toolbox(box)
    try:
        options = [{"flight_id": flights[5], "flight_number": "AN9", "departure": "x", "total": "THB 1"}]
        slots = {
            "flight_options": options,
            "flight_id": str(flights[5]),
            "passengers": 1.0,
            "cabin": "economy",
            "last_name": "Lee",
            "email": "t5@example.com",
        }
        history = [{"event": "action", "name": "action_booking_summary"}, {"event": "action", "name": "action_listen"}]
        dispatcher = CollectingDispatcher()
        events = await ActionCreateBooking().run(
            dispatcher,
            tracker(slots, sender="tool-conv-5", client="client-abc", text="yes", intent="affirm", events=history),
            DOMAIN,
        )
    finally:
        use_toolbox(None)
    assert responses(dispatcher) == ["utter_booking_hold_limit"]
    assert SlotSet("flight_options", None) not in events
    with db.sessions() as s:
        assert s.scalar(select(Booking.id).where(Booking.email == "t5@example.com")) is None


def _expired_hold_database(
    tmp_path: Path, settings_factory: Callable[..., ActionSettings]
) -> tuple[ActionSettings, str]:
    settings = settings_factory(f"sqlite:///{tmp_path / 'loop.db'}", SCHEDULE_DAYS=7)
    from tandem.cli import run_seed  # the CLI's own seed (schedule only, no demo data needed)

    run_seed(settings)
    engine = create_engine_from_settings(settings.database)
    try:
        sessions = make_session_factory(engine)
        with sessions() as s:
            flight_id = s.scalars(
                select(Flight.id).where(
                    Flight.departure_at > utc_now() + timedelta(days=2), Flight.status != "cancelled"
                )
            ).first()
        assert flight_id is not None
        with sessions.begin() as s:
            reference = create_booking(
                s,
                flight_id=flight_id,
                passengers=2,
                cabin="economy",
                last_name="Lee",
                email="loop@example.com",
                settings=settings.business,
                brand=settings.brand,
                now=utc_now() - timedelta(hours=2),  # its hold ran out an hour and a half ago
            ).reference
    finally:
        engine.dispose()
    return settings, reference


def _status(settings: ActionSettings, reference: str) -> str:
    engine = create_engine_from_settings(settings.database)
    try:
        with make_session_factory(engine)() as s:
            return s.scalars(select(Booking.status).where(Booking.reference == reference)).one()
    finally:
        engine.dispose()


@pytest.mark.timeout(60)
def test_expire_holds_runs_every_n_seconds_until_sigterm(
    tmp_path: Path, settings_factory: Callable[..., ActionSettings]
) -> None:
    settings, reference = _expired_hold_database(tmp_path, settings_factory)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update({"DATABASE_URL": settings.database.database_url, "SCHEDULE_DAYS": "7", "PYTHONPATH": str(ROOT)})
    log = (tmp_path / "loop.log").open("wb")
    loop = subprocess.Popen(
        [sys.executable, "-m", "tandem.cli", "expire-holds", "--every", "1"],
        cwd=tmp_path,  # no .env from the working tree
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while _status(settings, reference) != "cancelled" and time.monotonic() < deadline:
            assert loop.poll() is None, (tmp_path / "loop.log").read_text()
            time.sleep(0.2)
        assert _status(settings, reference) == "cancelled"
        time.sleep(1.5)  # at least one more run, which finds nothing
        assert loop.poll() is None, "the loop stopped on its own"
        loop.send_signal(signal.SIGTERM)
        assert loop.wait(timeout=10) == 0
    finally:
        if loop.poll() is None:
            loop.kill()
        log.close()
    output = (tmp_path / "loop.log").read_text()
    assert "expired 1 held bookings" in output and "expired 0 held bookings" in output
    assert "Traceback" not in output


def test_expire_holds_without_every_runs_once(tmp_path: Path, settings_factory: Callable[..., ActionSettings]) -> None:
    settings, reference = _expired_hold_database(tmp_path, settings_factory)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update({"DATABASE_URL": settings.database.database_url, "SCHEDULE_DAYS": "7", "PYTHONPATH": str(ROOT)})
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "expire-holds"], cwd=tmp_path, env=env, timeout=60, capture_output=True
    )
    assert done.returncode == 0
    assert _status(settings, reference) == "cancelled"


def test_the_loop_survives_failed_runs(
    tmp_path: Path, settings_factory: Callable[..., ActionSettings], caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading

    from tandem.cli import expire_holds_every

    broken = settings_factory(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables: every run fails
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="tandem.cli")
    loop = threading.Thread(target=expire_holds_every, args=(broken.database, 0.1), kwargs={"stop": stop})
    loop.start()
    time.sleep(1.0)
    assert loop.is_alive()
    stop.set()
    loop.join(timeout=5)
    assert not loop.is_alive()
    failures = [r for r in caplog.records if "expire-holds run failed" in r.getMessage()]
    assert len(failures) >= 3
    assert all("no such table" not in r.getMessage() for r in failures)  # the error type, no SQL text
