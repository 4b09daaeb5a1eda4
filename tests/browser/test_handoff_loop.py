"""The whole human handoff in two browsers over the real stack (Rasa, the action server, the gateway).

The customer asks the real bot for a person in the widget; an agent created with the CLI logs in to
the console at /agent/, claims the handoff, and they write to each other twice each way; the agent
resolves, the bot says so with its rating prompt and answers again. While the agent has the
conversation, none of the customer's messages reaches Rasa (its tracker is read at the end).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import create_engine, text

from tests.stack import ROOT, Stack

from .conftest import SHOTS
from .widget import composer, expect_bot, open_chat, send, shot, user_bubbles, wait_idle

pytestmark = pytest.mark.e2e

EMAIL = "ploy@andaman.example"
WAIT_MS = 15_000  # an agent's message reaches the widget within ~2 s (its poll); generous for slow machines
ROUNDS = [
    ("Hi, I'm Ploy from support", "My bag did not arrive"),
    ("Found it: it comes on tonight's flight", "Great, thank you"),
]


@pytest.fixture(scope="module")
def password(stack: Stack) -> str:
    """Ploy, created as docs/handoff.md says: the CLI, the password on standard input, the stack's database."""
    secret = secrets.token_urlsafe(18)
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "agent", "add", "--email", EMAIL, "--name", "Ploy"],
        cwd=ROOT,
        env=stack.env,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    return secret


@pytest.fixture
def console(browser: Browser, gateway: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The agent's browser: its own context (cookies), desktop size (the console's two columns)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=gateway, locale="en-GB")
    context.set_default_timeout(45_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            page.screenshot(path=str(SHOTS / f"FAILED-{request.node.name}-agent.png"))
        assert errors == [], f"JavaScript errors in the console: {errors}"
    finally:
        context.close()


def banner(page: Page, pattern: str) -> Locator:
    return page.get_by_role("status").filter(has_text=re.compile(pattern))


def transcript(console: Page, role: str, text: str) -> Locator:
    return console.locator(f'[data-testid="transcript-message"][data-role="{role}"]').filter(has_text=text)


def conversation_of(stack: Stack, ticket_id: int) -> str:
    """The conversation (Rasa's sender id) of a ticket: the gateway derives it from the session, server-side."""
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT conversation_id FROM tickets WHERE id = :id"), {"id": ticket_id}
            ).scalar_one()
    finally:
        engine.dispose()
    return str(found)


def user_texts(stack: Stack, conversation: str) -> list[str]:
    """What Rasa heard from the customer (its tracker's user events)."""
    events = stack.tracker(conversation)["events"]
    return [str(e.get("text")) for e in events if e.get("event") == "user"]


