"""The tool registry: every tool the assistant may call, declared once.

A tool is one :class:`Tool` entry, an attribute of :class:`Tools`: the schema of its arguments
(a pydantic model), the roles that may call it, the service function that does the work, what
that function needs besides the arguments (:func:`uses`), its timeout, and how its arguments are
audited. :class:`tandem.tools.Toolbox` inherits the entries and serves each one as an async
method, ``await toolbox.create_booking(caller, **arguments)`` (or
``await toolbox.call("create_booking", caller, **arguments)``), through its one call path:
authorise, validate, run in a worker thread with a timeout in one transaction, audit.

The service is called as ``service(session, **validated_arguments, **used)``; ``database=False``
drops the session (and the transaction) for tools that never touch the database. What a service
may use: ``settings`` (the business rules), ``brand``, ``fallback`` (the fallback chain's
settings), ``input`` (the input cap), ``now`` (the toolbox clock, read once per call),
``limiter``, ``mailer``, ``knowledge`` (the knowledge-base index) and every field of the :class:`~tandem.tools.Caller`
(``conversation_id``, ``role``, ``client``, ...); :meth:`Toolbox.tools` refuses other names.

This module sits in the tool layer: it imports the services, never the other way round.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Generic, Literal, Protocol, TypeVar, cast, overload

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from tandem.errors import Invalid
from tandem.services import accounts, bookings, feedback, flights, handoff, knowledge, status
from tandem.services.common import require_email
from tandem.settings import MAX_MESSAGE_CHARS_CEILING

Role = Literal["customer", "agent", "admin"]
ALL: frozenset[Role] = frozenset({"customer", "agent", "admin"})
PEOPLE: frozenset[Role] = frozenset({"customer", "agent"})

A = TypeVar("A", bound="ToolArgs")
R = TypeVar("R")
AuditReducer = Callable[[Mapping[str, Any]], dict[str, Any]]


class ToolArgs(BaseModel):
    """Base of the argument schemas: unknown arguments are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class _Host(Protocol):
    """What a tool needs from the object it is read from: the generic call path."""

    async def call(self, name: str, caller: Any, /, **arguments: Any) -> Any: ...


def uses(*names: str, **renamed: str) -> Mapping[str, str]:
    """What a service takes besides its arguments: ``uses("settings", "now", client_key="client")``
    passes ``settings=``, ``now=`` and ``client_key=`` set to the caller's ``client``."""
    return MappingProxyType({**{name: name for name in names}, **renamed})


class Tool(Generic[A, R]):
    """One tool: declared as a class attribute, whose name becomes the tool's name.

    Read from a toolbox instance it is the tool's async method ``(caller, **arguments) -> R``;
    read from the class it is this entry (for the registry, the docs and the tests).
    """

    def __init__(
        self,
        args: type[A],
        *,
        roles: frozenset[Role],
        service: Callable[..., R],
        uses: Mapping[str, str] = MappingProxyType({}),
        timeout: float | None = None,
        database: bool = True,
        lockout: bool = False,
        audited: AuditReducer | None = None,
    ) -> None:
        """``timeout``: seconds (None: ``TOOL_TIMEOUT_SECONDS``); ``lockout``: a reference + last name
        look-up run under the failed-look-up lock-out; ``audited``: reduces the arguments as passed
        to what the audit row keeps (default: all of them, masked by the audit service)."""
        if lockout and not {"reference", "last_name"} <= set(args.model_fields):
            raise TypeError("a lockout tool takes a reference and a last name")
        if timeout is not None and timeout <= 0:
            raise ValueError("a tool's timeout must be positive")
        self.name = ""
        self.args = args
        self.roles = roles
        self.service = service
        self.uses = uses
        self.timeout = timeout
        self.database = database
        self.lockout = lockout
        self.audited = audited

    def __set_name__(self, owner: type, name: str) -> None:
        if self.name and self.name != name:
            raise TypeError(f"tool {self.name!r} is declared again as {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, {self.args.__name__}, roles={sorted(self.roles)})"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Tool[A, R]: ...

    @overload
    def __get__(self, obj: _Host, owner: type | None = None) -> Callable[..., Awaitable[R]]: ...

    def __get__(self, obj: _Host | None, owner: type | None = None) -> Tool[A, R] | Callable[..., Awaitable[R]]:
        if obj is None:
            return self
        name = self.name

        async def method(caller: Any, /, **arguments: Any) -> R:
            return cast(R, await obj.call(name, caller, **arguments))

        method.__name__ = method.__qualname__ = name
        method.__doc__ = self.service.__doc__
        return method

    def raw_arguments(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as passed, plus the schema's defaults of those left out (the audit row
        names every argument); unknown ones are kept for validation to refuse."""
        raw: dict[str, Any] = {}
        for name, info in self.args.model_fields.items():
            if name in given:
                raw[name] = given[name]
            elif not info.is_required():
                raw[name] = info.get_default(call_default_factory=True)
        raw.update({k: v for k, v in given.items() if k not in raw})
        return raw

    def audit_arguments(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """What the audit row keeps of ``raw`` (masked later by the audit service)."""
        return dict(raw) if self.audited is None else self.audited(raw)


def tools_of(cls: type) -> dict[str, Tool[Any, Any]]:
    """Every tool declared on ``cls`` and its bases, by name (a subclass may add or replace one)."""
    found: dict[str, Tool[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Tool):
                found[name] = value
            elif name in found:
                del found[name]
    return found


# --- argument schemas -----------------------------------------------------------------------


def _strict(check: Callable[[str], str]) -> AfterValidator:
    """A ``require_*`` check of :mod:`tandem.services.common` as a pydantic validator."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except Invalid as exc:
            raise ValueError(str(exc)) from exc

    return AfterValidator(validate)


Cabin = Literal["economy", "business"]
Airport = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$"), AfterValidator(str.upper)]
Passengers = Annotated[int, Field(ge=1, le=9)]
LastName = Annotated[str, Field(min_length=1, max_length=80)]
Email = Annotated[str, Field(max_length=254), _strict(require_email)]
Reference = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{6}$"), AfterValidator(str.upper)]
# The shape of any airline's flight number (designator + 2-4 digits); the service checks the prefix
# (FLIGHT_NUMBER_PREFIX) with the brand settings.
FlightNumber = Annotated[
    str,
    Field(max_length=12, pattern=r"^\s*[A-Za-z0-9]{2}[\s-]?[0-9]{2,4}\s*$"),
    AfterValidator(lambda value: "".join(value.replace("-", " ").split()).upper()),
]


class SearchFlightsArgs(ToolArgs):
    origin: Airport
    destination: Airport
    date: dt.date
    passengers: Passengers
    cabin: Cabin
    limit: int | None = Field(default=None, ge=1, le=10)  # None: SEARCH_MAX_OPTIONS


class CreateBookingArgs(ToolArgs):
    flight_id: int = Field(gt=0)
    passengers: Passengers
    cabin: Cabin
    last_name: LastName
    email: Email


class BookingLookupArgs(ToolArgs):
    reference: Reference
    last_name: LastName


class FlightStatusArgs(ToolArgs):
    flight_number: FlightNumber
    date: dt.date | None = None  # None: today in the airline's time zone


class PasswordResetArgs(ToolArgs):
    email: Email


class HandoffArgs(ToolArgs):
    reason: str = Field(min_length=1, max_length=200)
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    slots: dict[str, Any] = Field(default_factory=dict)
    summary: str = Field(default="", max_length=4000)
    llm_summary: str | None = Field(default=None, max_length=1000)

    @field_validator("transcript", "slots", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object, info: Any) -> object:
        if value is None:
            return [] if info.field_name == "transcript" else {}
        return value


class RatingArgs(ToolArgs):
    rating: int = Field(ge=1, le=5)


class KnowledgeArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS_CEILING)  # the edge applies MAX_MESSAGE_CHARS
    limit: int | None = Field(default=None, ge=1, le=10)  # None: FALLBACK_TOP_K


