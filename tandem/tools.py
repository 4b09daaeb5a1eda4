"""The tool layer the Rasa action server calls: validation, roles, timeouts, audit.

The tools are declared once, in :mod:`tandem.tool_registry`; :class:`Toolbox` serves every entry
as an async method (``await toolbox.create_booking(caller, **arguments)``) and by name
(``await toolbox.call("create_booking", caller, **arguments)``). Every call goes through
:meth:`Toolbox.call`:

1. the caller's role is checked against the tool's roles (``Forbidden``; unknown tools are
   denied);
2. the arguments are validated by the tool's pydantic model (``Invalid(reason="arguments")``);
3. the synchronous service runs in a worker thread, in its own session and transaction, bounded
   by the tool's timeout (default ``TOOL_TIMEOUT_SECONDS``; ``Unavailable`` on timeout,
   and on database connection or timeout errors);
4. an ``audit_log`` row (caller, role, tool, masked arguments, outcome, duration) is written in
   a separate transaction, whatever the outcome.

Each call is a span ``tool <name>`` (tandem/tracing.py: the tool, the caller's role, the outcome,
the duration; never the arguments), a child of the action's span.

A timed-out worker thread cannot be killed; it finishes or fails on its own, bounded by the
database ``statement_timeout``, and its transaction is rolled back if it raises.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from tandem import tracing
from tandem.analytics import toolcalls
from tandem.analytics.metrics import ToolMetrics, tool_failed, tool_outcome
from tandem.clock import Clock, utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unavailable
from tandem.ratelimit import RateLimiter
from tandem.runtime import Infrastructure
from tandem.services import audit, lookup_guard
from tandem.services.accounts import ResetMailer
from tandem.services.lookup_guard import LookupAttempt
from tandem.settings import ActionSettings
from tandem.tool_registry import Role, Tool, Tools, tools_of

if TYPE_CHECKING:
    from tandem.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the conversation (audit actor), its role, and the client behind it.

    ``client`` is the gateway's opaque key of the client address (a keyed hash, <= 64 chars), or
    None when unknown (rasa shell, tests): limits per client then simply do not apply.
    ``channel`` is where the message came in (``website``, ``slack``, ``telegram``, ``shell``,
    ``rest``; see :func:`tandem.conversation.channel_name`) and ``correlation_id`` the gateway's
    opaque turn id; both are stored with the audit row (and the channel with tickets), None when
    unknown.
    """

    conversation_id: str
    role: Role = "customer"
    client: str | None = None
    channel: str | None = None
    correlation_id: str | None = None


# What a tool's ``uses`` may name besides the caller's fields (see tandem.tool_registry).
_TOOLBOX_SOURCES = frozenset({"settings", "brand", "fallback", "input", "now", "limiter", "mailer", "knowledge"})


class Services:
    """The service functions behind the tools, replaceable by tool name for tests
    (``Services(create_booking=spy)`` simulates slowness or failure); the rest are the registry's."""

    def __init__(self, *, record_audit: Callable[..., int] = audit.record, **replacements: Callable[..., Any]):
        self.record_audit = record_audit
        self.replacements: Mapping[str, Callable[..., Any]] = MappingProxyType(dict(replacements))

    def function(self, tool: Tool[Any, Any]) -> Callable[..., Any]:
        """The function that serves ``tool``: its replacement, else the registry's service."""
        return self.replacements.get(tool.name, tool.service)


