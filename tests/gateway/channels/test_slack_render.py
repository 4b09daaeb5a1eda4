"""Slack rendering: escaping, sections, buttons past 25, long titles, images, custom payloads, the update
after a click; and the fake Slack (which enforces Block Kit's limits) accepts every rendered body."""

from __future__ import annotations

from typing import Any

import httpx

from tandem.gateway.channels.slack import chosen_update, escape_mrkdwn, render_messages
from tests.fakes.slack_api import SLACK_TOKEN, FakeSlack, block_errors

CHANNEL = "D0DM00001"
CABINS = [
    {"title": "Economy", "payload": '/inform{"cabin": "economy"}'},
    {"title": "Business", "payload": '/inform{"cabin": "business"}'},
]


def actions_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in body["blocks"] if b["type"] == "actions"]


def buttons_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for block in actions_of(body) for e in block["elements"]]


def test_text_and_buttons() -> None:
    [post] = render_messages([{"text": "Which cabin would you like?", "buttons": CABINS}], channel=CHANNEL)
    body = post.body
    assert body["channel"] == CHANNEL
    assert body["text"] == "Which cabin would you like?"  # the fallback for notifications
    section, actions = body["blocks"]
    assert section["type"] == "section"
    assert section["text"] == {"type": "mrkdwn", "text": "Which cabin would you like?"}
    assert [e["value"] for e in actions["elements"]] == [b["payload"] for b in CABINS]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Economy", "Business"]
    assert all(e["text"]["type"] == "plain_text" for e in actions["elements"])
    assert [b.payload for b in post.buttons] == [b["payload"] for b in CABINS]
    assert block_errors(body["blocks"]) == []


def test_mrkdwn_control_characters_are_escaped() -> None:
    assert escape_mrkdwn("a & b < c > d &amp;") == "a &amp; b &lt; c &gt; d &amp;amp;"
    [post] = render_messages([{"text": "Fares <b>&</b> fees: <!channel> <@U123>"}], channel=CHANNEL)
    text = post.body["blocks"][0]["text"]["text"]
    assert text == "Fares &lt;b&gt;&amp;&lt;/b&gt; fees: &lt;!channel&gt; &lt;@U123&gt;"
    assert "<" not in post.body["text"] and ">" not in post.body["text"]


def test_thirty_buttons_are_all_offered_in_blocks_of_at_most_25() -> None:
    buttons = [{"title": f"Option {i}", "payload": f'/choose{{"n": {i}}}'} for i in range(30)]
    [post] = render_messages([{"text": "Pick one", "buttons": buttons}], channel=CHANNEL)
    blocks = actions_of(post.body)
    assert [len(b["elements"]) for b in blocks] == [25, 5]
    assert [e["value"] for e in buttons_of(post.body)] == [b["payload"] for b in buttons]  # order kept
    action_ids = [e["action_id"] for e in buttons_of(post.body)]
    assert len(set(action_ids)) == 30
    assert len({b["block_id"] for b in post.body["blocks"]}) == len(post.body["blocks"])
    assert post.dropped_buttons == 0
    assert block_errors(post.body["blocks"]) == []


def test_long_titles_are_cut_to_75_and_oversized_payloads_are_not_offered() -> None:
    long_title = "A very long button title " * 10
    buttons = [
        {"title": long_title, "payload": "/a"},
        {"title": "Too big", "payload": "/" + "x" * 2000},
        {"payload": "/no_title"},
    ]
    [post] = render_messages([{"text": "Choose", "buttons": buttons}], channel=CHANNEL)
    rendered = buttons_of(post.body)
    assert len(rendered[0]["text"]["text"]) == 75
    assert rendered[0]["text"]["text"].endswith("…")
    assert long_title.startswith(rendered[0]["text"]["text"][:-1])
    assert [e["value"] for e in rendered] == ["/a", "/no_title"]
    assert rendered[1]["text"]["text"] == "/no_title"  # a missing title shows the payload
    assert post.dropped_buttons == 1
    assert "/" + "x" * 2000 not in {b.payload for b in post.buttons}  # never accepted as offered
    assert block_errors(post.body["blocks"]) == []


