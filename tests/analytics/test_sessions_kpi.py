"""Sessions from Rasa events, and the KPI report over them: every definition, on scripted events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tandem.analytics.kpi import KPI_KEYS, Window, kpi_report, percentile
from tandem.analytics.sessions import sessions_of

from .events import Script, fallback

HOUR = 3600.0


def booking(sender: str = "booker", channel: str = "website") -> Script:
    """Greets, books a flight (tools ok), says goodbye and rates 5."""
    s = Script(sender, channel=channel).start()
    s.user("hi").utter("utter_greet").listen()
    s.user("book a flight", "book_flight").action("flight_booking_form").slot("tool_calls", [])
    s.action("action_search_flights").slot("tool_calls", [{"tool": "search_flights", "outcome": "ok", "ms": 12}])
    s.slot("task_outcome", "flights_listed").bot(text="options").listen()
    s.user("/affirm", "affirm").action("action_create_booking")
    s.slot("tool_calls", [{"tool": "create_booking", "outcome": "ok", "ms": 30}])
    s.slot("task_outcome", "booking_created").bot(text="booked").listen()
    s.user("bye", "goodbye").utter("utter_goodbye").utter("utter_ask_rating").listen()
    s.user("/rate", "rate").action("action_record_rating").slot("rating", 5.0).bot(text="thanks").listen()
    return s


def test_a_booking_session_in_numbers() -> None:
    [record] = sessions_of("booker", booking().events)
    assert record.user_turns == 5
    assert record.engaged and record.success and not record.handoff
    assert record.outcomes == ("flights_listed", "booking_created")
    assert (record.rating, record.rating_asked) == (5, True)
    assert (record.tool_calls, record.tool_failures, record.error_turns) == (2, 0, 0)
    assert record.fallback_turns == 0 and record.channel == "website"
    assert len(record.turn_latencies_ms) == 5
    assert all(ms > 0 for ms in record.turn_latencies_ms)
    assert record.first_response_ms == 20  # user → utter_greet's action (10 ms) → its message (10 ms)


def test_small_talk_alone_is_not_engaged_and_external_events_are_not_turns() -> None:
    s = Script("chat").start()
    s.user("hi").utter("utter_greet").listen()
    s.user("EXTERNAL: handoff_returned", "handoff_returned", external=True).action("action_handoff_returned")
    s.bot("utter_handoff_returned").listen()
    s.user("thanks", "thank").utter("utter_youre_welcome").listen()
    [record] = sessions_of("chat", s.events)
    assert record.user_turns == 2 and not record.engaged


def test_sessions_split_at_session_started_and_know_their_successor() -> None:
    s = booking()
    s.start(after=2 * HOUR)
    s.user("where is AN204", "flight_status").action("flight_status_form").action("action_flight_status")
    s.slot("task_outcome", "flight_status_answered").bot(text="on time").listen()
    first, second = sessions_of("booker", s.events)
    assert first.outcomes == ("flights_listed", "booking_created")
    assert second.outcomes == ("flight_status_answered",) and second.rating is None
    assert first.next_started_at == second.started_at and second.next_started_at is None
    assert second.started_at - first.ended_at == pytest.approx(2 * HOUR, abs=1)


def test_a_session_without_a_user_message_is_not_a_session() -> None:
    s = Script("empty").start().start(after=10)
    assert sessions_of("empty", s.events) == []


def test_fallback_turns_by_stage_with_tokens_cost_and_cache() -> None:
    s = Script("fb").start()
    s.user("can I bring my surfboard", "nlu_fallback", 0.3).action("action_fallback")
    s.slot("fallback_decision", fallback("answer", model=True, prompt=900, completion=60, cost="0.00123"))
    s.slot("task_outcome", "knowledge_answered").bot(text="yes").listen()
    s.user("and a kite?", "nlu_fallback", 0.3).action("action_fallback")
    s.slot("fallback_decision", fallback("answer", cached=True)).slot("task_outcome", "knowledge_answered")
    s.bot(text="yes").listen()
    s.user("what is the meaning of life", "out_of_scope", 0.8).action("action_fallback")
    s.slot("fallback_decision", fallback("refuse")).slot("task_outcome", "refused").bot(text="no").listen()
    [record] = sessions_of("fb", s.events)
    assert record.fallback_turns == 3
    assert record.fallback_stages == {"answer": 2, "refuse": 1}
    assert (record.llm_prompt_tokens, record.llm_completion_tokens) == (900, 60)
    assert record.llm_cost == Decimal("0.00123")
    assert (record.llm_answers, record.llm_cache_hits) == (2, 1)
    assert record.success  # a grounded answer is a success, the refusal does not undo it


def test_a_handoff_keeps_its_reason_and_a_failed_tool_marks_the_turn() -> None:
    s = Script("ho").start()
    s.user("where is my booking", "check_booking").action("booking_lookup_form").action("action_get_booking")
    s.slot("tool_calls", [{"tool": "get_booking", "outcome": "unavailable", "ms": 5000}]).bot(text="down").listen()
    s.user("a person please", "request_human").action("action_handoff")
    s.slot("tool_calls", [{"tool": "create_handoff", "outcome": "ok", "ms": 20}])
    s.slot("handoff_reason", "user_request").slot("task_outcome", "handoff").bot(text="ticket").listen()
    [record] = sessions_of("ho", s.events)
    assert record.handoff_reason == "user_request" and not record.success
    assert (record.tool_calls, record.tool_failures, record.error_turns) == (2, 1, 1)


def test_a_business_no_from_a_tool_is_not_a_failure() -> None:
    s = Script("nf").start()
    s.user("booking ABC123", "check_booking").action("action_get_booking")
    s.slot("tool_calls", [{"tool": "get_booking", "outcome": "not_found", "ms": 8}])
    s.slot("task_outcome", "not_found").bot(text="no such booking").listen()
    [record] = sessions_of("nf", s.events)
    assert (record.tool_calls, record.tool_failures, record.success) == (1, 0, False)


def test_unknown_outcome_codes_and_junk_events_are_ignored() -> None:
    s = Script("junk").start()
    s.user("book", "book_flight").action("action_create_booking").slot("task_outcome", "world_peace")
    s.slot("rating", 9).slot("fallback_decision", "not a dict").slot("tool_calls", "nope").listen()
    events = [*s.events, "not an event", {"event": "user"}, {"timestamp": "x"}]
    [record] = sessions_of("junk", events)
    assert record.outcomes == () and record.rating is None and record.tool_calls == 0


def _mix() -> list:
    """Five sessions: a booking (rated 5), a FAQ (rated 2), a handoff, an abandoned one, small talk."""
    records = sessions_of("booker", booking().events)
    faq = Script("faq", channel="slack").start()
    faq.user("baggage allowance?", "faq", 0.95).action("action_answer_faq").slot("task_outcome", "faq_answered")
    faq.bot("utter_faq/baggage").listen().user("bye", "goodbye").utter("utter_goodbye").utter("utter_ask_rating")
    faq.listen().user("2", "rate").action("action_record_rating").slot("rating", 2.0).bot(text="thanks").listen()
    records += sessions_of("faq", faq.events)
    ho = Script("ho", channel="telegram").start()
    ho.user("human", "request_human").action("action_handoff").slot("handoff_reason", "user_request")
    ho.slot("task_outcome", "handoff").bot(text="ticket").listen()
    records += sessions_of("ho", ho.events)
    gone = Script("gone").start()
    gone.user("cancel my booking", "cancel_booking").action("booking_lookup_form").bot(text="reference?").listen()
    records += sessions_of("gone", gone.events)
    hi = Script("hi").start()
    hi.user("hello").utter("utter_greet").listen()
    records += sessions_of("hi", hi.events)
    return records


def test_the_report_of_a_known_mix() -> None:
    records = _mix()
    now = max(r.ended_at for r in records) + 2 * HOUR  # every session is over
    report = kpi_report(records, now=now, idle_seconds=HOUR)
    assert set(KPI_KEYS) <= set(report)
    assert report["sessions"] == 5 and report["engaged_sessions"] == 4
    assert report["containment_rate"] == 0.75  # 3 of 4 engaged without a handoff
    assert report["task_success_rate"] == 0.5  # booking, FAQ
    assert report["handoff_rate"] == 0.25 and report["handoffs_by_reason"] == {"user_request": 1}
    assert report["abandonment_rate"] == 0.25  # "gone": no success, no handoff, over
    assert report["csat"] == 0.5 and report["csat_mean"] == 3.5 and report["csat_response_rate"] == 1.0
    assert report["tool_success_rate"] == 1.0 and report["tool_calls"] == 2
    assert report["fallback_rate"] == 0.0 and report["cache_hit_rate"] is None
    assert report["cost_per_conversation"] == 0.0
    assert report["channels"] == {"slack": 1, "telegram": 1, "website": 3}


def test_a_session_still_going_is_not_abandoned_yet() -> None:
    records = _mix()
    now = max(r.ended_at for r in records) + 60  # a minute later: "gone" may still answer
    assert kpi_report(records, now=now, idle_seconds=HOUR)["abandonment_rate"] == 0.0


def test_the_window_filters_by_start_and_channel() -> None:
    records = _mix()
    now = max(r.ended_at for r in records) + 2 * HOUR
    slack = kpi_report(records, now=now, idle_seconds=HOUR, window=Window(channel="slack"))
    assert slack["sessions"] == 1 and slack["task_success_rate"] == 1.0 and slack["csat"] == 0.0
    after = kpi_report(records, now=now, idle_seconds=HOUR, window=Window(since=now))
    assert after["sessions"] == 0 and after["containment_rate"] is None and after["cost_per_conversation"] is None


def test_containment_without_a_return_within_a_day() -> None:
    s = booking()
    s.start(after=HOUR).user("my booking again", "check_booking").action("action_get_booking")
    s.slot("task_outcome", "booking_shown").bot(text="...").listen()
    first, second = sessions_of("booker", s.events)
    report = kpi_report([first, second], now=second.ended_at + 2 * HOUR, idle_seconds=HOUR)
    assert report["containment_rate"] == 1.0
    assert report["containment_24h_rate"] == 0.5  # the first came back within the hour


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 95) is None
    assert percentile([7], 95) == 7
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([5, 1, 3, 2, 4], 50) == 3


def test_the_daily_trend_and_its_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tandem.analytics.trend import daily_reports, plot_trend

    records = []
    for day in range(3):
        s = Script(f"day-{day}", at=1_800_000_000.0 + day * 24 * HOUR).start()
        s.user("book", "book_flight").action("action_create_booking")
        s.slot("task_outcome", "booking_created" if day != 1 else "sold_out").bot(text="...").listen()
        records += sessions_of(s.sender_id, s.events)
    days = daily_reports(records, now=records[-1].ended_at + 2 * HOUR, idle_seconds=HOUR)
    assert [report["sessions"] for _, report in days] == [1, 1, 1]
    assert [report["task_success_rate"] for _, report in days] == [1.0, 0.0, 1.0]
    assert [report["abandonment_rate"] for _, report in days] == [0.0, 1.0, 0.0]
    path = tmp_path / "trend.png"
    plot_trend(days, path)
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000
