"""The load benchmark's ordering check and its load shapes (benchmarks/load, issue 15): a stored
history against what the clients sent and got, think times, bursts, button steps, replicas'
processes and their table rows. Pure functions and a mock transport: no servers."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

from benchmarks.load import report
from benchmarks.load.faults import Request, check_history
from benchmarks.load.loadgen import (
    Button,
    GatewayChannelTarget,
    RandomReplicaTarget,
    WebsiteGatewayTarget,
    resolve_step,
    run_level,
    think_seconds,
)
from benchmarks.load.ordering import StoredEvent, check_conversation, check_level, check_turns, stored_turns
from benchmarks.load.procstat import Stat, main_roles, process_tree
from benchmarks.load.stats import Turn


def _sent(
    index: int, text: str, replies: tuple[str, ...], *, burst: int | None = None, error: str | None = None
) -> Turn:
    return Turn(
        session=0,
        index=index,
        text=text,
        latency_ms=10.0,
        status=None if error == "timeout" else 200,
        replies=len(replies),
        error=error,
        correlation_id=None if error == "timeout" else f"c{index}",
        reply_texts=() if error else replies,
        burst=index if burst is None else burst,
    )


class History:
    """Rows of Rasa's `events` table for one conversation, in insertion order."""

    def __init__(self) -> None:
        self.rows: list[StoredEvent] = []
        self.clock = 1000.0

    def add(self, type_name: str, at: float | None = None, **data: Any) -> History:
        self.clock = self.clock + 1 if at is None else at
        self.rows.append(
            StoredEvent(len(self.rows) + 1, type_name, {"event": type_name, "timestamp": self.clock, **data})
        )
        return self

    def start(self) -> History:
        return (
            self.add("action", name="action_session_start").add("session_started").add("action", name="action_listen")
        )

    def turn(self, cid: str | None, text: str, *bots: str, at: float | None = None) -> History:
        self.add("user", at, text=text, metadata={"correlation_id": cid} if cid else {})
        for bot in bots:
            self.add("bot", text=bot)
        return self.add("action", name="action_listen")


SENT = [_sent(0, "hi", ("Hello!",)), _sent(1, "bye", ("Bye!", "Come back soon."))]


def test_a_history_holding_each_turn_once_in_order_has_no_violation() -> None:
    history = History().start().turn("c0", "hi", "Hello!").turn("c1", "bye", "Bye!", "Come back soon.")
    turns, starts = stored_turns(history.rows)
    assert [(t.correlation_id, t.bot_texts) for t in turns] == [("c0", ["Hello!"]), ("c1", ["Bye!", "Come back soon."])]
    assert starts == 1
    assert check_conversation(SENT, history.rows) == {}


def test_a_lost_a_repeated_and_a_foreign_turn_are_counted() -> None:
    history = History().start().turn("c0", "hi", "Hello!").turn("c0", "hi", "Hello!").turn("zz", "what?", "Hm?")
    assert check_conversation(SENT, history.rows) == {"missing": 1, "duplicated": 1, "unexpected": 1}


def test_a_turn_stored_before_an_earlier_one_is_out_of_order() -> None:
    history = History().start().turn("c1", "bye", "Bye!", "Come back soon.").turn("c0", "hi", "Hello!")
    assert check_conversation(SENT, history.rows) == {"out_of_order": 1}


def test_turns_of_one_burst_may_be_stored_in_any_order_but_not_before_an_earlier_burst() -> None:
    sent = [
        _sent(0, "a", ("A",), burst=0),
        _sent(1, "b", ("B",), burst=1),
        _sent(2, "c", ("C",), burst=1),
        _sent(3, "d", ("D",), burst=2),
    ]
    swapped = History().start().turn("c0", "a", "A").turn("c2", "c", "C").turn("c1", "b", "B").turn("c3", "d", "D")
    assert check_conversation(sent, swapped.rows) == {}
    late = History().start().turn("c1", "b", "B").turn("c0", "a", "A").turn("c2", "c", "C").turn("c3", "d", "D")
    assert check_conversation(sent, late.rows) == {"out_of_order": 1}


def test_replies_of_another_turn_between_a_user_event_and_the_next_are_interleaved() -> None:
    history = History().start().turn("c0", "hi", "Hello!", "Bye!").turn("c1", "bye", "Come back soon.")
    assert check_conversation(SENT, history.rows) == {"interleaved": 2}


def test_two_turns_that_ran_at_once_are_concurrent_even_when_stored_one_after_the_other() -> None:
    # What Rasa's RedisLockStore lets through: two replicas each run a turn on the same tracker; each
    # saves its own block, but the second turn's user event is older than the first turn's end.
    history = History().start().turn("c0", "hi", "Hello!")
    history.add("session_started", at=1001.5)  # the second replica also found the conversation new
    history.turn("c1", "bye", "Bye!", "Come back soon.", at=1002.0)
    assert history.rows[3].timestamp == 1004.0  # "hi" at 1004, its last event at 1006
    found = check_conversation(SENT, history.rows)
    assert found == {"concurrent": 1, "extra_session_start": 1}


