"""Fixtures of the channel tests: the fake Slack and Telegram APIs over real HTTP, an HTTP client,
and a real Redis (the Redis tests error out, never skip, when it is missing)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from tests.fakes.fixtures import (  # noqa: F401 (fixtures)
    _slack_server,
    _telegram_server,
    slack_api,
    slack_base_url,
    telegram_api,
    telegram_base_url,
)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def aredis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    await client.ping()  # raises when Redis is unreachable: these tests fail, never skip
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(aredis: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test:channels:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in aredis.scan_iter(match=prefix + "*")]
    if keys:
        await aredis.delete(*keys)
