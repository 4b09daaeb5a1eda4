"""The widget in Debian's Chromium against the real stack: Rasa, the action server and the gateway."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.stack import sample_1_text

from .widget import (
    bot_bubbles,
    choices,
    composer,
    expect_bot,
    log,
    open_chat,
    open_demo,
    send,
    shot,
    user_bubbles,
    wait_idle,
    wait_loaded,
)

pytestmark = pytest.mark.e2e  # (a pytestmark in conftest.py marks nothing)


def test_sample_conversation_1_by_clicking_buttons_then_reload_and_another_tab(
    page: Page, context: BrowserContext
) -> None:
    open_chat(page)
    shot(page, "01-open")
    send(page, sample_1_text())
    expect_bot(page, "Which cabin")
    expect(choices(page)).to_have_text(["Economy", "Business"])
    page.get_by_role("button", name="Economy").click()
    wait_idle(page)
    expect_bot(page, "Here are the flights from Bangkok")
    flights = choices(page)
    expect(flights.first).to_have_text(re.compile(r"^AN\d+ · \d\d:\d\d–\d\d:\d\d · "))
    shot(page, "02-flight-options")
    chosen = flights.first.inner_text()
    flights.first.click()
    wait_idle(page)
    expect(user_bubbles(page).last).to_have_text(chosen)
    expect_bot(page, "last name")
    send(page, "Smith")
    expect_bot(page, "e-mail")
    send(page, "jane.smith@example.com")
    expect_bot(page, "Please confirm: AN")
    page.get_by_role("button", name="Yes, hold them").click()
    wait_idle(page)
    done = expect_bot(page, r"booking reference is [A-Z0-9]{6}")
    reference = re.search(r"booking reference is ([A-Z0-9]{6})", done.inner_text())
    assert reference is not None
    # The payment link is a real, safe link.
    payment = done.get_by_role("link")
    expect(payment).to_have_attribute("href", re.compile(r"^https://pay\.andaman-air\.example/"))
    expect(payment).to_have_attribute("rel", "noopener noreferrer")
    expect(payment).to_have_attribute("target", "_blank")
    shot(page, "03-booking-confirmed")

    # After a reload the whole conversation is back, button clicks shown by their titles.
    page.reload()
    wait_loaded(page)
    expect(composer(page)).to_be_visible()  # the panel stays open across reloads
    expect(log(page)).to_contain_text(f"booking reference is {reference.group(1)}")
    expect(user_bubbles(page)).to_have_text(
        [
            sample_1_text(),
            "Economy",
            chosen,
            "Smith",
            "jane.smith@example.com",
            "Yes, hold them",
        ]
    )
    expect(page.locator(".tw-msg time").first).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    shot(page, "04-after-reload")

    # Another tab of the same visitor sees the same conversation, and hears about new turns.
    other = context.new_page()
    open_demo(other)
    other.get_by_role("button", name="Chat with Andaman Air").click()
    wait_loaded(other)
    expect(log(other)).to_contain_text(f"booking reference is {reference.group(1)}")
    send(page, "thanks")
    expect(user_bubbles(other).last).to_have_text("thanks")
    other.close()


def test_markdown_and_html_typed_by_the_visitor_is_shown_as_text(page: Page) -> None:
    open_chat(page)
    typed = '<img src=x onerror="window.__pwned=1"><b>bold?</b> **not bold** [click](javascript:alert(1)) `code`'
    send(page, typed)
    bubble = user_bubbles(page).last
    expect(bubble).to_have_text(typed)
    assert bubble.locator("img, b, strong, a, code").count() == 0
    assert page.evaluate("window.__pwned") is None
    send(page, "<script>window.__pwned=2</script>\n# heading\n- item")
    expect(user_bubbles(page).last).to_have_text("<script>window.__pwned=2</script>\n# heading\n- item")
    assert page.evaluate("window.__pwned") is None
    # The bot's own light markdown becomes real (safe) elements: its capabilities list.
    send(page, "what can you help me with?")
    reply = expect_bot(page, "I can help you")
    expect(reply.locator("ul > li")).to_have_count(5)
    shot(page, "05-text-is-text")


def test_keyboard_only(page: Page) -> None:
    open_demo(page)
    launcher = page.get_by_role("button", name="Chat with Andaman Air")
    for _ in range(30):
        page.keyboard.press("Tab")
        if launcher.evaluate("el => el.getRootNode().activeElement === el"):
            break
    else:
        raise AssertionError("the chat launcher cannot be reached with Tab")
    page.keyboard.press("Enter")
    box = composer(page)
    expect(box).to_be_focused()
    wait_loaded(page)
    page.keyboard.type(sample_1_text())
    page.keyboard.press("Enter")
    wait_idle(page)
    expect(choices(page)).to_have_text(["Economy", "Business"])
    expect(box).to_be_focused()  # focus stays where the visitor types
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Business")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Economy")).to_be_focused()
    page.keyboard.press("Enter")
    wait_idle(page)
    expect_bot(page, "Here are the flights")
    expect(box).to_be_focused()  # the clicked button is gone; focus went back to the composer
    # The live region announces new messages.
    expect(log(page)).to_have_attribute("aria-live", "polite")
    # Escape closes the panel and gives focus back to the launcher.
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    expect(launcher).to_be_focused()


def test_rate_the_conversation(page: Page) -> None:
    open_chat(page)
    send(page, "hello")
    send(page, "bye")
    expect_bot(page, "how would you rate")
    group = page.get_by_role("group", name=re.compile("Rate this conversation"))
    expect(group.get_by_role("button")).to_have_count(5)
    shot(page, "06-rating")
    group.get_by_role("button", name="Rate 5 out of 5").click()
    wait_idle(page)
    expect_bot(page, "Thank you for your feedback")
    expect(user_bubbles(page).last).to_contain_text("Rated 5 out of 5")
    expect(group).to_have_count(0)


def test_new_conversation(page: Page) -> None:
    open_chat(page)
    send(page, "hello")
    expect_bot(page, "Andaman Air assistant")
    page.get_by_role("button", name="New conversation").click()
    start = page.get_by_role("button", name="Start new")
    expect(start).to_be_focused()
    start.click()
    expect(user_bubbles(page)).to_have_count(0)
    expect(bot_bubbles(page)).to_have_count(1)  # the greeting
    expect(composer(page)).to_be_focused()
    page.reload()
    wait_loaded(page)
    expect(user_bubbles(page)).to_have_count(0)


def test_network_failure_shows_a_retry(page: Page) -> None:
    open_chat(page)
    page.route("**/api/v1/messages", lambda route: route.abort("internetdisconnected"))
    composer(page).fill("hello")
    composer(page).press("Enter")
    expect(page.locator(".tw-failed")).to_contain_text("Not sent.", timeout=20_000)
    expect(page.get_by_role("status").filter(has_text="offline")).to_be_visible()
    shot(page, "07-offline")
    page.unroute("**/api/v1/messages")
    page.locator(".tw-failed").get_by_role("button", name="Retry").click()
    wait_idle(page)
    expect_bot(page, "Andaman Air assistant")
    expect(page.locator(".tw-failed")).to_have_count(0)


def test_agent_will_join_then_back_to_the_assistant(page: Page) -> None:
    """The real bot hands over (its marker {"handoff": {"state": "pending"}}, README "An agent will join"):
    the widget waits for an agent, polls GET /api/v1/handoff (never the whole history), shows nothing
    for the gateway's marker-only answers, and "Back to the assistant" gives the conversation back."""
    open_chat(page)
    history: list[str] = []
    page.on("request", lambda r: history.append(r.url) if "/api/v1/history" in r.url else None)
    poll = re.compile(r"/api/v1/handoff\?after=\d+$")
    with page.expect_request(poll):
        send(page, "I want a human")
    expect_bot(page, "ticket #")
    expect(page.get_by_role("status").filter(has_text="An agent will join")).to_be_visible()
    expect(page.locator(".tw-subtitle")).to_have_text("Waiting for an agent…")
    expect(page.locator("#tandem-chat")).to_have_attribute("data-handoff", "pending")
    shot(page, "08-agent-will-join")

    # While waiting, a message goes to the ticket: the answer is a marker only, shown as nothing.
    bot_items = page.locator(".tw-msg.tw-bot")
    shown = bot_items.count()
    send(page, "are you there?")
    expect(user_bubbles(page).last).to_have_text("are you there?")
    expect(bot_items).to_have_count(shown)
    expect(page.locator("#tandem-chat")).to_have_attribute("data-handoff", "pending")
    for _ in range(2):  # it keeps polling, every 2 s
        with page.expect_request(poll, timeout=10_000):
            pass
    assert history == []  # the poll is GET /api/v1/handoff only

    page.get_by_role("button", name="Back to the assistant").click()
    wait_idle(page)
    expect_bot(page, "withdrawn the request")
    expect(page.locator("#tandem-chat")).to_have_attribute("data-handoff", "none")
    expect(page.get_by_role("status").filter(has_text="An agent will join")).to_have_count(0)
    expect(page.locator(".tw-subtitle")).to_have_text(re.compile("^Virtual assistant"))
    send(page, "what can you help me with?")
    expect_bot(page, "I can help you")  # the bot answers again


def test_phone_360px(browser: object, gateway: str) -> None:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 360, "height": 740}, base_url=gateway, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        open_chat(page)
        send(page, sample_1_text())
        page.get_by_role("button", name="Economy").click()
        wait_idle(page)
        expect_bot(page, "Here are the flights")
        box = page.locator(".tw-panel").bounding_box()
        assert box is not None and box["width"] == 360 and box["x"] == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        for button in choices(page).all():
            b = button.bounding_box()
            assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 360 and b["height"] >= 40
        shot(page, "09-phone-360")
    finally:
        context.close()