def test_a_turn_the_client_gave_up_on_may_be_stored_or_not() -> None:
    sent = [_sent(0, "hi", ("Hello!",)), _sent(1, "slow", (), error="timeout"), _sent(2, "bye", ("Bye!",))]
    stored = History().start().turn("c0", "hi", "Hello!").turn("cx", "slow", "Sorry.").turn("c2", "bye", "Bye!")
    assert check_conversation(sent, stored.rows) == {}
    skipped = History().start().turn("c0", "hi", "Hello!").turn("c2", "bye", "Bye!")
    assert check_conversation(sent, skipped.rows) == {}
    errored = [_sent(0, "hi", ("Hello!",)), _sent(1, "bye", (), error="status_502")]
    assert check_conversation(errored, History().start().turn("c0", "hi", "Hello!").rows) == {}


def test_the_level_rule_and_the_faults_rule_differ_on_a_failed_turn_stored_once() -> None:
    # One history, two rules (one walk, check_turns): turn 1 failed (a 502: the client knows its
    # correlation id) yet Rasa stored it once, with a reply its client never got.
    stored = History().start().turn("c0", "hi", "Hello!").turn("c1", "slow", "Sorry.").turn("c2", "bye", "Bye!")
    level = [_sent(0, "hi", ("Hello!",)), _sent(1, "slow", (), error="status_502"), _sent(2, "bye", ("Bye!",))]
    assert level[1].correlation_id == "c1"
    assert check_conversation(level, stored.rows) == {}

    def request(index: int, text: str, outcome: str, replies: tuple[str, ...] = ()) -> Request:
        status = 200 if outcome == "ok" else 502
        return Request(
            0,
            index,
            text,
            float(index),
            index + 0.5,
            status,
            outcome,
            None,
            outcome != "ok",
            correlation_id=f"c{index}",
            reply_texts=replies,
        )

    faults = [
        Request(0, -1, "(session)", 0.0, 0.1, 201, "ok", None, False),  # a session opening: not a turn
        request(0, "hi", "ok", ("Hello!",)),
        request(1, "slow", "retryable"),
        request(2, "bye", "ok", ("Bye!",)),
    ]
    assert check_history(faults, stored.rows) == {"failed_stored": 1}

    # The same walk called directly: only count_failed tells the two rules apart.
    def ok(t: Turn) -> bool:
        return t.error is None

    def order(t: Turn) -> int:
        return t.index

    assert check_turns(level, stored.rows, ok=ok, order=order) == {}
    assert check_turns(level, stored.rows, ok=ok, order=order, count_failed=True) == {"failed_stored": 1}
    # Not stored at all: nothing for the level rule, only counted under faults.
    skipped = History().start().turn("c0", "hi", "Hello!").turn("c2", "bye", "Bye!")
    assert check_conversation(level, skipped.rows) == {}
    assert check_history(faults, skipped.rows) == {"failed_not_stored": 1}


def test_a_level_sums_the_conversations_and_skips_sessions_without_a_sender() -> None:
    good = History().start().turn("c0", "hi", "Hello!").turn("c1", "bye", "Bye!", "Come back soon.")
    bad = History().start().turn("c0", "hi", "Hello!")
    turns = [
        *SENT,
        *[Turn(1, t.index, t.text, 1.0, 200, 1, None, t.correlation_id, t.reply_texts, t.burst) for t in SENT],
        *[Turn(2, t.index, t.text, 1.0, 200, 1, None, t.correlation_id, t.reply_texts, t.burst) for t in SENT],
    ]
    result = check_level(turns, ["s0", "s1", None], {"s0": good.rows, "s1": bad.rows})
    assert result["conversations"] == 2 and result["unchecked_sessions"] == 1
    assert result["violations"] == 1 and result["by_kind"]["missing"] == 1
    assert result["conversations_with_violations"] == 1 and result["examples"][0]["sender"] == "s1"
    assert result["user_events"] == 3 and result["http_errors"] == 0 and not result["holds"]
    assert check_level(SENT, ["s0"], {"s0": good.rows})["holds"]


def test_a_button_step_sends_the_payload_of_the_matching_button_else_its_fallback() -> None:
    step = Button("business", fallback="business")
    offered = [
        {"text": "Which cabin?", "buttons": [{"title": "Economy", "payload": '/inform{"cabin": "economy"}'}]},
        {"buttons": [{"title": "Business class", "payload": '/inform{"cabin": "business"}'}]},
    ]
    assert resolve_step(step, offered) == '/inform{"cabin": "business"}'
    assert resolve_step(step, [{"text": "Hm?"}]) == "business"
    assert resolve_step(step, None) == "business"
    assert resolve_step("hi", offered) == "hi"
    assert str(step) == "[button business]"


def test_think_times_have_the_mean_asked_for() -> None:
    rng = random.Random(7)
    for distribution in ("exponential", "uniform"):
        draws = [think_seconds(rng, 45.0, distribution) for _ in range(20000)]
        assert sum(draws) / len(draws) == pytest.approx(45.0, rel=0.03)
        assert min(draws) >= 0
    assert think_seconds(rng, 0.0) == 0.0
    with pytest.raises(ValueError):
        think_seconds(rng, 1.0, "normal")


