"""The Web API / Bot API clients against the fake servers: success, platform errors, 429 honoured with
exactly one message posted, and failures that might have posted (timeouts, 5xx) never retried."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from tandem.gateway.channels.outbound import BotTokenRedactor, PlatformError, SlackWebApi, TelegramBotApi
from tandem.gateway.channels.slack import render_messages as render_slack
from tandem.gateway.channels.telegram import render_messages as render_telegram
from tests.fakes.slack_api import SLACK_TOKEN, FakeSlack
from tests.fakes.telegram_api import TELEGRAM_TOKEN, FakeTelegram

CHANNEL, CHAT = "D0DM00001", 987654321


class Sleeps:
    """An injected sleep: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def no_secrets_in(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for record in caplog.records:
        text = record.getMessage() + json.dumps(record.__dict__, default=str)
        assert not any(s in text for s in secrets), record


@pytest.fixture
def redacted_httpx_logs() -> Iterator[None]:
    """httpx logs every request URL at INFO, and Telegram's URL holds the token: the redactor."""
    redactor = BotTokenRedactor()
    logging.getLogger("httpx").addFilter(redactor)
    yield
    logging.getLogger("httpx").removeFilter(redactor)


def slack(
    http: httpx.AsyncClient, base_url: str, sleeps: Sleeps, *, max_attempts: int = 3, max_wait_seconds: float = 30
) -> SlackWebApi:
    return SlackWebApi(
        http, base_url, SLACK_TOKEN, 2.0, sleep=sleeps, max_attempts=max_attempts, max_wait_seconds=max_wait_seconds
    )


def telegram(http: httpx.AsyncClient, base_url: str, sleeps: Sleeps) -> TelegramBotApi:
    return TelegramBotApi(http, base_url, TELEGRAM_TOKEN, 2.0, sleep=sleeps)


# --- Slack ----------------------------------------------------------------------------------------


async def test_slack_post_and_update(slack_api: FakeSlack, slack_base_url: str, http: httpx.AsyncClient) -> None:
    api = slack(http, slack_base_url, Sleeps())
    [post] = render_slack(
        [{"text": "Which cabin?", "buttons": [{"title": "Economy", "payload": "/e"}]}], channel=CHANNEL
    )
    answer = await api.post_message(post.body)
    assert answer["ok"] is True and answer["channel"] == CHANNEL
    assert slack_api.requests[0]["headers"]["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert slack_api.requests[0]["headers"]["content-type"].startswith("application/json")
    assert slack_api.posted[0]["blocks"] == post.body["blocks"]
    updated = await api.update({"channel": CHANNEL, "ts": answer["ts"], "text": "You chose: Economy"})
    assert updated["ts"] == answer["ts"]
    assert slack_api.messages[(CHANNEL, answer["ts"])]["text"] == "You chose: Economy"


async def test_slack_ok_false_is_a_platform_error(
    slack_api: FakeSlack, slack_base_url: str, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    api = slack(http, slack_base_url, Sleeps())
    too_many = [
        {"type": "button", "text": {"type": "plain_text", "text": "x"}, "action_id": f"a{i}"} for i in range(26)
    ]
    with pytest.raises(PlatformError) as caught:
        await api.post_message({"channel": CHANNEL, "blocks": [{"type": "actions", "elements": too_many}]})
    assert (caught.value.platform, caught.value.code) == ("slack", "invalid_blocks")
    with pytest.raises(PlatformError) as caught:
        await api.update({"channel": CHANNEL, "ts": "1.2", "text": "x"})
    assert caught.value.code == "message_not_found"
    wrong = SlackWebApi(http, slack_base_url, "xoxb-wrong", 2.0)
    with pytest.raises(PlatformError) as caught:
        await wrong.post_message({"channel": CHANNEL, "text": "hi"})
    assert caught.value.code == "invalid_auth"
    assert slack_api.posted == []
    no_secrets_in(caplog, SLACK_TOKEN)
    assert SLACK_TOKEN not in repr(api) and SLACK_TOKEN not in str(caught.value)


async def test_slack_429_is_waited_for_and_the_message_posted_exactly_once(
    slack_api: FakeSlack, slack_base_url: str, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    slack_api.rate_limit(2, retry_after=3)
    answer = await slack(http, slack_base_url, sleeps).post_message({"channel": CHANNEL, "text": "hello"})
    assert answer["ok"] is True
    assert [r["status"] for r in slack_api.requests] == [429, 429, 200]
    assert sleeps.waits == [3, 3]
    assert len(slack_api.posted) == 1


async def test_slack_429_beyond_the_attempts_or_the_wait_bound_is_raised(
    slack_api: FakeSlack, slack_base_url: str, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    slack_api.rate_limit(5, retry_after=1)
    with pytest.raises(PlatformError) as caught:
        await slack(http, slack_base_url, sleeps, max_attempts=3).post_message({"channel": CHANNEL, "text": "x"})
    assert (caught.value.code, caught.value.retry_after, caught.value.status) == ("ratelimited", 1, 429)
    assert len(slack_api.requests) == 3 and sleeps.waits == [1, 1]
    slack_api.reset()
    slack_api.rate_limit(1, retry_after=120)
    sleeps = Sleeps()
    with pytest.raises(PlatformError) as caught:
        await slack(http, slack_base_url, sleeps, max_wait_seconds=30).post_message({"channel": CHANNEL, "text": "x"})
    assert caught.value.retry_after == 120  # for the caller to schedule; not slept through here
    assert len(slack_api.requests) == 1 and sleeps.waits == []
    assert slack_api.posted == []


async def test_a_slack_timeout_is_not_retried(
    slack_api: FakeSlack, slack_base_url: str, http: httpx.AsyncClient
) -> None:
    slack_api.delay = 0.6
    api = SlackWebApi(http, slack_base_url, SLACK_TOKEN, 0.2, sleep=Sleeps())
    with pytest.raises(PlatformError) as caught:
        await api.post_message({"channel": CHANNEL, "text": "hello"})
    assert caught.value.code == "timeout"
    assert len(slack_api.requests) == 1
    await asyncio.sleep(0.8)
    assert len(slack_api.requests) == 1
    assert len(slack_api.posted) == 1  # the platform did post it: a retry would have posted it twice


async def test_5xx_and_broken_connections_are_not_retried() -> None:
    calls: list[str] = []

    def server_error(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, text="upstream connect error")

    async with httpx.AsyncClient(transport=httpx.MockTransport(server_error)) as client:
        with pytest.raises(PlatformError) as caught:
            await SlackWebApi(client, "https://slack.test/api", SLACK_TOKEN, 1.0).post_message(
                {"channel": "C", "text": "x"}
            )
        assert (caught.value.code, caught.value.status) == ("http_503", 503)
        with pytest.raises(PlatformError) as caught:
            await TelegramBotApi(client, "https://tg.test", TELEGRAM_TOKEN, 1.0).send_message(
                {"chat_id": 1, "text": "x"}
            )
        assert caught.value.code == "http_503"
    assert len(calls) == 2

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as client:
        with pytest.raises(PlatformError) as caught:
            await TelegramBotApi(client, "https://tg.test", TELEGRAM_TOKEN, 1.0).send_message(
                {"chat_id": 1, "text": "x"}
            )
        assert caught.value.code == "connection_error"
        assert TELEGRAM_TOKEN not in str(caught.value) and caught.value.__cause__ is None
    assert len(calls) == 3


# --- Telegram ---------------------------------------------------------------------------------------


async def test_telegram_send_edit_answer_and_set_webhook(
    telegram_api: FakeTelegram, telegram_base_url: str, http: httpx.AsyncClient
) -> None:
    api = telegram(http, telegram_base_url, Sleeps())
    rendered = render_telegram(
        [{"text": "Which cabin?", "buttons": [{"title": "Economy", "payload": "/e"}]}], chat_id=CHAT
    )
    sent = await api.send_message(rendered.calls[0].body)
    assert isinstance(sent["message_id"], int)
    assert telegram_api.keyboards[(CHAT, sent["message_id"])] == rendered.calls[0].body["reply_markup"]
    await api.edit_reply_markup({"chat_id": CHAT, "message_id": sent["message_id"]})
    assert telegram_api.keyboards[(CHAT, sent["message_id"])] is None
    assert await api.answer_callback_query({"callback_query_id": "q1", "text": "Economy"}) is True
    photo = await api.send_photo({"chat_id": CHAT, "photo": "https://images.example/a320.png"})
    assert photo["message_id"] > sent["message_id"]
    assert await api.set_webhook("https://gateway.example/channels/telegram/webhook", "s3cret_-XYZ") is True
    assert telegram_api.webhook == {
        "url": "https://gateway.example/channels/telegram/webhook",
        "secret_token": "s3cret_-XYZ",
        "allowed_updates": ["message", "callback_query"],
    }


async def test_telegram_refuses_a_bad_webhook_secret_before_calling(
    telegram_api: FakeTelegram, telegram_base_url: str, http: httpx.AsyncClient
) -> None:
    api = telegram(http, telegram_base_url, Sleeps())
    for secret in ("", "has space", "x" * 257, "ünïcode"):
        with pytest.raises(ValueError):
            await api.set_webhook("https://gateway.example/hook", secret)
    with pytest.raises(ValueError):
        await api.set_webhook("http://gateway.example/hook", "ok")
    assert telegram_api.requests == []


async def test_telegram_ok_false_is_a_platform_error(
    telegram_api: FakeTelegram,
    telegram_base_url: str,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    redacted_httpx_logs: None,
) -> None:
    caplog.set_level(logging.INFO)
    api = telegram(http, telegram_base_url, Sleeps())
    with pytest.raises(PlatformError) as caught:
        await api.send_message({"chat_id": CHAT, "text": "x" * 4097})
    assert (caught.value.platform, caught.value.code, caught.value.status) == ("telegram", "400", 400)
    assert caught.value.description == "Bad Request: message is too long"
    with pytest.raises(PlatformError) as caught:
        await api.edit_reply_markup({"chat_id": CHAT, "message_id": 999_999})
    assert caught.value.description == "Bad Request: message to edit not found"
    wrong = TelegramBotApi(http, telegram_base_url, "123:wrong-token", 2.0)
    with pytest.raises(PlatformError) as caught:
        await wrong.send_message({"chat_id": CHAT, "text": "x"})
    assert caught.value.code == "401"
    assert telegram_api.sent == []
    no_secrets_in(caplog, TELEGRAM_TOKEN, "123:wrong-token")
    assert any("/bot<redacted>/sendMessage" in r.getMessage() for r in caplog.records if r.name == "httpx")
    assert TELEGRAM_TOKEN not in repr(api)


async def test_telegram_429_retry_after_is_honoured_and_one_message_sent(
    telegram_api: FakeTelegram, telegram_base_url: str, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    telegram_api.rate_limit(1, retry_after=7)
    sent = await telegram(http, telegram_base_url, sleeps).send_message({"chat_id": CHAT, "text": "hello"})
    assert sent["text"] == "hello"
    assert [r["status"] for r in telegram_api.requests] == [429, 200]
    assert sleeps.waits == [7]
    assert len(telegram_api.sent) == 1


async def test_a_telegram_timeout_is_not_retried(
    telegram_api: FakeTelegram, telegram_base_url: str, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    telegram_api.delay = 0.6
    api = TelegramBotApi(http, telegram_base_url, TELEGRAM_TOKEN, 0.2, sleep=Sleeps())
    with pytest.raises(PlatformError) as caught:
        await api.send_message({"chat_id": CHAT, "text": "hello"})
    assert caught.value.code == "timeout"
    await asyncio.sleep(0.8)
    assert len(telegram_api.requests) == 1
    no_secrets_in(caplog, TELEGRAM_TOKEN)


def test_clients_need_a_token() -> None:
    client = httpx.AsyncClient()
    with pytest.raises(ValueError):
        SlackWebApi(client, "https://slack.com/api", "", 1.0)
    with pytest.raises(ValueError):
        TelegramBotApi(client, "https://api.telegram.org", "", 1.0)