@dataclass(kw_only=True)
class Toolbox(Tools):
    """The business tools of :class:`tandem.tool_registry.Tools`, as async methods
    ``await toolbox.tool(caller, **arguments)``; a subclass may declare more tools."""

    sessions: sessionmaker[Session]
    settings: ActionSettings
    limiter: RateLimiter
    clock: Clock = utc_now
    services: Services = field(default_factory=Services)
    mailer: ResetMailer | None = None
    knowledge: KnowledgeBase | None = None  # None: KNOWLEDGE_DIR is indexed on first use
    engine: Engine | None = None  # set when the toolbox owns it (from_settings)
    infra: Infrastructure | None = None  # closed with the toolbox when it owns it (from_settings)
    metrics: ToolMetrics | None = None  # calls, failures and latency by tool (the action server's registry)
    _knowledge_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _tool_registry: ClassVar[Mapping[str, Tool[Any, Any]] | None] = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.services.replacements) - set(self.tools()))
        if unknown:
            raise TypeError(f"no such tool to replace: {', '.join(unknown)}")

    @classmethod
    def from_settings(
        cls,
        settings: ActionSettings,
        *,
        infra: Infrastructure | None = None,
        mailer: ResetMailer | None = None,
        metrics: ToolMetrics | None = None,
    ) -> Toolbox:
        """Engine, session factory and rate limiter (from ``infra``, the process's composition root,
        else one of its own) from the settings; call :meth:`close` at exit."""
        engine = create_engine_from_settings(settings.database)
        owned = infra is None
        infra = infra or Infrastructure(settings.redis)
        return cls(
            sessions=make_session_factory(engine),
            settings=settings,
            limiter=infra.rate_limiter(),
            mailer=mailer,
            engine=engine,
            infra=infra if owned else None,
            metrics=metrics,
        )

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.infra is not None:
            self.infra.close()

    @classmethod
    def tools(cls) -> Mapping[str, Tool[Any, Any]]:
        """The registry this toolbox serves, by tool name (collected and checked once per class)."""
        registry = vars(cls).get("_tool_registry")  # not inherited: a subclass may declare more tools
        if registry is None:
            registry = cls._tool_registry = _registry(cls)
        return registry

    def knowledge_base(self) -> KnowledgeBase:
        """The knowledge-base index: the one given, else ``KNOWLEDGE_DIR`` indexed once, on first use."""
        with self._knowledge_lock:
            if self.knowledge is None:
                # The fallback package owns the rule for where KNOWLEDGE_DIR is; imported here so
                # that importing the tools does not load the fallback chain.
                from tandem.knowledge import KnowledgeBase
                from tandem.services.fallback.wiring import resolve_knowledge_dir

                self.knowledge = KnowledgeBase.from_directory(
                    resolve_knowledge_dir(self.settings.fallback.knowledge_dir)
                )
            return self.knowledge

    # --- the one call path ------------------------------------------------------------------

    async def call(self, name: str, caller: Caller, /, **arguments: Any) -> Any:
        """Run the tool ``name`` for ``caller``: authorise, validate, run with its timeout, audit."""
        tool = self.tools().get(name)
        raw = tool.raw_arguments(arguments) if tool is not None else dict(arguments)
        label = name if tool is not None else "unknown"  # unknown names stay out of span names, too
        attributes = {"tandem.tool": label, "tandem.caller.role": caller.role}
        with tracing.start_span(f"tool {label}", attributes=attributes) as span:
            started = time.perf_counter()
            outcome = "ok"
            try:
                known = _authorize(tool, name, caller)
                args = _validate(known.args, raw)
                now = self.clock()
                timeout = known.timeout or self.settings.server.tool_timeout_seconds
                try:
                    return await asyncio.wait_for(
                        asyncio.to_thread(self._run, known, caller, args, now), timeout=timeout
                    )
                except TimeoutError as exc:
                    raise Unavailable(f"{name} did not finish in time") from exc
            except BaseException as exc:
                outcome = type(exc).__name__
                raise
            finally:
                seconds = time.perf_counter() - started
                duration_ms = int(seconds * 1000)
                code = tool_outcome(outcome)
                toolcalls.record(name, code, duration_ms)
                if self.metrics is not None and tool is not None:  # unknown names stay out of the labels
                    self.metrics.observe(name, code, seconds)
                # A business answer (not_found ...) is not a failure of the call.
                tracing.set_outcome(span, code, failed=tool_failed(code))
                span.set_attribute("tandem.tool.duration_ms", duration_ms)
                await self._audit(caller, name, tool, raw, outcome, duration_ms)

    def _run(self, tool: Tool[Any, Any], caller: Caller, args: BaseModel, now: dt.datetime) -> Any:
        """In the worker thread: the service with its arguments and what it ``uses``."""
        service = self.services.function(tool)
        kwargs = {name: getattr(args, name) for name in type(args).model_fields}
        kwargs.update(self._used(tool, caller, now))
        if not tool.database:
            return service(**kwargs)

        def run(session: Session) -> Any:
            if tool.lockout:
                return self._guarded_lookup(session, caller, args, now, lambda: service(session, **kwargs))
            return service(session, **kwargs)

        return self._in_transaction(run)

    def _used(self, tool: Tool[Any, Any], caller: Caller, now: dt.datetime) -> dict[str, Any]:
        sources: dict[str, Callable[[], Any]] = {
            "settings": lambda: self.settings.business,
            "brand": lambda: self.settings.brand,
            "fallback": lambda: self.settings.fallback,
            "input": lambda: self.settings.input,
            "now": lambda: now,
            "limiter": lambda: self.limiter,
            "mailer": lambda: self.mailer,
            "knowledge": self.knowledge_base,
        }
        values: dict[str, Any] = {}
        for parameter, source in tool.uses.items():
            values[parameter] = sources[source]() if source in sources else getattr(caller, source)
        return values

    def _guarded_lookup(
        self, session: Session, caller: Caller, args: BaseModel, now: dt.datetime, lookup: Callable[[], R]
    ) -> R:
        """Run a reference + last name lookup under the lock-out of :mod:`tandem.services.lookup_guard`.

        Locked (too many failures for this reference, client or conversation): ``RateLimited``
        before any name is compared. A failed match (``NotFound``) is counted and audited in this
        transaction, which must then commit although the tool fails: :class:`_CommitThenRaise`.
        """
        reference: str = getattr(args, "reference")  # noqa: B009 (lockout tools have one, checked)
        attempt = LookupAttempt(
            reference=reference,
            conversation_id=caller.conversation_id,
            client=caller.client,
            channel=caller.channel,
            correlation_id=caller.correlation_id,
        )
        lookup_guard.check(session, attempt=attempt, settings=self.settings.business, now=now)
        try:
            return lookup()
        except NotFound as exc:
            lookup_guard.record_failure(
                session, attempt=attempt, settings=self.settings.business, now=now, role=caller.role
            )
            raise _CommitThenRaise(exc) from exc

    def _in_transaction(self, run: Callable[[Session], R]) -> R:
        try:
            with self.sessions.begin() as session:
                try:
                    return run(session)
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
        self,
        caller: Caller,
        name: str,
        tool: Tool[Any, Any] | None,
        raw: dict[str, Any],
        outcome: str,
        duration_ms: int,
    ) -> None:
        def write() -> None:
            arguments = tool.audit_arguments(raw) if tool is not None else raw
            with self.sessions.begin() as session:
                self.services.record_audit(
                    session,
                    actor=caller.conversation_id,
                    role=caller.role,
                    tool=name,
                    arguments=arguments,
                    outcome=outcome,
                    duration_ms=duration_ms,
                    at=self.clock(),
                    channel=caller.channel,
                    correlation_id=caller.correlation_id,
                )

        try:
            await asyncio.wait_for(asyncio.to_thread(write), timeout=self.settings.server.tool_timeout_seconds)
        except Exception:
            # The tool's own result matters more than its audit row; the failure is logged.
            log.exception("could not write the audit row for %s", name[:64])