def test_long_text_is_split_into_sections_of_at_most_3000_escaped_characters() -> None:
    paragraph = "Fares & fees <apply>. " * 60  # escaping makes it longer
    text = "\n\n".join([paragraph] * 8)
    [post] = render_messages([{"text": text}], channel=CHANNEL)
    sections = [b["text"]["text"] for b in post.body["blocks"] if b["type"] == "section"]
    assert len(sections) > 1
    assert all(len(s) <= 3000 for s in sections)
    unescaped = "".join(s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for s in sections)
    assert unescaped == text
    assert len(post.body["text"]) <= 3000 and post.body["text"].endswith("…")  # the fallback, escaped, cut
    assert text.startswith(post.body["text"][:-1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert block_errors(post.body["blocks"]) == []


def test_images_custom_payloads_and_empty_messages() -> None:
    posts = render_messages(
        [
            {"image": "https://images.example/a320.png"},
            {"image": "javascript:alert(1)"},
            {"custom": {"handoff": {"state": "pending", "ticket_id": 7}}},
            {"custom": {"anything": "else"}},
            {"text": ""},
            "not a dict",
            {"text": "Thanks!"},
        ],
        channel=CHANNEL,
    )
    assert len(posts) == 2
    image = posts[0].body["blocks"][0]
    assert image["type"] == "image"
    assert image["image_url"] == "https://images.example/a320.png"
    assert image["alt_text"]
    assert posts[1].body["blocks"][0]["text"]["text"] == "Thanks!"


def test_handoff_marker_is_shown_only_with_a_text_for_its_state() -> None:
    messages = [{"custom": {"handoff": {"state": "agent_joined", "agent_name": "Mai"}}}]
    assert render_messages(messages, channel=CHANNEL) == []
    [post] = render_messages(messages, channel=CHANNEL, handoff_texts={"agent_joined": "An agent has joined."})
    assert post.body["blocks"][0]["text"]["text"] == "An agent has joined."


def test_thread_ts_is_passed_on() -> None:
    [post] = render_messages([{"text": "hi"}], channel="C0GENERAL", thread_ts="1760000000.000200")
    assert post.body["thread_ts"] == "1760000000.000200"
    [in_place] = render_messages([{"text": "hi"}], channel=CHANNEL)
    assert "thread_ts" not in in_place.body


def test_chosen_update_replaces_the_buttons_by_the_choice() -> None:
    [post] = render_messages(
        [{"text": "Which cabin?", "buttons": CABINS, "image": "https://x.example/p.png"}], channel=CHANNEL
    )
    update = chosen_update(channel=CHANNEL, ts="1760000001.000100", title="Business <1>", blocks=post.body["blocks"])
    assert (update["channel"], update["ts"]) == (CHANNEL, "1760000001.000100")
    kinds = [b["type"] for b in update["blocks"]]
    assert kinds == ["section", "image", "context"]
    assert update["blocks"][-1]["elements"][0]["text"] == "You chose: Business &lt;1&gt;"
    old_ids = {b["block_id"] for b in post.body["blocks"]}
    assert not old_ids & {b["block_id"] for b in update["blocks"]}  # an update uses new block ids
    assert block_errors(update["blocks"]) == []
    bare = chosen_update(channel=CHANNEL, ts="1", title="Economy", template="Chosen: {title}")
    assert [b["type"] for b in bare["blocks"]] == ["context"] and bare["text"] == "Chosen: Economy"


async def test_the_fake_slack_accepts_what_is_rendered_and_rejects_what_breaks_the_limits(
    slack_api: FakeSlack, slack_base_url: str, http: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {SLACK_TOKEN}"}
    buttons = [{"title": f"Option {i} " + "x" * 80, "payload": f"/n{i}"} for i in range(40)]
    posts = render_messages([{"text": "Pick <one> & go", "buttons": buttons}], channel=CHANNEL)
    response = await http.post(f"{slack_base_url}/chat.postMessage", json=posts[0].body, headers=headers)
    assert response.json()["ok"] is True, response.json()
    ts = response.json()["ts"]
    update = chosen_update(channel=CHANNEL, ts=ts, title="Option 3", blocks=posts[0].body["blocks"])
    response = await http.post(f"{slack_base_url}/chat.update", json=update, headers=headers)
    assert response.json()["ok"] is True, response.json()
    too_many = {
        "type": "actions",
        "elements": [buttons_of(posts[0].body)[0] | {"action_id": f"a{i}"} for i in range(26)],
    }
    response = await http.post(
        f"{slack_base_url}/chat.postMessage", json={"channel": CHANNEL, "blocks": [too_many]}, headers=headers
    )
    assert response.json()["ok"] is False and response.json()["error"] == "invalid_blocks"
    long_text = {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "x" * 76}}]}
    response = await http.post(
        f"{slack_base_url}/chat.postMessage", json={"channel": CHANNEL, "blocks": [long_text]}, headers=headers
    )
    assert response.json()["error"] == "invalid_blocks"
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51
    response = await http.post(
        f"{slack_base_url}/chat.postMessage", json={"channel": CHANNEL, "blocks": sections}, headers=headers
    )
    assert response.json()["error"] == "invalid_blocks"
    response = await http.post(f"{slack_base_url}/chat.postMessage", json={"channel": CHANNEL, "text": "x"})
    assert response.json() == {"ok": False, "error": "not_authed"}
    assert len(slack_api.posted) == 1 and len(slack_api.updates) == 1


def test_a_message_past_50_blocks_is_cut_and_the_buttons_that_did_not_fit_are_counted() -> None:
    text = ("word " * 599 + "\n\n") * 60  # about 60 sections of 3,000 characters
    [post] = render_messages([{"text": text, "buttons": CABINS}], channel=CHANNEL)
    assert len(post.body["blocks"]) == 50
    assert post.dropped_buttons == 2 and post.buttons == ()  # never accepted: they were not shown
    assert block_errors(post.body["blocks"]) == []
