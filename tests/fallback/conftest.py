"""Fixtures of the fallback tests: the knowledge base, spaCy masker, fake LLM server, chains."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tandem.guard import PiiMasker
from tandem.knowledge import KnowledgeBase
from tandem.services.fallback import FallbackChain
from tandem.settings import ActionSettings, load_action_settings

from .fake_llm import FakeLlmServer

ROOT = Path(__file__).resolve().parents[2]


def fallback_settings(**overrides: Any) -> ActionSettings:
    """ActionSettings for these tests: no .env, no Redis, no model unless a test says so."""
    values: dict[str, Any] = {
        "_env_file": None,
        "REDIS_URL": None,
        "LLM_MODEL": None,
        "LLM_BASE_URL": None,
        "LLM_API_KEY": None,
        "OPENAI_API_KEY": None,
        "KNOWLEDGE_DIR": str(ROOT / "knowledge"),
    }
    values.update(overrides)
    return load_action_settings(**values)


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_directory(ROOT / "knowledge")


@pytest.fixture(scope="session")
def masker() -> PiiMasker:
    return PiiMasker.create()


@pytest.fixture(scope="session")
def _llm_server() -> Iterator[FakeLlmServer]:
    server = FakeLlmServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def llm_server(_llm_server: FakeLlmServer) -> FakeLlmServer:
    _llm_server.reset()
    return _llm_server


ChainFactory = Callable[..., FallbackChain]


@pytest.fixture
async def make_chain(kb: KnowledgeBase, masker: PiiMasker) -> AsyncIterator[ChainFactory]:
    """Build chains from settings overrides; each gets a fresh metrics registry; closed after the test."""
    chains: list[FallbackChain] = []

    def factory(**overrides: Any) -> FallbackChain:
        chain = FallbackChain.from_settings(
            fallback_settings(**overrides), registry=CollectorRegistry(), kb=kb, masker=masker
        )
        chains.append(chain)
        return chain

    yield factory
    for chain in chains:
        await chain.aclose()


@pytest.fixture
def llm_chain(make_chain: ChainFactory, llm_server: FakeLlmServer) -> ChainFactory:
    """A factory of chains pointed at the fake server (fast backoff, short timeouts)."""

    def factory(**overrides: Any) -> FallbackChain:
        values: dict[str, Any] = {
            "LLM_BASE_URL": llm_server.base_url,
            "LLM_MODEL": "test-model",
            "LLM_API_KEY": "sk-test",
            "LLM_TIMEOUT_SECONDS": 2,
            "LLM_MAX_RETRIES": 2,
            "LLM_BACKOFF_BASE_SECONDS": 0.01,
            "LLM_BACKOFF_MAX_SECONDS": 0.05,
        }
        values.update(overrides)
        return make_chain(**values)

    return factory
