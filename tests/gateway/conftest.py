"""Gateway fixtures: a fake Rasa over real HTTP, settings, and an HTTP client for the app."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from tandem.gateway import create_app
from tandem.gateway.sessions import COOKIE_NAME
from tandem.settings import GatewayAppSettings, load_gateway_settings

from .fakes import TOKEN, FakeRasa, ServerThread, free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "test-secret-" + "x1y2z3" * 6
BASE = "http://gateway.test"


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeRasa, ServerThread]]:
    fake = FakeRasa()
    server = ServerThread(fake.app()).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeRasa, ServerThread]) -> Iterator[FakeRasa]:
    fake_server[0].reset()
    yield fake_server[0]
    fake_server[0].reset()


@pytest.fixture
def fake_url(fake_server: tuple[FakeRasa, ServerThread]) -> str:
    return fake_server[1].url


@pytest.fixture
def settings_for(tmp_path: Path, fake_url: str, sqlite_template: Path) -> Callable[..., GatewayAppSettings]:
    """GatewayAppSettings pointing at the fake Rasa; never reads .env or the developer's REDIS_URL.

    The database is a private copy of the migrated template: the desk reads the handoffs there.
    """
    database = tmp_path / "gateway.db"
    if not database.exists():
        shutil.copyfile(sqlite_template, database)

    def make(**overrides: Any) -> GatewayAppSettings:
        values: dict[str, Any] = {
            "_env_file": None,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
            "REDIS_URL": None,
            "GATEWAY_SECRET": SECRET,
            "RASA_URL": fake_url,
            "RASA_API_TOKEN": TOKEN,
            "RASA_TIMEOUT_SECONDS": 1.0,
            "ACTION_SERVER_URL": f"{fake_url}/webhook",
            "GATEWAY_CHECK_TIMEOUT_SECONDS": 1.0,
            "GATEWAY_RATE_LIMIT_SESSION": "1000/minute",
            "GATEWAY_RATE_LIMIT_ADDRESS": "1000/minute",
            "GATEWAY_RATE_LIMIT_NEW_SESSION": "1000/minute",
        }
        values.update(overrides)
        return load_gateway_settings(**values)

    return make


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[GatewayAppSettings], httpx.AsyncClient]]:
    """An HTTP client for a new app built from the given settings (in-process ASGI transport)."""
    clients: list[httpx.AsyncClient] = []

    def make(settings: GatewayAppSettings) -> httpx.AsyncClient:
        app = create_app(settings)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        client.app = app  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()
        state = c.app.state.gateway  # type: ignore[attr-defined]
        await state.http.aclose()  # the ASGI transport runs no lifespan: close what the app opened
        await state.infra.aclose()


@pytest.fixture
async def client(settings_for: Callable[..., GatewayAppSettings], client_for: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(settings_for()) as c:
        yield c


async def start_session(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/v1/session", json={})
    assert response.status_code == 200, response.text
    return str(client.cookies.get(COOKIE_NAME))


async def say(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/messages", json=body)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.ping()  # raises when Redis is unreachable: the Redis tests error out, never skip
    yield client
    client.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on which nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


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
    prefix = f"test:gateway:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in aredis.scan_iter(match=prefix + "*")]
    if keys:
        await aredis.delete(*keys)
