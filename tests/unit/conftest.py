"""Fixtures of the unit tests besides the shared ones (tests/conftest.py): the fake Telegram Bot API
over real HTTP (tests/fakes/fixtures.py), for the command line's ``telegram set-webhook``."""

from __future__ import annotations

from tests.fakes.fixtures import _telegram_server, telegram_api, telegram_base_url  # noqa: F401 (fixtures)
