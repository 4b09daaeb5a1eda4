"""End-to-end fixtures: the fake Slack Web API and Telegram Bot API (the stack is tests/conftest.py's)."""

from tests.fakes.fixtures import (  # noqa: F401 (fixtures)
    _slack_server,
    _telegram_server,
    slack_api,
    slack_base_url,
    telegram_api,
    telegram_base_url,
)
