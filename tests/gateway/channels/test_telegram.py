"""Telegram: the webhook secret, every kind of update, commands, rendering (4,096-unit pieces, opaque
button ids), the bodies after a click; and the fake Bot API (Telegram's rules) accepts what is rendered."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tandem.gateway.channels.telegram import (
    CallbackOption,
    Ignored,
    TelegramClick,
    TelegramInbound,
    answer_callback,
    chosen_message,
    escape_html,
    parse_update,
    remove_keyboard,
    render_messages,
    text_message,
    verify_secret,
)
from tests.fakes.telegram_api import TELEGRAM_TOKEN, FakeTelegram, utf16_length, visible_text

CHAT = 987654321
PERSON = {"id": CHAT, "is_bot": False, "first_name": "Ann", "language_code": "en"}
PRIVATE = {"id": CHAT, "first_name": "Ann", "type": "private"}
GROUP = {"id": -100123, "title": "Travel", "type": "supergroup"}
CABINS = [
    {"title": "Economy", "payload": '/inform{"cabin": "economy"}'},
    {"title": "Business", "payload": '/inform{"cabin": "business"}'},
]


def update(update_id: int = 10001, **content: Any) -> bytes:
    return json.dumps({"update_id": update_id, **content}).encode()


def message(
    text: str | None = "I want to book a flight", *, chat: dict[str, Any] = PRIVATE, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": 55, "from": PERSON, "chat": chat, "date": 1_760_000_000}
    if text is not None:
        body["text"] = text
    body.update(extra)
    return body


# --- the secret ---------------------------------------------------------------------------------


def test_the_secret_must_match_exactly() -> None:
    secret = "s3cr3t_-token-ABCDEFGH0123456789"
    assert verify_secret(secret, secret)
    assert not verify_secret(secret, None)
    assert not verify_secret(secret, "")
    assert not verify_secret(secret, secret + "x")
    assert not verify_secret(secret, secret[:-1])
    assert not verify_secret(secret, secret.upper())
    assert not verify_secret("", "")  # an unconfigured secret lets nothing in
    assert not verify_secret(secret, "é" * 10)


# --- updates --------------------------------------------------------------------------------------


def test_a_text_message_is_a_turn() -> None:
    result = parse_update(update(message=message()))
    assert result == TelegramInbound(
        update_id=10001,
        chat_id=CHAT,
        from_id=CHAT,
        text="I want to book a flight",
        message_id=55,
        dedupe_key="telegram:update:10001",
    )


def test_a_redelivered_update_has_the_same_key_and_another_update_another() -> None:
    first = parse_update(update(10001, message=message()))
    again = parse_update(update(10001, message=message()))
    other = parse_update(update(10002, message=message()))
    assert isinstance(first, TelegramInbound) and isinstance(again, TelegramInbound)
    assert isinstance(other, TelegramInbound)
    assert first.dedupe_key == again.dedupe_key != other.dedupe_key


def test_a_button_click_is_a_click() -> None:
    query = {
        "id": "4382bfdwdsb323b2d9",
        "from": PERSON,
        "message": {
            **message("Which cabin?"),
            "message_id": 77,
            "from": {"id": 1, "is_bot": True, "first_name": "Bot"},
        },
        "chat_instance": "-123",
        "data": "abcdEFGH1234_-xy",
    }
    result = parse_update(update(10003, callback_query=query))
    assert result == TelegramClick(
        update_id=10003,
        callback_query_id="4382bfdwdsb323b2d9",
        chat_id=CHAT,
        from_id=CHAT,
        data="abcdEFGH1234_-xy",
        message_id=77,
        dedupe_key="telegram:update:10003",
        message_key=f"telegram-click:{CHAT}:77",
    )


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"id": "q1", "from": PERSON, "inline_message_id": "AAA", "data": "x"}, "no_message"),
        ({"id": "q1", "from": PERSON, "message": message(), "game_short_name": "g"}, "no_callback_data"),
        ({"id": "q1", "from": PERSON, "message": message(chat=GROUP), "data": "x"}, "not_private_chat"),
    ],
)
def test_a_click_that_cannot_run_still_names_the_query_to_answer(query: dict[str, Any], reason: str) -> None:
    assert parse_update(update(callback_query=query)) == Ignored(reason, callback_query_id="q1")


@pytest.mark.parametrize(
    "kind", ["sticker", "photo", "voice", "video", "document", "location", "contact", "video_note"]
)
def test_non_text_from_a_person_gets_a_please_send_text_reply(kind: str) -> None:
    result = parse_update(update(message=message(None, **{kind: {"file_id": "F"}})))
    assert result == Ignored("not_text", reply_chat_id=CHAT)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"edited_message": message("I meant Phuket")}, Ignored("edited_message")),
        (
            {"channel_post": {"message_id": 1, "chat": {"id": -100, "type": "channel"}, "text": "x"}},
            Ignored("channel_post"),
        ),
        ({"edited_channel_post": {"message_id": 1}}, Ignored("edited_channel_post")),
        ({"inline_query": {"id": "1", "from": PERSON, "query": "x"}}, Ignored("inline_query")),
        ({"poll_answer": {"poll_id": "1"}}, Ignored("poll_answer")),
        ({"message_reaction": {"chat": PRIVATE}}, Ignored("message_reaction")),
        (
            {
                "my_chat_member": {
                    "chat": PRIVATE,
                    "from": PERSON,
                    "new_chat_member": {"status": "kicked", "user": PERSON},
                }
            },
            Ignored("bot_blocked"),
        ),
        (
            {
                "my_chat_member": {
                    "chat": PRIVATE,
                    "from": PERSON,
                    "new_chat_member": {"status": "member", "user": PERSON},
                }
            },
            Ignored("my_chat_member"),
        ),
        ({"message": message(None, pinned_message={"message_id": 3})}, Ignored("not_text")),  # a service message
        ({"message": message("hello", chat=GROUP)}, Ignored("not_private_chat")),
        ({"message": message("hello", **{"from": {"id": 5, "is_bot": True, "first_name": "B"}})}, Ignored("from_bot")),
        ({"message": {"message_id": 1, "text": "no chat"}}, Ignored("incomplete_update")),
        ({}, Ignored("unsupported_update")),
    ],
)
def test_every_other_update_is_ignored(content: dict[str, Any], expected: Ignored) -> None:
    assert parse_update(update(**content)) == expected


@pytest.mark.parametrize("body", [b"", b"nope", b"[]", b'{"update_id": "1"}', b'{"update_id": true}', b"\xff"])
def test_odd_bodies_are_ignored_not_errors(body: bytes) -> None:
    assert parse_update(body) == Ignored("invalid_update")


@pytest.mark.parametrize(
    ("text", "expected", "command"),
    [
        ("/start", "Hello", "start"),
        ("/start deep-link-payload", "Hello", "start"),
        ("/START", "Hello", "start"),
        ("/start@TandemBot", "Hello", "start"),
        ("/help@tandembot", "What can you do?", "help"),
        ("/cancel my booking", "cancel my booking", "cancel"),
        ('/inform{"cabin": "business"}', 'inform{"cabin": "business"}', None),
        ("I use /bot commands all day", "I use /bot commands all day", None),
        ("/botany is fun", "botany is fun", "botany"),
        ("please /bot help", "please /bot help", None),
    ],
)
def test_commands(text: str, expected: str, command: str | None) -> None:
    result = parse_update(update(message=message(text)), bot_username="TandemBot")
    assert isinstance(result, TelegramInbound)
    assert (result.text, result.command) == (expected, command)
    assert not result.text.startswith("/")


def test_a_command_for_another_bot_and_an_empty_one() -> None:
    assert parse_update(update(message=message("/start@OtherBot")), bot_username="TandemBot") == Ignored(
        "command_for_another_bot"
    )
    assert parse_update(update(message=message("/"))) == Ignored("no_text", reply_chat_id=CHAT)
    custom = parse_update(update(message=message("/start")), commands={"start": "Hi there"})
    assert isinstance(custom, TelegramInbound) and custom.text == "Hi there"


def test_group_chats_can_be_allowed() -> None:
    result = parse_update(update(message=message("hello", chat=GROUP)), private_only=False)
    assert isinstance(result, TelegramInbound) and result.chat_id == GROUP["id"]
    sticker = parse_update(update(message=message(None, chat=GROUP, sticker={})), private_only=False)
    assert sticker == Ignored("not_text")  # no "please send text" in a group


# --- rendering ------------------------------------------------------------------------------------


def test_text_is_html_escaped_with_a_keyboard_of_opaque_ids() -> None:
    rendered = render_messages([{"text": "Fares <b> & fees", "buttons": CABINS}], chat_id=CHAT)
    [call] = rendered.calls
    assert call.method == "sendMessage"
    assert call.body["text"] == "Fares &lt;b&gt; &amp; fees"
    assert call.body["parse_mode"] == "HTML"
    rows = call.body["reply_markup"]["inline_keyboard"]
    assert [[b["text"] for b in row] for row in rows] == [["Economy"], ["Business"]]
    ids = [row[0]["callback_data"] for row in rows]
    assert all(0 < len(i.encode()) <= 64 and len(i) == 16 for i in ids)
    assert len(set(ids)) == 2
    assert not any("inform" in i for i in ids)  # never the payload itself
    assert {i: rendered.callbacks[i] for i in ids} == {
        ids[0]: CallbackOption('/inform{"cabin": "economy"}', "Economy"),
        ids[1]: CallbackOption('/inform{"cabin": "business"}', "Business"),
    }
    assert visible_text(call.body["text"], "HTML") == "Fares <b> & fees"


def test_payloads_longer_than_64_bytes_still_work() -> None:
    payload = '/inform{"flight_id": "' + "9" * 200 + '"}'
    rendered = render_messages([{"text": "Pick", "buttons": [{"title": "That one", "payload": payload}]}], chat_id=CHAT)
    [data] = [row[0]["callback_data"] for row in rendered.calls[0].body["reply_markup"]["inline_keyboard"]]
    assert len(data.encode()) <= 64 and rendered.callbacks[data].payload == payload


def long_text() -> str:
    paragraph = "Our baggage allowance depends on the fare & route; <see> the table. " * 20
    lines = "\n".join(["A line of details about the fare rules that goes on for a while."] * 40)
    no_spaces = "x" * 5000
    emoji = "✈️🧳 " * 900  # outside the BMP: two UTF-16 units each
    return "\n\n".join([paragraph] * 5 + [lines, no_spaces, emoji, paragraph])


def test_long_text_is_split_at_4096_units_and_nothing_is_lost() -> None:
    text = long_text()
    rendered = render_messages([{"text": text, "buttons": CABINS}], chat_id=CHAT)
    bodies = [c.body for c in rendered.calls]
    assert len(bodies) > 4
    visible = [visible_text(b["text"], "HTML") for b in bodies]
    assert all(utf16_length(v) <= 4096 for v in visible)
    assert "".join(visible) == text
    assert [("reply_markup" in b) for b in bodies] == [False] * (len(bodies) - 1) + [True]  # keyboard on the last
    assert visible[0].endswith("\n\n")  # cut after a paragraph when one is near


def test_a_long_word_is_cut_hard_and_whitespace_only_pieces_are_dropped() -> None:
    rendered = render_messages([{"text": "y" * 4096 + "\n\n  "}], chat_id=CHAT)
    assert [c.body["text"] for c in rendered.calls] == ["y" * 4096]
    rendered = render_messages([{"text": "z" * 9000}], chat_id=CHAT)
    assert [len(c.body["text"]) for c in rendered.calls] == [4096, 4096, 808]


def test_buttons_without_text_get_the_prompt_and_images_are_photos() -> None:
    rendered = render_messages(
        [{"buttons": CABINS}, {"image": "https://images.example/a320.png"}, {"image": "file:///etc/passwd"}],
        chat_id=CHAT,
        button_prompt="Choose one:",
    )
    assert [c.method for c in rendered.calls] == ["sendMessage", "sendPhoto"]
    assert rendered.calls[0].body["text"] == "Choose one:"
    assert rendered.calls[1].body == {"chat_id": CHAT, "photo": "https://images.example/a320.png"}


def test_custom_payloads_are_not_shown_unless_a_handoff_text_is_given() -> None:
    messages = [{"custom": {"handoff": {"state": "pending", "ticket_id": 7}}}, {"custom": {"x": 1}}]
    assert render_messages(messages, chat_id=CHAT).calls == ()
    rendered = render_messages(messages, chat_id=CHAT, handoff_texts={"pending": "An agent will join soon."})
    assert [c.body["text"] for c in rendered.calls] == ["An agent will join soon."]


def test_bodies_after_a_click() -> None:
    assert remove_keyboard(CHAT, 77) == {"chat_id": CHAT, "message_id": 77}
    assert answer_callback("q1") == {"callback_query_id": "q1"}
    assert len(answer_callback("q1", "x" * 500)["text"]) == 200
    assert chosen_message(CHAT, "Business & more") == {
        "chat_id": CHAT,
        "text": "You chose: Business &amp; more",
        "parse_mode": "HTML",
    }
    assert text_message(CHAT, "Please send text <3")["text"] == escape_html("Please send text <3")


async def test_the_fake_bot_api_accepts_what_is_rendered_and_enforces_telegrams_rules(
    telegram_api: FakeTelegram, telegram_base_url: str, http: httpx.AsyncClient
) -> None:
    base = f"{telegram_base_url}/bot{TELEGRAM_TOKEN}"
    rendered = render_messages([{"text": long_text(), "buttons": CABINS}], chat_id=CHAT)
    for call in rendered.calls:
        response = await http.post(f"{base}/{call.method}", json=call.body)
        assert response.json()["ok"] is True, response.json()
    message_id = telegram_api.sent[-1]["message_id"]
    assert (await http.post(f"{base}/editMessageReplyMarkup", json=remove_keyboard(CHAT, message_id))).json()["ok"]
    again = await http.post(f"{base}/editMessageReplyMarkup", json=remove_keyboard(CHAT, message_id))
    assert again.status_code == 400 and "message is not modified" in again.json()["description"]
    assert (await http.post(f"{base}/answerCallbackQuery", json=answer_callback("q1", "Got it"))).json()["ok"]

    too_long = await http.post(f"{base}/sendMessage", json={"chat_id": CHAT, "text": "a" * 4097})
    assert too_long.json() == {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
    entities = {"chat_id": CHAT, "text": "&amp;" * 4096, "parse_mode": "HTML"}  # 4,096 after parsing
    assert (await http.post(f"{base}/sendMessage", json=entities)).json()["ok"] is True
    unescaped = await http.post(f"{base}/sendMessage", json={"chat_id": CHAT, "text": "1 < 2", "parse_mode": "HTML"})
    assert "can't parse entities" in unescaped.json()["description"]
    unknown_tag = await http.post(
        f"{base}/sendMessage", json={"chat_id": CHAT, "text": "<div>x</div>", "parse_mode": "HTML"}
    )
    assert "Unsupported start tag" in unknown_tag.json()["description"]
    keyboard = {"inline_keyboard": [[{"text": "X", "callback_data": "x" * 65}]]}
    data = await http.post(f"{base}/sendMessage", json={"chat_id": CHAT, "text": "x", "reply_markup": keyboard})
    assert data.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"
    wrong_token = await http.post(f"{telegram_base_url}/bot123:wrong/sendMessage", json={"chat_id": CHAT, "text": "x"})
    assert wrong_token.status_code == 401
