"""Fixtures serving the fake Slack and Telegram APIs over real HTTP, one server each per session.

Import them into a directory's ``conftest.py`` (``from tests.fakes.fixtures import ...``) to use
them there; each test gets the fake reset (``slack_api``, ``telegram_api``) and its base URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.gateway.fakes import ServerThread


@pytest.fixture(scope="session")
def _slack_server() -> Iterator[tuple[FakeSlack, ServerThread]]:
    fake = FakeSlack()
    server = ServerThread(fake.app()).start()
    yield fake, server
    server.stop()


@pytest.fixture
def slack_api(_slack_server: tuple[FakeSlack, ServerThread]) -> Iterator[FakeSlack]:
    _slack_server[0].reset()
    yield _slack_server[0]
    _slack_server[0].reset()


@pytest.fixture
def slack_base_url(_slack_server: tuple[FakeSlack, ServerThread]) -> str:
    return _slack_server[1].url + "/api"


@pytest.fixture(scope="session")
def _telegram_server() -> Iterator[tuple[FakeTelegram, ServerThread]]:
    fake = FakeTelegram()
    server = ServerThread(fake.app()).start()
    yield fake, server
    server.stop()


@pytest.fixture
def telegram_api(_telegram_server: tuple[FakeTelegram, ServerThread]) -> Iterator[FakeTelegram]:
    _telegram_server[0].reset()
    yield _telegram_server[0]
    _telegram_server[0].reset()


@pytest.fixture
def telegram_base_url(_telegram_server: tuple[FakeTelegram, ServerThread]) -> str:
    return _telegram_server[1].url
