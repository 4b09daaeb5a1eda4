"""Fixtures of the help-desk tests: the fake Chatwoot API over real HTTP, Chatwoot settings pointing
at it, an HTTP client, and a real Redis (the Redis tests error out, never skip, when it is missing)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tandem.settings.desk import ChatwootSettings
from tests.fakes.chatwoot_api import ACCOUNT_ID, CHATWOOT_TOKEN, INBOX_ID
from tests.fakes.chatwoot_fixtures import (  # noqa: F401 (fixtures)
    _chatwoot_server,
    chatwoot_api,
    chatwoot_base_url,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WEBHOOK_SECRET = "cw-webhook-secret-0123456789"


@pytest.fixture
def chatwoot_settings_for(chatwoot_base_url: str) -> Callable[..., ChatwootSettings]:  # noqa: F811 (a fixture)
    """Chatwoot settings pointing at the fake (never read from .env or the environment's values)."""

    def make(**overrides: Any) -> ChatwootSettings:
        values: dict[str, Any] = {
            "CHATWOOT_BASE_URL": chatwoot_base_url,
            "CHATWOOT_API_TOKEN": CHATWOOT_TOKEN,
            "CHATWOOT_ACCOUNT_ID": ACCOUNT_ID,
            "CHATWOOT_INBOX_ID": INBOX_ID,
            "CHATWOOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        values.update(overrides)
        return ChatwootSettings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def chatwoot_settings(chatwoot_settings_for: Callable[..., ChatwootSettings]) -> ChatwootSettings:
    return chatwoot_settings_for()
