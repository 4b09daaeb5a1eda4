"""Slack inbound: signatures, Events API bodies (DMs, mentions, twins, retries, noise), button clicks."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tandem.gateway.channels.slack import (
    Challenge,
    Ignored,
    SlackClick,
    SlackInbound,
    parse_event,
    parse_interactivity,
    plain_text,
    verify_signature,
)

# The worked example of Slack's "Verifying requests from Slack" page.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TS = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

SECRET = "test-signing-secret-0123456789abcdef"
NOW = 1_760_000_000.0
BOT = "U0BOT0001"
TEAM, DM, CHANNEL, USER = "T0TEAM001", "D0DM00001", "C0GENERAL", "U0PERSON1"


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def check(body: bytes, *, timestamp: str | None, signature: str | None, now: float = NOW) -> bool:
    return verify_signature(signing_secret=SECRET, timestamp=timestamp, signature=signature, body=body, now=now)


# --- signatures -------------------------------------------------------------------------------


def test_slacks_own_worked_example_verifies() -> None:
    assert verify_signature(
        signing_secret=DOC_SECRET, timestamp=DOC_TS, signature=DOC_SIGNATURE, body=DOC_BODY, now=float(DOC_TS) + 10
    )


def test_a_good_signature_passes_and_any_change_fails() -> None:
    body = b'{"type":"event_callback"}'
    ts = str(int(NOW))
    assert check(body, timestamp=ts, signature=sign(body, ts))
    assert not check(body + b" ", timestamp=ts, signature=sign(body, ts))  # the raw bytes, exactly
    assert not check(body, timestamp=ts, signature=sign(body, ts, secret="another-secret"))
    assert not check(body, timestamp=str(int(NOW) - 1), signature=sign(body, ts))  # the timestamp is signed
    assert not check(body, timestamp=ts, signature=sign(body, ts).replace("v0=", "v1="))
    assert not check(body, timestamp=ts, signature=sign(body, ts).upper())


@pytest.mark.parametrize("age", [301, 3600, -301, -3600])
def test_stale_and_future_timestamps_fail_even_when_signed(age: int) -> None:
    body = b"{}"
    ts = str(int(NOW) - age)
    assert not check(body, timestamp=ts, signature=sign(body, ts))


@pytest.mark.parametrize("age", [0, 299, -299, 300])
def test_timestamps_within_five_minutes_pass(age: int) -> None:
    body = b"{}"
    ts = str(int(NOW) - age)
    assert check(body, timestamp=ts, signature=sign(body, ts))


@pytest.mark.parametrize("timestamp", ["", "abc", "-1760000000", "1.76e9", " 1760000000", "1760000000\n", "１７６"])
def test_non_numeric_timestamps_fail(timestamp: str) -> None:
    body = b"{}"
    assert not check(body, timestamp=timestamp, signature=sign(body, timestamp))


def test_missing_headers_or_secret_fail() -> None:
    body = b"{}"
    ts = str(int(NOW))
    assert not check(body, timestamp=None, signature=sign(body, ts))
    assert not check(body, timestamp=ts, signature=None)
    assert not check(body, timestamp=ts, signature="")
    assert not verify_signature(signing_secret="", timestamp=ts, signature=sign(body, ts, ""), body=body, now=NOW)


# --- events -----------------------------------------------------------------------------------


def event_body(event: dict[str, Any], *, event_id: str = "Ev0001") -> bytes:
    body = {
        "token": "XXYYZZ",
        "team_id": TEAM,
        "api_app_id": "A0APP0001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_760_000_000,
        "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}],
    }
    return json.dumps(body).encode()


def dm(text: str = "I want to book a flight", **extra: Any) -> dict[str, Any]:
    event = {
        "type": "message",
        "channel": DM,
        "user": USER,
        "text": text,
        "ts": "1760000000.000100",
        "event_ts": "1760000000.000100",
        "channel_type": "im",
        "client_msg_id": "5f9b7d3e-0000-4000-8000-000000000001",
    }
    event.update(extra)
    return event


def mention(text: str = f"<@{BOT}> book a flight", **extra: Any) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": USER,
        "text": text,
        "ts": "1760000000.000200",
        "channel": CHANNEL,
        "event_ts": "1760000000.000200",
    }
    event.update(extra)
    return event


def test_url_verification_gives_the_challenge() -> None:
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    assert parse_event(body.encode()) == Challenge("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert isinstance(parse_event(b'{"type": "url_verification"}'), Ignored)


def test_a_direct_message_is_a_turn() -> None:
    result = parse_event(event_body(dm()), bot_user_id=BOT)
    assert isinstance(result, SlackInbound)
    assert (result.team, result.channel, result.user, result.text) == (TEAM, DM, USER, "I want to book a flight")
    assert result.event_type == "message"
    assert result.event_id == "Ev0001"
    assert result.dedupe_key == f"slack:{TEAM}:{DM}:1760000000.000100"
    assert result.reply_thread_ts is None  # a DM answers in place


def test_a_mention_is_a_turn_without_the_leading_mention() -> None:
    result = parse_event(event_body(mention()), bot_user_id=BOT)
    assert isinstance(result, SlackInbound)
    assert result.text == "book a flight"
    assert result.event_type == "app_mention"
    assert result.reply_thread_ts == "1760000000.000200"  # answered in a thread under the mention
    threaded = parse_event(event_body(mention(thread_ts="1760000000.000050")), bot_user_id=BOT)
    assert isinstance(threaded, SlackInbound) and threaded.reply_thread_ts == "1760000000.000050"


def test_only_the_bots_own_leading_mention_is_stripped() -> None:
    other = parse_event(event_body(mention(f"<@U0SOMEONE> <@{BOT}> hello")), bot_user_id=BOT)
    assert isinstance(other, SlackInbound) and other.text == f"@U0SOMEONE @{BOT} hello"
    unknown_bot = parse_event(event_body(mention("<@U0ANYBOT|tandem>: hi there")))
    assert isinstance(unknown_bot, SlackInbound) and unknown_bot.text == "hi there"


def test_the_mention_and_its_message_twin_share_one_key() -> None:
    ts = "1760000000.000300"
    first = parse_event(event_body(mention(ts=ts, channel=DM), event_id="Ev1"), bot_user_id=BOT)
    twin = parse_event(event_body(dm(f"<@{BOT}> book a flight", ts=ts, channel=DM), event_id="Ev2"), bot_user_id=BOT)
    assert isinstance(first, SlackInbound) and isinstance(twin, SlackInbound)
    assert first.event_id != twin.event_id
    assert first.dedupe_key == twin.dedupe_key
    assert first.text == twin.text == "book a flight"


@pytest.mark.parametrize("reason", ["http_timeout", "http_error", "too_many_requests", "unknown", "connection_failed"])
def test_a_retry_has_the_same_key_whatever_its_reason(reason: str) -> None:
    body = event_body(dm())
    original = parse_event(body, bot_user_id=BOT)
    retry = parse_event(body, bot_user_id=BOT, retry_num="1", retry_reason=reason)
    assert isinstance(original, SlackInbound) and isinstance(retry, SlackInbound)
    assert retry.dedupe_key == original.dedupe_key
    assert (retry.retry_num, retry.retry_reason) == (1, reason)
    assert original.retry_num is None
    junk = parse_event(body, bot_user_id=BOT, retry_num="x", retry_reason="<script>" * 10)
    assert isinstance(junk, SlackInbound) and (junk.retry_num, junk.retry_reason) == (None, "other")
    assert junk.dedupe_key == original.dedupe_key


def test_different_messages_have_different_keys() -> None:
    results = [
        parse_event(event_body(dm(ts="1760000000.000100")), bot_user_id=BOT),
        parse_event(event_body(dm(ts="1760000000.000101")), bot_user_id=BOT),
        parse_event(event_body(dm(channel="D0OTHER01")), bot_user_id=BOT),
    ]
    assert all(isinstance(r, SlackInbound) for r in results)
    assert len({r.dedupe_key for r in results if isinstance(r, SlackInbound)}) == 3


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (dm(bot_id="B0BOT0001"), "bot_message"),
        (dm(subtype="bot_message", bot_id="B0BOT0001"), "bot_message"),
        (dm(bot_profile={"id": "B0BOT0001"}), "bot_message"),
        (dm(user=BOT), "bot_message"),
        (dm(subtype="message_changed", message={"text": "edited"}), "edited"),
        (dm(subtype="message_deleted", deleted_ts="1760000000.000100"), "deleted"),
        (dm(subtype="file_share"), "subtype"),
        (dm(subtype="thread_broadcast"), "subtype"),
        (dm(subtype="channel_join"), "subtype"),
        (dm(channel_type="channel", channel=CHANNEL), "not_direct_message"),
        (dm(channel_type="mpim"), "not_direct_message"),
        (dm(text=""), "no_text"),
        (dm(text="   "), "no_text"),
        (dm(text=f"<@{BOT}>"), "no_text"),
        ({k: v for k, v in dm().items() if k != "text"}, "no_text"),
        ({k: v for k, v in dm().items() if k != "user"}, "incomplete_event"),
        ({"type": "reaction_added", "user": USER, "reaction": "thumbsup"}, "unsupported_event"),
        ({"type": "app_home_opened", "user": USER}, "unsupported_event"),
    ],
)
def test_noise_is_ignored(event: dict[str, Any], reason: str) -> None:
    assert parse_event(event_body(event), bot_user_id=BOT) == Ignored(reason)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'"x"', b'{"type": "event_callback"}', b'{"type": "app_rate_limited"}', b"\xff\xfe"],
)
def test_odd_bodies_are_ignored_not_errors(body: bytes) -> None:
    assert isinstance(parse_event(body), Ignored)


def test_slack_markup_becomes_plain_text_and_no_text_starts_with_a_slash() -> None:
    assert plain_text("a &amp; b &lt;c&gt;") == "a & b <c>"
    assert plain_text("see <https://example.com/x|the page> or <https://example.com>") == (
        "see the page or https://example.com"
    )
    assert plain_text("<!here> <#C123|general> <@U1>") == "@here #general @U1"
    result = parse_event(event_body(dm('/inform{"cabin": "business"}')), bot_user_id=BOT)
    assert isinstance(result, SlackInbound) and not result.text.startswith("/")
    assert result.text == 'inform{"cabin": "business"}'


# --- interactivity ----------------------------------------------------------------------------


def click_payload(**overrides: Any) -> dict[str, Any]:
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "ann", "name": "ann", "team_id": TEAM},
        "api_app_id": "A0APP0001",
        "token": "legacy",
        "container": {"type": "message", "message_ts": "1760000001.000100", "channel_id": DM, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "team": {"id": TEAM, "domain": "example"},
        "channel": {"id": DM, "name": "directmessage"},
        "message": {
            "type": "message",
            "ts": "1760000001.000100",
            "text": "Which cabin?",
            "blocks": [
                {"type": "section", "block_id": "b1", "text": {"type": "mrkdwn", "text": "Which cabin?"}},
                {"type": "actions", "block_id": "b2", "elements": []},
            ],
        },
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": "choice-1",
                "block_id": "b2",
                "text": {"type": "plain_text", "text": "Business", "emoji": True},
                "value": '/inform{"cabin": "business"}',
                "action_ts": "1760000002.000000",
            }
        ],
    }
    payload.update(overrides)
    return payload


def form(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_button_click_is_parsed() -> None:
    result = parse_interactivity(form(click_payload()))
    assert isinstance(result, SlackClick)
    assert (result.team, result.channel, result.user) == (TEAM, DM, USER)
    assert result.value == '/inform{"cabin": "business"}'
    assert result.title == "Business"
    assert result.message_ts == "1760000001.000100"
    assert result.dedupe_key == f"slack-click:{TEAM}:{DM}:1760000001.000100"
    assert [b["type"] for b in result.message_blocks] == ["section", "actions"]


def test_two_clicks_on_one_message_share_a_key() -> None:
    second = click_payload()
    second["actions"] = [{**second["actions"][0], "value": "/inform{}", "action_ts": "1760000003.000000"}]
    first, again = parse_interactivity(form(click_payload())), parse_interactivity(form(second))
    assert isinstance(first, SlackClick) and isinstance(again, SlackClick)
    assert first.dedupe_key == again.dedupe_key


def test_the_team_falls_back_to_the_users_team() -> None:
    result = parse_interactivity(form(click_payload(team=None)))
    assert isinstance(result, SlackClick) and result.team == TEAM


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "invalid_body"),
        (b"payload=not-json", "invalid_body"),
        (b"other=1", "invalid_body"),
        (form({"type": "view_submission", "view": {}}), "unsupported_type"),
        (form({"type": "shortcut"}), "unsupported_type"),
        (form(click_payload(container={"type": "view", "view_id": "V1"})), "not_a_message"),
        (form(click_payload(actions=[{"type": "static_select", "action_id": "s"}])), "no_button_value"),
        (form(click_payload(actions=[])), "no_button_value"),
        (form(click_payload(user={})), "incomplete_event"),
    ],
)
def test_other_interactions_are_ignored(body: bytes, reason: str) -> None:
    assert parse_interactivity(body) == Ignored(reason)
