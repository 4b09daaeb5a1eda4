"""Finding 5: the answer cache must not serve one conversation's context-dependent answer to another.

The local server answers from the history it receives (Tokyo → the international fee, Krabi →
the domestic fee). Two customers type the same short follow-up after different histories: each
must get the answer of their own history. A self-contained question is still answered once and
served from the cache to everybody (and then no history is sent with it at all).
"""

# The fixtures are imported from llm_chains, so test arguments share their names.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

from tandem.llm import Turn
from tandem.services.fallback import FallbackRequest
from tests.fallback.fake_llm import FakeLlmServer, Step, reply

from .llm_chains import (  # noqa: F401  (fixtures)
    SURF,
    ChainFactory,
    _server,
    answer_by,
    blank_masker,
    fake_llm,
    history_text,
    knowledge,
    llm_chains,
)

INTERNATIONAL = "On international flights a surfboard bag costs 2,500 THB each way."
DOMESTIC = "On domestic flights a surfboard bag costs 1,500 THB each way."
TOKYO = [Turn("user", "I fly to Tokyo next week on AN801"), Turn("assistant", "Noted: an international flight.")]
KRABI = [Turn("user", "I fly to Krabi tomorrow on AN204"), Turn("assistant", "Noted: a domestic flight.")]


def _by_history(body: dict[str, Any]) -> Step:
    answer = INTERNATIONAL if "Tokyo" in history_text(body) else DOMESTIC
    return Step(content=reply(answer=answer, sources=[SURF], confidence=0.9))


async def test_same_follow_up_after_different_histories_gets_its_own_answer(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    answer_by(fake_llm, _by_history)
    chain = llm_chains()
    tokyo = await chain.decide(FallbackRequest(conversation_id="a", text="and my surfboard?", history=TOKYO))
    krabi = await chain.decide(FallbackRequest(conversation_id="b", text="and my surfboard?", history=KRABI))
    assert (tokyo.messages[0].text or "").startswith(INTERNATIONAL)
    assert (krabi.messages[0].text or "").startswith(DOMESTIC), "served the other conversation's answer"
    assert not krabi.cached and len(fake_llm.requests) == 2


async def test_same_follow_up_after_the_same_history_is_served_from_the_cache(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    answer_by(fake_llm, _by_history)
    chain = llm_chains()
    await chain.decide(FallbackRequest(conversation_id="a", text="and my surfboard?", history=TOKYO))
    again = await chain.decide(FallbackRequest(conversation_id="c", text="And my surfboard", history=TOKYO))
    assert again.cached and len(fake_llm.requests) == 1


async def test_a_context_free_question_is_still_cached_across_conversations(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    answer_by(fake_llm, _by_history)
    chain = llm_chains()
    question = "Can I bring my surfboard on the plane?"
    first = await chain.decide(FallbackRequest(conversation_id="a", text=question, history=TOKYO))
    second = await chain.decide(FallbackRequest(conversation_id="b", text=question, history=KRABI))
    assert second.cached and second.messages == first.messages
    (body,) = fake_llm.requests
    # The answer may be shared only because the prompt did not contain the history.
    assert len(body["messages"]) == 2 and "Tokyo" not in str(body)
