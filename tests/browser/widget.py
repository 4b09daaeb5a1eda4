"""Helpers that drive the widget the way a visitor does (locators pierce its open shadow root)."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from .conftest import SHOTS


def open_demo(page: Page) -> None:
    page.goto("/")
    expect(page.locator("#tandem-chat")).to_have_attribute("data-ready", "true")


def open_chat(page: Page) -> None:
    open_demo(page)
    launcher = page.get_by_role("button", name="Chat with Andaman Air")
    if launcher.is_visible():
        launcher.click()
    expect(composer(page)).to_be_focused()
    wait_loaded(page)


def wait_loaded(page: Page) -> None:
    """The conversation's history has been fetched (the panel is open)."""
    expect(page.locator("#tandem-chat")).to_have_attribute("data-loaded", "true")


def composer(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message")


def log(page: Page) -> Locator:
    return page.get_by_role("log", name="Conversation")


def bot_bubbles(page: Page) -> Locator:
    return page.locator(".tw-bot .tw-bubble")


def user_bubbles(page: Page) -> Locator:
    return page.locator(".tw-user .tw-bubble")


def choices(page: Page) -> Locator:
    return page.locator(".tw-choices button")


def wait_idle(page: Page) -> None:
    expect(page.locator("#tandem-chat")).to_have_attribute("data-busy", "false")


def send(page: Page, text: str) -> None:
    box = composer(page)
    box.fill(text)
    box.press("Enter")
    wait_idle(page)


def expect_bot(page: Page, pattern: str) -> Locator:
    """The latest bot message matching ``pattern`` (waits for it)."""
    bubble = bot_bubbles(page).filter(has_text=re.compile(pattern)).last
    expect(bubble).to_be_visible()
    return bubble


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))
