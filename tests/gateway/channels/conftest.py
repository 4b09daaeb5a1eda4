"""Fixtures of the channel tests: the fake Slack and Telegram APIs over real HTTP, an HTTP client,
and a real Redis (the Redis tests error out, never skip, when it is missing)."""

from __future__ import annotations

import os

from tests.fakes.fixtures import (  # noqa: F401 (fixtures)
    _slack_server,
    _telegram_server,
    slack_api,
    slack_base_url,
    telegram_api,
    telegram_base_url,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