def test_the_customer_and_an_agent_in_two_browsers_then_the_bot_again(
    page: Page, console: Page, stack: Stack, password: str
) -> None:
    customer = page
    host = customer.locator("#tandem-chat")

    # The customer asks the real bot for a person: a ticket, the "pending" state.
    open_chat(customer)
    send(customer, "I want to talk to a human")
    handed = expect_bot(customer, r"ticket #\d+")
    found = re.search(r"ticket #(\d+)", handed.inner_text())
    assert found is not None
    ticket_id = int(found.group(1))
    expect(host).to_have_attribute("data-handoff", "pending")
    expect(banner(customer, "An agent will join")).to_be_visible()
    expect(customer.get_by_role("button", name="Back to the assistant")).to_be_visible()
    conversation = conversation_of(stack, ticket_id)
    heard_before = user_texts(stack, conversation)

    # The agent logs in, finds the handoff in the queue, opens and claims it.
    console.goto("/agent/")
    console.get_by_test_id("login-email").fill(EMAIL)
    console.get_by_test_id("login-password").fill(password)
    console.get_by_test_id("login-submit").click()
    expect(console.get_by_test_id("agent-name")).to_have_text("Ploy")
    console.get_by_test_id("tab-queued").click()
    row = console.locator(f'[data-testid="handoff-row"][data-id="{ticket_id}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    row.get_by_role("button").click()
    detail = console.get_by_test_id("handoff-detail")
    expect(detail).to_have_attribute("data-status", "queued")
    expect(transcript(console, "customer", "I want to talk to a human")).to_have_count(1)
    console.get_by_test_id("claim").click()
    expect(detail).to_have_attribute("data-status", "assigned")
    expect(console.get_by_test_id("reply-text")).to_be_visible()

    # The customer's widget: Ploy has joined (from its poll of GET /api/v1/handoff).
    expect(banner(customer, "Ploy from our support team has joined")).to_be_visible(timeout=WAIT_MS)
    expect(host).to_have_attribute("data-handoff", "agent_joined")
    expect(customer.locator(".tw-subtitle")).to_have_text("Ploy is chatting with you")
    expect(customer.get_by_role("button", name="Back to the assistant")).to_have_count(0)
    shot(customer, "10-handoff-agent-joined")

    # Two replies each way.
    bot_items = customer.locator(".tw-msg.tw-bot")
    for agent_text, customer_text in ROUNDS:
        console.get_by_test_id("reply-text").fill(agent_text)
        console.get_by_test_id("reply-send").click()
        expect(transcript(console, "agent", agent_text)).to_have_count(1)
        from_ploy = customer.locator(".tw-msg.tw-agent").filter(has_text=agent_text)
        expect(from_ploy).to_have_count(1, timeout=WAIT_MS)
        expect(from_ploy.locator(".tw-who")).to_have_text("Ploy")
        expect(from_ploy).to_contain_text("Ploy:")  # the screen reader's label too
        shown = bot_items.count()
        send(customer, customer_text)
        expect(user_bubbles(customer).last).to_have_text(customer_text)
        expect(transcript(console, "customer", customer_text)).to_have_count(1, timeout=WAIT_MS)
        # The gateway's answer is a marker only: no bubble, empty or not, for it.
        expect(bot_items).to_have_count(shown)
    # Every agent message once, however many polls ran meanwhile.
    expect(customer.locator(".tw-msg.tw-agent")).to_have_count(len(ROUNDS))
    assert customer.locator(".tw-msg.tw-bot:not(:has(.tw-bubble)):not(:has(img))").count() == 0
    shot(console, "11-agent-console")

    # While Ploy had it, Rasa heard nothing of the customer (and stays paused until the hand-back).
    tracker = stack.tracker(conversation)
    assert tracker["paused"] is True
    assert user_texts(stack, conversation) == heard_before
    customer_texts = {c for _, c in ROUNDS}
    assert not customer_texts & set(user_texts(stack, conversation))

    # Ploy resolves: the bot says so in the widget, with its rating prompt.
    console.get_by_test_id("resolve").click()
    expect(detail).to_have_attribute("data-status", "resolved")
    solved = customer.locator(".tw-bot .tw-bubble").filter(has_text="Ploy marked this as solved")
    expect(solved).to_have_count(1, timeout=WAIT_MS)
    rating = customer.get_by_role("group", name=re.compile("Rate this conversation"))
    expect(rating.get_by_role("button")).to_have_count(5)
    expect(host).to_have_attribute("data-handoff", "none")
    expect(banner(customer, "support team")).to_have_count(0)
    expect(customer.locator(".tw-subtitle")).to_have_text(re.compile("^Virtual assistant"))
    # The handoff stays in the conversation: Ploy's messages are still there, once each.
    expect(customer.locator(".tw-msg.tw-agent")).to_have_count(len(ROUNDS))
    # The external intent Rasa stored for the hand-back is nobody's message.
    expect(customer.locator(".tw-msg").filter(has_text="EXTERNAL:")).to_have_count(0)
    shot(customer, "12-hand-back")

    # The bot has the conversation again: the rating, then a question it answers.
    rating.get_by_role("button", name="Rate 5 out of 5").click()
    wait_idle(customer)
    expect_bot(customer, "Thank you for your feedback")
    send(customer, "Is AN204 on time today?")
    expect_bot(customer, r"^AN204 from")
    expect(composer(customer)).to_be_visible()
    heard = user_texts(stack, conversation)
    assert "Is AN204 on time today?" in heard
    assert not customer_texts & set(heard)
