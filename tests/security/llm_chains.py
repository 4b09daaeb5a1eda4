"""Fallback chains against a local OpenAI-compatible server, for the PII, cache and budget tests.

The server is the one of ``tests/fallback`` (real HTTP on 127.0.0.1, every request recorded).
:func:`answer_by` makes it answer from what each request contains (e.g. its history) instead of
a fixed script, so a test can tell which prompt an answer came from.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tandem.guard import PiiMasker
from tandem.knowledge import KnowledgeBase
from tandem.services.fallback import FallbackChain
from tests.fallback.conftest import ROOT, fallback_settings
from tests.fallback.fake_llm import FakeLlmServer, Step

ChainFactory = Callable[..., FallbackChain]
SURF = "sports-equipment#surfboards"


def answer_by(server: FakeLlmServer, answer: Callable[[dict[str, Any]], Step]) -> None:
    """Make ``server`` answer each request with ``answer(body)``."""
    server.reset()
    server.responder = answer


def sent_text(server: FakeLlmServer) -> str:
    """Everything that reached the "vendor", as one string."""
    return json.dumps(server.requests, ensure_ascii=False)


def history_text(body: dict[str, Any]) -> str:
    """The history messages of one request (everything between the system message and the turn)."""
    return " ".join(m["content"] for m in body["messages"][1:-1])


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeLlmServer]:
    server = FakeLlmServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_llm(_server: FakeLlmServer) -> FakeLlmServer:
    _server.reset()
    return _server


@pytest.fixture(scope="session")
def blank_masker() -> PiiMasker:
    """The masker as deployed without a trained spaCy pipeline (the default install)."""
    return PiiMasker.create(prefer_trained=False)


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    return KnowledgeBase.from_directory(ROOT / "knowledge")


@pytest.fixture
async def llm_chains(
    fake_llm: FakeLlmServer, knowledge: KnowledgeBase, blank_masker: PiiMasker
) -> AsyncIterator[ChainFactory]:
    """Chains pointed at the fake server (no Redis unless a test passes ``REDIS_URL``)."""
    chains: list[FallbackChain] = []

    def factory(**overrides: Any) -> FallbackChain:
        values: dict[str, Any] = {
            "LLM_BASE_URL": fake_llm.base_url,
            "LLM_MODEL": "test-model",
            "LLM_API_KEY": "sk-test",
            "LLM_TIMEOUT_SECONDS": 2,
            "LLM_MAX_RETRIES": 0,
        }
        values.update(overrides)
        chain = FallbackChain.from_settings(
            fallback_settings(**values), registry=CollectorRegistry(), kb=knowledge, masker=blank_masker
        )
        chains.append(chain)
        return chain

    yield factory
    for chain in chains:
        await chain.aclose()
