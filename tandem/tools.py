"""The tool layer the Rasa action server calls: validation, roles, timeouts, audit.

Every tool call goes through :meth:`Toolbox._call`:

1. the caller's role is checked against :data:`TOOL_ROLES` (``Forbidden``; unknown tools are
   denied);
2. the arguments are validated by the tool's pydantic model (``Invalid(reason="arguments")``);
3. the synchronous service runs in a worker thread, in its own session and transaction, bounded
   by ``settings.tool_timeout_seconds`` (``Unavailable`` on timeout, and on database connection
   or timeout errors);
4. an ``audit_log`` row (caller, role, tool, masked arguments, outcome, duration) is written in
   a separate transaction, whatever the outcome.

A timed-out worker thread cannot be killed; it finishes or fails on its own, bounded by the
database ``statement_timeout``, and its transaction is rolled back if it raises.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from tandem.clock import Clock, local_date, utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unavailable
from tandem.ratelimit import RateLimiter, make_rate_limiter
from tandem.services import accounts, audit, bookings, feedback, flights, handoff, lookup_guard, status
from tandem.services.accounts import ResetMailer
from tandem.services.bookings import BookingCreated, BookingDetails, CancellationQuote, CancellationResult
from tandem.services.common import normalize_email, normalize_flight_number
from tandem.services.flights import SearchResult
from tandem.services.handoff import HandoffTicket
from tandem.services.lookup_guard import LookupAttempt
from tandem.services.status import FlightStatusInfo
from tandem.settings import Settings

log = logging.getLogger(__name__)

Role = Literal["customer", "agent", "admin"]
A = TypeVar("A", bound=BaseModel)
R = TypeVar("R")

_ALL: frozenset[Role] = frozenset({"customer", "agent", "admin"})
_PEOPLE: frozenset[Role] = frozenset({"customer", "agent"})

# Who may call what. Admins operate the system and read, they do not book for customers;
# ratings are the customer's own voice.
TOOL_ROLES: Mapping[str, frozenset[Role]] = {
    "search_flights": _ALL,
    "create_booking": _PEOPLE,
    "get_booking": _ALL,
    "quote_cancellation": _ALL,
    "cancel_booking": _PEOPLE,
    "flight_status": _ALL,
    "request_password_reset": _PEOPLE,
    "create_handoff": _PEOPLE,
    "record_rating": frozenset({"customer"}),
}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the conversation (audit actor), its role, and the client behind it.

    ``client`` is the gateway's opaque key of the client address (a keyed hash, <= 64 chars), or
    None when unknown (rasa shell, tests): limits per client then simply do not apply.
    """

    conversation_id: str
    role: Role = "customer"
    client: str | None = None


# --- argument schemas -----------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


Cabin = Literal["economy", "business"]


class SearchFlightsArgs(_Args):
    origin: str = Field(pattern=r"^[A-Za-z]{3}$")
    destination: str = Field(pattern=r"^[A-Za-z]{3}$")
    date: dt.date
    passengers: int = Field(ge=1, le=9)
    cabin: Cabin
    limit: int | None = Field(default=None, ge=1, le=10)

    @field_validator("origin", "destination")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class CreateBookingArgs(_Args):
    flight_id: int = Field(gt=0)
    passengers: int = Field(ge=1, le=9)
    cabin: Cabin
    last_name: str = Field(min_length=1, max_length=80)
    email: str = Field(max_length=254)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return _pydantic_check(normalize_email, value)


class BookingLookupArgs(_Args):
    reference: str = Field(pattern=r"^[A-Za-z0-9]{6}$")
    last_name: str = Field(min_length=1, max_length=80)

    @field_validator("reference")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class FlightStatusArgs(_Args):
    flight_number: str = Field(max_length=12)
    date: dt.date | None = None  # None: today in the airline's time zone

    @field_validator("flight_number")
    @classmethod
    def _number(cls, value: str) -> str:
        return _pydantic_check(normalize_flight_number, value)


class PasswordResetArgs(_Args):
    email: str = Field(max_length=254)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return _pydantic_check(normalize_email, value)