async def test_bursts_send_consecutive_turns_at_once_and_keep_their_correlation_ids() -> None:
    in_flight = peak = 0
    seen: list[dict[str, Any]] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        body = json.loads(request.content)
        seen.append(body)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=[{"text": f"re: {body['message']}"}])

    target = GatewayChannelTarget("http://rasa.test", "t" * 32, script=["a", "b", "c", "d", "e"])
    run = await run_level(
        target,
        sessions=1,
        turns=5,
        duration=None,
        bursts=(2, 3),
        seed=1,
        progress=False,
        transport=httpx.MockTransport(answer),
    )
    turns = sorted(run.turns, key=lambda t: t.index)
    assert [t.text for t in turns] == ["a", "b", "c", "d", "e"]
    assert peak >= 2  # a burst's turns were in flight together
    bursts = [t.burst for t in turns]
    assert bursts == sorted(bursts) and len(set(bursts)) < 5
    assert all(t.reply_texts == (f"re: {t.text}",) for t in turns)
    assert {t.correlation_id for t in turns} == {b["metadata"]["correlation_id"] for b in seen}
    assert run.senders == [seen[0]["sender"]]


def test_a_role_of_several_replicas_is_all_their_trees_and_details_stay_out_of_the_totals() -> None:
    stats = {
        10: Stat(10, 1, 5),  # the load generator
        20: Stat(20, 10, 100),  # Rasa replica 0
        21: Stat(21, 20, 7),  # a child of replica 0
        30: Stat(30, 10, 200),  # Rasa replica 1
        40: Stat(40, 10, 50),  # the gateway
    }
    roles = {"rasa": (20, 30), "rasa#0": 20, "gateway": 40, "loadgen": 10}
    roots = frozenset({10, 20, 30, 40})
    assert sorted(process_tree((20, 30), stats, roots)) == [20, 21, 30]
    assert sorted(process_tree(20, stats, roots)) == [20, 21]
    assert process_tree(10, stats, roots) == [10]
    assert main_roles(roles) == {"rasa": (20, 30), "gateway": 40, "loadgen": 10}


def test_rows_are_named_by_their_configuration() -> None:
    base = {"bot": "tandem", "pipeline": "minilm", "think_s": 0}
    production = {**base, "production": True, "replicas": 2, "lock_store": "atomic", "door": "gateway"}
    assert report.label("x", {"config": production}) == (
        "tandem, production: PostgreSQL + atomic lock store, 2 Rasa replicas, through the website gateway"
    )
    adversarial = {**production, "door": "adversarial", "lock_store": "redis", "bursts": [2, 3], "think_s": 45}
    assert report.label("x", {"config": adversarial}) == (
        "tandem, production: PostgreSQL + Rasa's RedisLockStore, 2 Rasa replicas, adversarial (each turn to a "
        "random replica, bursts of 2-3), think 45 s"
    )
    assert report.label("stock", {"config": {"bot": "stock", "think_s": 0}}) == "stock `rasa init` bot (REST channel)"
    assert report.label("tandem-gateway") == "tandem through the website gateway"  # an entry from before
    ordering = {"violations": 3, "by_kind": {"missing": 1, "concurrent": 2, "duplicated": 0}}
    assert report.fmt_violations(ordering) == "3 (missing 1, concurrent 2)"
    assert report.fmt_violations(None) == "—"
    assert report.fmt_process({"rss_max_mib": 2300.0, "cpu_percent": 150.0, "pids": [20, 30]}) == (
        "2300 MiB · 150 % (2 processes)"
    )


def test_the_sender_of_a_gateway_session_is_the_conversation_id_the_gateway_derives() -> None:
    from tandem.gateway.sessions import SessionCodec

    secret = "s" * 16 + "0123456789abcdef"
    token, session = SessionCodec(secret.encode(), ttl_seconds=3600).issue()
    target = WebsiteGatewayTarget("http://gateway.test", secret=secret)
    assert target.sender(token) == session.conversation_id
    assert WebsiteGatewayTarget("http://gateway.test").sender(token) is None


async def test_the_adversarial_mode_spreads_each_burst_over_the_replicas() -> None:
    hosts: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        hosts.append((body["message"], request.url.host))
        return httpx.Response(200, json=[{"text": "ok"}])

    target = RandomReplicaTarget(
        ["http://r0.test", "http://r1.test"], "t" * 32, script=["a", "b", "c", "d"], rng=random.Random(3)
    )
    run = await run_level(
        target,
        sessions=1,
        turns=4,
        duration=None,
        bursts=(2, 2),
        progress=False,
        transport=httpx.MockTransport(answer),
    )
    where = dict(hosts)
    assert {where["a"], where["b"]} == {where["c"], where["d"]} == {"r0.test", "r1.test"}
    assert [t.burst for t in sorted(run.turns, key=lambda t: t.index)] == [0, 0, 1, 1]
