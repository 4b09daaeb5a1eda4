"""The tool registry and its one call path: a tool is a registry entry plus a service function.

The nine business tools keep their tests in test_tools.py; this module covers what the registry
adds: ``search_knowledge`` as a tool like the others, calling a tool by name, a new tool
declared in one entry (its own timeout, audit reducer, no database), and the registry's checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tandem.clock import FixedClock, utc_now
from tandem.errors import Forbidden, Invalid, Unavailable
from tandem.knowledge import KnowledgeBase
from tandem.knowledge.index import parse_document
from tandem.ratelimit import InMemoryRateLimiter
from tandem.services import flights
from tandem.tool_registry import Tool, ToolArgs, uses
from tandem.tools import TOOL_ROLES, Caller, Services, Toolbox
from tests.unit.test_tools import _audit_rows, _toolbox

if TYPE_CHECKING:
    from datetime import datetime

    from tests.conftest import Db

CUSTOMER = Caller("conv-registry")

_SPORTS = """# Sports equipment

## Surfboards
One surfboard per passenger travels free on all routes, in a padded bag of up to 2 m.

## Bicycles
Bicycles travel as checked baggage in a box, with pedals removed.
"""
_PETS = """# Pets

## Dogs and cats
Small dogs and cats may travel in the cabin in a carrier of up to 8 kg.
"""


def _kb() -> KnowledgeBase:
    return KnowledgeBase([parse_document("sports-equipment", _SPORTS), parse_document("pets", _PETS)])


# --- search_knowledge -------------------------------------------------------------------------


async def test_search_knowledge_returns_top_passages_with_their_source_and_is_audited(db: Db) -> None:
    kb = _kb()
    tools = _toolbox(db, knowledge=kb)
    result = await tools.search_knowledge(CUSTOMER, query="Can I bring my surfboard?")
    assert result.version == kb.version
    top = result.passages[0]
    assert (top.id, top.source_doc, top.title, top.heading) == (
        "sports-equipment#surfboards",
        "sports-equipment",
        "Sports equipment",
        "Surfboards",
    )
    assert "surfboard per passenger" in top.text and top.score > 0
    assert len(result.passages) <= db.settings.fallback.fallback_top_k
    one = await tools.search_knowledge(Caller("agent-7", "agent"), query="bicycle box", limit=1)
    assert [p.id for p in one.passages] == ["sports-equipment#bicycles"]
    assert (await tools.search_knowledge(CUSTOMER, query="Paris")).passages == ()
    rows = _audit_rows(db)
    assert [(r.tool, r.role, r.outcome, r.actor) for r in rows] == [
        ("search_knowledge", "customer", "ok", "conv-registry"),
        ("search_knowledge", "agent", "ok", "agent-7"),
        ("search_knowledge", "customer", "ok", "conv-registry"),
    ]
    assert rows[0].arguments == {"query": "Can I bring my surfboard?", "limit": None}
    assert rows[1].arguments == {"query": "bicycle box", "limit": 1}


async def test_search_knowledge_checks_roles_and_arguments_and_masks_the_audit_row(db: Db) -> None:
    tools = _toolbox(db, knowledge=_kb())
    with pytest.raises(Forbidden):
        await tools.search_knowledge(Caller("x", "pirate"), query="pets")  # type: ignore[arg-type]
    too_long = "x" * (db.settings.input.max_message_chars + 1)  # the one input cap (MAX_MESSAGE_CHARS)
    for bad in ({"query": ""}, {"query": too_long}, {"query": "pets", "limit": 0}, {"query": "pets", "k": 2}):
        with pytest.raises(Invalid) as err:
            await tools.search_knowledge(CUSTOMER, **bad)
        assert err.value.reason == "arguments"
    found = await tools.search_knowledge(CUSTOMER, query="my dog, write to yuki@example.org or +66 81 234 5678")
    assert found.passages[0].source_doc == "pets"
    rows = _audit_rows(db)
    assert [r.outcome for r in rows] == ["Forbidden", "Invalid", "Invalid", "Invalid", "Invalid", "ok"]
    stored = json.dumps(rows[-1].arguments)
    assert "yuki@" not in stored and "234 5678" not in stored and "my dog" in stored


async def test_search_knowledge_loads_the_configured_knowledge_base_once(db: Db) -> None:
    tools = _toolbox(db)  # no index given: KNOWLEDGE_DIR is indexed on first use, then kept
    first = await tools.search_knowledge(CUSTOMER, query="Can I take my surfboard?")
    assert first.passages[0].source_doc == "sports-equipment"
    assert tools.knowledge_base() is tools.knowledge_base()
    assert (await tools.search_knowledge(CUSTOMER, query="surfboard")).version == first.version


# --- the generic call path --------------------------------------------------------------------


async def test_a_tool_can_be_called_by_name_and_unknown_tools_are_denied_and_audited(db: Db) -> None:
    tools = _toolbox(db)
    assert await tools.call("record_rating", CUSTOMER, rating=5) > 0
    with pytest.raises(Forbidden):
        await tools.call("drop_database", CUSTOMER, everything=True)
    with pytest.raises(Invalid) as err:
        await tools.call("record_rating", CUSTOMER)  # a required argument missing is bad input, not a crash
    assert err.value.reason == "arguments"
    rows = _audit_rows(db)
    assert [(r.tool, r.outcome) for r in rows] == [
        ("record_rating", "ok"),
        ("drop_database", "Forbidden"),
        ("record_rating", "Invalid"),
    ]
    assert rows[1].arguments == {"everything": True}


class EchoArgs(ToolArgs):
    text: str
    pause: float = 0.0


def _echo(*, text: str, pause: float, now: datetime, conversation_id: str) -> str:
    time.sleep(pause)
    return f"{conversation_id}@{now.isoformat()}: {text}"


def _echo_audit(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {"chars": len(str(raw.get("text", "")))}


class EchoToolbox(Toolbox):
    """A toolbox with one more tool: the entry is all it takes (plus the service function)."""

    echo = Tool(
        EchoArgs,
        roles=frozenset({"agent"}),
        service=_echo,
        uses=uses("now", "conversation_id"),
        timeout=0.2,
        database=False,
        audited=_echo_audit,
    )


async def test_a_new_tool_is_one_entry_with_its_own_timeout_and_audit(db: Db) -> None:
    clock = FixedClock(utc_now())
    tools = EchoToolbox(sessions=db.sessions, settings=db.settings, limiter=InMemoryRateLimiter(), clock=clock)
    assert "echo" in tools.tools() and "echo" not in Toolbox.tools()
    agent = Caller("agent-1", "agent")
    assert await tools.call("echo", agent, text="hello") == f"agent-1@{clock().isoformat()}: hello"
    assert await EchoToolbox.echo.__get__(tools)(agent, text="again") == f"agent-1@{clock().isoformat()}: again"
    with pytest.raises(Forbidden):
        await tools.call("echo", CUSTOMER, text="hello")
    started = time.perf_counter()
    with pytest.raises(Unavailable):  # the entry's 0.2 s, not TOOL_TIMEOUT_SECONDS (5 s)
        await tools.call("echo", agent, text="slow", pause=1.0)
    assert time.perf_counter() - started < 0.9
    rows = _audit_rows(db)
    assert [(r.tool, r.outcome, r.arguments) for r in rows] == [
        ("echo", "ok", {"chars": 5}),
        ("echo", "ok", {"chars": 5}),
        ("echo", "Forbidden", {"chars": 5}),
        ("echo", "Unavailable", {"chars": 4}),
    ]


async def test_replaced_service_functions_are_called_with_the_validated_arguments(db: Db) -> None:
    seen: list[dict[str, Any]] = []

    def spy(session: object, **kwargs: Any) -> flights.SearchResult:
        seen.append(kwargs)
        return flights.SearchResult(options=[], nearest_dates=[])

    tools = _toolbox(db, services=Services(search_flights=spy))
    day = utc_now().date()
    await tools.search_flights(CUSTOMER, origin="bkk", destination="cnx", date=day, passengers=1, cabin="economy")
    [kwargs] = seen
    assert [kwargs[k] for k in ("origin", "destination", "cabin", "limit")] == ["BKK", "CNX", "economy", None]
    assert kwargs["settings"] is db.settings.business and kwargs["now"].tzinfo is not None


def test_the_registry_declares_every_tool_once() -> None:
    registry = Toolbox.tools()
    assert sorted(registry) == sorted(TOOL_ROLES)
    assert sorted(registry) == [
        "cancel_booking",
        "create_booking",
        "create_handoff",
        "flight_status",
        "get_booking",
        "quote_cancellation",
        "record_rating",
        "request_password_reset",
        "search_flights",
        "search_knowledge",
    ]
    for name, tool in registry.items():
        assert tool.name == name and getattr(Toolbox, name) is tool
        assert issubclass(tool.args, ToolArgs) and tool.roles and callable(tool.service)
    assert TOOL_ROLES["record_rating"] == frozenset({"customer"})
    assert TOOL_ROLES["search_knowledge"] == frozenset({"customer", "agent", "admin"})


def test_mistakes_in_a_registry_or_a_replacement_are_caught_early(db: Db) -> None:
    def nothing(**kwargs: object) -> NoReturn:
        raise AssertionError

    class Misspelt(Toolbox):
        bad = Tool(EchoArgs, roles=frozenset({"agent"}), service=nothing, uses=uses("settings", when="clock"))

    with pytest.raises(TypeError, match="clock"):
        Misspelt.tools()
    with pytest.raises(TypeError, match="serach_flights"):
        _toolbox(db, services=Services(serach_flights=nothing))