class HandoffArgs(_Args):
    reason: str = Field(min_length=1, max_length=200)
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    slots: dict[str, Any] = Field(default_factory=dict)
    summary: str = Field(default="", max_length=4000)


class RatingArgs(_Args):
    rating: int = Field(ge=1, le=5)


def _pydantic_check(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except Invalid as exc:
        raise ValueError(str(exc)) from exc


# --- services (injectable for tests) ------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """The service functions the tools call; tests replace one to simulate slowness or failure."""

    search_flights: Callable[..., SearchResult] = flights.search_flights
    create_booking: Callable[..., BookingCreated] = bookings.create_booking
    get_booking: Callable[..., BookingDetails] = bookings.get_booking
    quote_cancellation: Callable[..., CancellationQuote] = bookings.quote_cancellation
    cancel_booking: Callable[..., CancellationResult] = bookings.cancel_booking
    flight_status: Callable[..., FlightStatusInfo] = status.flight_status
    request_password_reset: Callable[..., None] = accounts.request_password_reset
    create_handoff: Callable[..., HandoffTicket] = handoff.create_handoff
    record_rating: Callable[..., int] = feedback.record_rating
    record_audit: Callable[..., int] = audit.record


@dataclass(kw_only=True)
class Toolbox:
    """The business tools, as async methods ``await toolbox.tool(caller, **arguments)``."""

    sessions: sessionmaker[Session]
    settings: Settings
    limiter: RateLimiter
    clock: Clock = utc_now
    services: Services = field(default_factory=Services)
    mailer: ResetMailer | None = None
    engine: Engine | None = None  # set when the toolbox owns it (from_settings)

    @classmethod
    def from_settings(cls, settings: Settings, *, mailer: ResetMailer | None = None) -> Toolbox:
        """Engine, session factory and rate limiter from the settings; call :meth:`close` at exit."""
        engine = create_engine_from_settings(settings)
        return cls(
            sessions=make_session_factory(engine),
            settings=settings,
            limiter=make_rate_limiter(settings),
            mailer=mailer,
            engine=engine,
        )

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    # --- tools --------------------------------------------------------------------------------

    async def search_flights(
        self,
        caller: Caller,
        *,
        origin: str,
        destination: str,
        date: dt.date,
        passengers: int,
        cabin: str,
        limit: int | None = None,
    ) -> SearchResult:
        raw = {
            "origin": origin,
            "destination": destination,
            "date": date,
            "passengers": passengers,
            "cabin": cabin,
            "limit": limit,
        }

        def run(session: Session, a: SearchFlightsArgs, now: dt.datetime) -> SearchResult:
            return self.services.search_flights(
                session,
                origin=a.origin,
                destination=a.destination,
                date=a.date,
                passengers=a.passengers,
                cabin=a.cabin,
                limit=a.limit or self.settings.search_max_options,
                settings=self.settings,
                now=now,
            )

        return await self._call("search_flights", caller, SearchFlightsArgs, raw, run)

    async def create_booking(
        self, caller: Caller, *, flight_id: int, passengers: int, cabin: str, last_name: str, email: str
    ) -> BookingCreated:
        raw = {"flight_id": flight_id, "passengers": passengers, "cabin": cabin, "last_name": last_name, "email": email}

        def run(session: Session, a: CreateBookingArgs, now: dt.datetime) -> BookingCreated:
            return self.services.create_booking(
                session,
                flight_id=a.flight_id,
                passengers=a.passengers,
                cabin=a.cabin,
                last_name=a.last_name,
                email=a.email,
                settings=self.settings,
                now=now,
                conversation_id=caller.conversation_id,
                client_key=caller.client,
            )

        return await self._call("create_booking", caller, CreateBookingArgs, raw, run)

    async def get_booking(self, caller: Caller, *, reference: str, last_name: str) -> BookingDetails:
        def run(session: Session, a: BookingLookupArgs, now: dt.datetime) -> BookingDetails:
            return self._guarded_lookup(
                session,
                caller,
                a,
                now,
                lambda: self.services.get_booking(
                    session, reference=a.reference, last_name=a.last_name, settings=self.settings
                ),
            )

        raw = {"reference": reference, "last_name": last_name}
        return await self._call("get_booking", caller, BookingLookupArgs, raw, run)

    async def quote_cancellation(self, caller: Caller, *, reference: str, last_name: str) -> CancellationQuote:
        def run(session: Session, a: BookingLookupArgs, now: dt.datetime) -> CancellationQuote:
            return self._guarded_lookup(
                session,
                caller,
                a,
                now,
                lambda: self.services.quote_cancellation(
                    session, reference=a.reference, last_name=a.last_name, settings=self.settings, now=now
                ),
            )

        raw = {"reference": reference, "last_name": last_name}
        return await self._call("quote_cancellation", caller, BookingLookupArgs, raw, run)

    async def cancel_booking(self, caller: Caller, *, reference: str, last_name: str) -> CancellationResult:
        def run(session: Session, a: BookingLookupArgs, now: dt.datetime) -> CancellationResult:
            return self._guarded_lookup(
                session,
                caller,
                a,
                now,
                lambda: self.services.cancel_booking(
                    session,
                    reference=a.reference,
                    last_name=a.last_name,
                    settings=self.settings,
                    now=now,
                    conversation_id=caller.conversation_id,
                ),
            )

        raw = {"reference": reference, "last_name": last_name}
        return await self._call("cancel_booking", caller, BookingLookupArgs, raw, run)

    async def flight_status(
        self, caller: Caller, *, flight_number: str, date: dt.date | None = None
    ) -> FlightStatusInfo:
        def run(session: Session, a: FlightStatusArgs, now: dt.datetime) -> FlightStatusInfo:
            day = a.date or local_date(now, self.settings.timezone)
            return self.services.flight_status(
                session, flight_number=a.flight_number, date=day, now=now, settings=self.settings
            )

        raw = {"flight_number": flight_number, "date": date}
        return await self._call("flight_status", caller, FlightStatusArgs, raw, run)

    async def request_password_reset(self, caller: Caller, *, email: str) -> None:
        def run(session: Session, a: PasswordResetArgs, now: dt.datetime) -> None:
            self.services.request_password_reset(
                session,
                email=a.email,
                conversation_id=caller.conversation_id,
                settings=self.settings,
                limiter=self.limiter,
                now=now,
                mailer=self.mailer,
            )

        await self._call("request_password_reset", caller, PasswordResetArgs, {"email": email}, run)

    async def create_handoff(
        self,
        caller: Caller,
        *,
        reason: str,
        transcript: list[dict[str, Any]] | None = None,
        slots: dict[str, Any] | None = None,
        summary: str = "",
    ) -> HandoffTicket:
        """The conversation's open handoff ticket (``created=False``) or a new one (limited)."""
        raw = {"reason": reason, "transcript": transcript or [], "slots": slots or {}, "summary": summary}

        def run(session: Session, a: HandoffArgs, now: dt.datetime) -> HandoffTicket:
            return self.services.create_handoff(
                session,
                conversation_id=caller.conversation_id,
                reason=a.reason,
                transcript=a.transcript,
                slots=a.slots,
                summary=a.summary,
                now=now,
                settings=self.settings,
                limiter=self.limiter,
                client=caller.client,
            )

        # The transcript is in the ticket already; the audit row only needs its size.
        audited = {"reason": reason, "transcript_events": len(transcript or []), "slots": slots or {}}
        return await self._call("create_handoff", caller, HandoffArgs, raw, run, audited=audited)

    async def record_rating(self, caller: Caller, *, rating: int) -> int:
        def run(session: Session, a: RatingArgs, now: dt.datetime) -> int:
            return self.services.record_rating(
                session, conversation_id=caller.conversation_id, rating=a.rating, now=now
            )

        return await self._call("record_rating", caller, RatingArgs, {"rating": rating}, run)

    # --- machinery ----------------------------------------------------------------------------

    async def _call(
        self,
        tool: str,
        caller: Caller,
        model: type[A],
        raw: dict[str, Any],
        run: Callable[[Session, A, dt.datetime], R],
        *,
        audited: dict[str, Any] | None = None,
    ) -> R:
        started = time.perf_counter()
        outcome = "ok"
        try:
            _authorize(tool, caller)
            args = _validate(model, raw)
            now = self.clock()
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(self._in_transaction, run, args, now),
                    timeout=self.settings.tool_timeout_seconds,
                )
            except TimeoutError as exc:
                raise Unavailable(f"{tool} did not finish in time") from exc
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            duration_ms = int((time.perf_counter() - started) * 1000)
            await self._audit(caller, tool, raw if audited is None else audited, outcome, duration_ms)

    def _guarded_lookup(
        self, session: Session, caller: Caller, args: BookingLookupArgs, now: dt.datetime, lookup: Callable[[], R]
    ) -> R:
        """Run a reference + last name lookup under the lock-out of :mod:`tandem.services.lookup_guard`.

        Locked (too many failures for this reference, client or conversation): ``RateLimited``
        before any name is compared. A failed match (``NotFound``) is counted and audited in this
        transaction, which must then commit although the tool fails: :class:`_CommitThenRaise`.
        """
        attempt = LookupAttempt(reference=args.reference, conversation_id=caller.conversation_id, client=caller.client)
        lookup_guard.check(session, attempt=attempt, settings=self.settings, now=now)
        try:
            return lookup()
        except NotFound as exc:
            lookup_guard.record_failure(session, attempt=attempt, settings=self.settings, now=now, role=caller.role)
            raise _CommitThenRaise(exc) from exc

    def _in_transaction(self, run: Callable[[Session, A, dt.datetime], R], args: A, now: dt.datetime) -> R:
        try:
            with self.sessions.begin() as session:
                try:
                    return run(session, args, now)
                except _CommitThenRaise as deferred:
                    error = deferred.error  # leaving the block normally commits what was written
            raise error
        except sa_exc.IntegrityError as exc:
            # A constraint caught a race the service did not (e.g. two identical references).
            raise Conflict("the change conflicts with another one", reason="integrity") from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            # Connection refused/lost, statement timeout, pool exhausted, SQLite busy.
            raise Unavailable("the database is unavailable") from exc
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise Unavailable("the database connection was lost") from exc
            raise

    async def _audit(
        self, caller: Caller, tool: str, arguments: dict[str, Any], outcome: str, duration_ms: int
    ) -> None:
        def write() -> None:
            with self.sessions.begin() as session:
                self.services.record_audit(
                    session,
                    actor=caller.conversation_id,
                    role=caller.role,
                    tool=tool,
                    arguments=arguments,
                    outcome=outcome,
                    duration_ms=duration_ms,
                    at=self.clock(),
                )

        try:
            await asyncio.wait_for(asyncio.to_thread(write), timeout=self.settings.tool_timeout_seconds)
        except Exception:
            # The tool's own result matters more than its audit row; the failure is logged.
            log.exception("could not write the audit row for %s", tool)


class _CommitThenRaise(Exception):
    """Raised inside a tool's transaction: commit what was written, then raise ``error``.

    For failures that must leave a trace (a failed lookup is counted) while the tool still fails.
    """

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


def _authorize(tool: str, caller: Caller) -> None:
    if not isinstance(caller.conversation_id, str) or not 1 <= len(caller.conversation_id) <= 128:
        raise Invalid("the caller needs a conversation id", reason="caller")
    if caller.role not in TOOL_ROLES.get(tool, frozenset()):
        raise Forbidden(f"role {caller.role!r} may not use {tool}")
    if caller.client is not None and (
        not isinstance(caller.client, str) or not 1 <= len(caller.client) <= 64 or not caller.client.isprintable()
    ):
        raise Invalid("the client key must be 1 to 64 printable characters", reason="caller")


def _validate(model: type[A], raw: dict[str, Any]) -> A:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise Invalid(f"invalid arguments: {', '.join(fields)}", reason="arguments") from exc


__all__ = ["TOOL_ROLES", "Caller", "ServiceError", "Services", "Toolbox"]