def _handoff_audit(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The transcript is in the ticket already; the audit row only needs its size."""
    transcript = raw.get("transcript")
    return {
        "reason": raw.get("reason"),
        "transcript_events": len(transcript) if isinstance(transcript, list | tuple) else 0,
        "slots": raw.get("slots") or {},
    }


# --- the registry -----------------------------------------------------------------------------


class Tools:
    """Every tool, one entry each. Admins operate the system and read, they do not book for
    customers; ratings are the customer's own voice."""

    search_flights = Tool(SearchFlightsArgs, roles=ALL, service=flights.search_flights, uses=uses("settings", "now"))
    create_booking = Tool(
        CreateBookingArgs,
        roles=PEOPLE,
        service=bookings.create_booking,
        uses=uses("settings", "brand", "now", "conversation_id", client_key="client"),
    )
    get_booking = Tool(BookingLookupArgs, roles=ALL, service=bookings.get_booking, uses=uses("settings"), lockout=True)
    quote_cancellation = Tool(
        BookingLookupArgs,
        roles=ALL,
        service=bookings.quote_cancellation,
        uses=uses("settings", "now"),
        lockout=True,
    )
    cancel_booking = Tool(
        BookingLookupArgs,
        roles=PEOPLE,
        service=bookings.cancel_booking,
        uses=uses("settings", "now", "conversation_id", "channel"),
        lockout=True,
    )
    flight_status = Tool(
        FlightStatusArgs, roles=ALL, service=status.flight_status, uses=uses("settings", "brand", "now")
    )
    request_password_reset = Tool(
        PasswordResetArgs,
        roles=PEOPLE,
        service=accounts.request_password_reset,
        uses=uses("settings", "now", "conversation_id", "limiter", "mailer"),
    )
    create_handoff = Tool(  # the conversation's open ticket (created=False) or a new one (limited)
        HandoffArgs,
        roles=PEOPLE,
        service=handoff.create_handoff,
        uses=uses("settings", "now", "conversation_id", "limiter", "client", "channel"),
        audited=_handoff_audit,
    )
    record_rating = Tool(
        RatingArgs, roles=frozenset({"customer"}), service=feedback.record_rating, uses=uses("now", "conversation_id")
    )
    search_knowledge = Tool(
        KnowledgeArgs,
        roles=ALL,
        service=knowledge.search_knowledge,
        uses=uses("knowledge", "fallback", limits="input"),
        database=False,
    )


__all__ = ["ALL", "PEOPLE", "Role", "Tool", "ToolArgs", "Tools", "tools_of", "uses"]