def _registry(cls: type[Toolbox]) -> Mapping[str, Tool[Any, Any]]:
    """The tools declared on ``cls``; a ``uses`` naming nothing the toolbox has is a TypeError."""
    sources = _TOOLBOX_SOURCES | {f.name for f in fields(Caller)}
    found = tools_of(cls)
    for tool in found.values():
        unknown = sorted(set(tool.uses.values()) - sources)
        if unknown:
            raise TypeError(f"tool {tool.name!r} uses unknown values: {', '.join(unknown)}")
    return MappingProxyType(found)


class _CommitThenRaise(Exception):
    """Raised inside a tool's transaction: commit what was written, then raise ``error``.

    For failures that must leave a trace (a failed lookup is counted) while the tool still fails.
    """

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


def _authorize(tool: Tool[Any, Any] | None, name: str, caller: Caller) -> Tool[Any, Any]:
    """The tool, when ``caller`` may use it: a valid caller, a known tool, an allowed role."""
    if not isinstance(caller.conversation_id, str) or not 1 <= len(caller.conversation_id) <= 128:
        raise Invalid("the caller needs a conversation id", reason="caller")
    if tool is None or caller.role not in tool.roles:
        raise Forbidden(f"role {caller.role!r} may not use {name[:64]}")
    if caller.client is not None and (
        not isinstance(caller.client, str) or not 1 <= len(caller.client) <= 64 or not caller.client.isprintable()
    ):
        raise Invalid("the client key must be 1 to 64 printable characters", reason="caller")
    return tool


def _validate(model: type[A], raw: dict[str, Any]) -> A:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        fields_ = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise Invalid(f"invalid arguments: {', '.join(fields_)}", reason="arguments") from exc


# Who may call what (read-only view of the registry).
TOOL_ROLES: Mapping[str, frozenset[Role]] = MappingProxyType({n: t.roles for n, t in Toolbox.tools().items()})

__all__ = ["TOOL_ROLES", "Caller", "ServiceError", "Services", "Toolbox"]
