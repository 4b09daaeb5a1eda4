"""Finding 4: personal data reaches the LLM and the log.

What the model receives (through a local OpenAI-compatible server) must not hold the pair that
opens a booking (reference + surname), names, e-mails or phones; the INFO log must not hold the
customer's text at all; the audit log masks phone and card numbers like the guard does.
"""

# The fixtures are imported from llm_chains, so test arguments share their names.
# ruff: noqa: F811

from __future__ import annotations

import logging
import unicodedata

import pytest

from actions.fallback import request_of
from tandem.guard import PiiMasker
from tandem.llm import Turn
from tandem.services import audit
from tandem.services.fallback import FallbackRequest
from tests.fallback.fake_llm import FakeLlmServer, Step, reply

from .llm_chains import (  # noqa: F401  (fixtures)
    SURF,
    ChainFactory,
    _server,
    blank_masker,
    fake_llm,
    history_text,
    knowledge,
    llm_chains,
    sent_text,
)
from .trackers import tracker

LOOKUP_HISTORY = [
    Turn("user", "I want to check my booking"),
    Turn("assistant", "Sure. What is your booking reference?"),
    Turn("user", "it's hv4qkp"),
    Turn("assistant", "And the last name on the booking?"),
    Turn("user", "Müller"),
    Turn("assistant", "Thank you. Booking HV4QKP for MÜLLER: confirmed, departs tomorrow."),
]


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


async def test_the_masker_is_the_one_without_a_trained_pipeline(blank_masker: PiiMasker) -> None:
    # The finding is about the default install: spaCy's blank English, no NER.
    assert not blank_masker.trained


async def test_history_never_carries_the_reference_and_surname_pair(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    fake_llm.reset(Step(content=reply(answer="Surfboards travel in the hold as sports equipment.", sources=[SURF])))
    chain = llm_chains()
    request = FallbackRequest(
        conversation_id="c-1",
        text="and can I bring my surfboard too?",
        history=LOOKUP_HISTORY,
        known_pii={"booking_ref": "HV4QKP", "last_name": "Müller"},
    )
    await chain.decide(request)
    (body,) = fake_llm.requests
    history = _fold(history_text(body))
    assert "hv4qkp" not in history and "muller" not in history
    assert "[BOOKING_REF]" in history_text(body) and "[NAME]" in history_text(body)
    assert "muller" not in _fold(sent_text(fake_llm)) and "hv4qkp" not in _fold(sent_text(fake_llm))


async def test_known_values_are_masked_in_the_turn_whatever_the_case_or_accents(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    chain = llm_chains()
    await chain.decide(
        FallbackRequest(
            conversation_id="c-2",
            text="is the booking of MULLER or muller or Mueller refundable? mail jane.roe@example.org",
            known_pii={"last_name": "Müller", "email": "Jane.Roe@Example.org"},
        )
    )
    sent = _fold(sent_text(fake_llm))
    assert "muller" not in sent and "mueller" not in sent and "jane.roe" not in sent


async def test_booking_references_in_the_history_are_masked_without_slots_and_words_are_not(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    history = [
        Turn("user", "my booking is XK93PQ and my friend has ZR7TWM"),
        Turn("assistant", "Please travel with your ticket; flight AN204 leaves Bangkok at 18:30."),
    ]
    await llm_chains().decide(FallbackRequest(conversation_id="c-3", text="and what about that one?", history=history))
    text = history_text(fake_llm.requests[0])
    assert "XK93PQ" not in text and "ZR7TWM" not in text and text.count("[BOOKING_REF]") == 2
    for word in ("travel", "ticket", "AN204", "Bangkok", "friend"):
        assert word in text


@pytest.mark.parametrize(
    ("turn", "name"),
    [
        ("my name is Jane Doe", "Jane Doe"),
        ("I'm Somchai, hello", "Somchai"),
        ("the surname is tanaka", "tanaka"),
        ("it's booked under Garcia", "Garcia"),
        ("this is Khun Malee Srisuk speaking", "Malee Srisuk"),
        ("last name: van der Berg", "Berg"),
        ("passenger Lukas Novak needs a wheelchair", "Lukas Novak"),
    ],
)
async def test_names_are_masked_without_a_trained_pipeline(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer, turn: str, name: str
) -> None:
    await llm_chains().decide(
        FallbackRequest(conversation_id="c-4", text="and is that one ok?", history=[Turn("user", turn)])
    )
    sent = sent_text(fake_llm)
    for part in name.split():
        assert part not in sent, (turn, part)
    assert "[NAME]" in sent


async def test_no_message_text_in_the_info_log(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chain = llm_chains()
    await chain.decide(FallbackRequest(conversation_id="c-5", text="can I bring my zebracorn surfboard?"))
    await chain.decide(
        FallbackRequest(
            conversation_id="c-5",
            text="my name is Jane Doe, mail jane@example.com, can I bring a surfboard?",
            known_pii={"last_name": "Doe"},
        )
    )
    assert any(r.name == "tandem.services.fallback" for r in caplog.records)
    for record in caplog.records:
        message = record.getMessage()
        if record.levelno >= logging.INFO:
            assert "zebracorn" not in message and "surfboard" not in message, message
        # DEBUG may carry text, masked only.
        assert "jane@example.com" not in message and "Doe" not in message, message


def test_the_action_passes_known_identifying_values_and_the_client_key() -> None:
    t = tracker(
        {"last_name": "Smith", "booking_ref": "AB12CD", "email": "john@example.com", "cabin": "economy"},
        client="client-key-1",
        text="hmm what about Tanaka then",
        intent="nlu_fallback",
    )
    t.latest_message["entities"] = [{"entity": "last_name", "value": "Tanaka", "start": 15, "end": 21}]
    request = request_of(t)
    assert request.client_key == "client-key-1"
    assert sorted(request.known_pii) == [  # type: ignore[arg-type]
        ("booking_ref", "AB12CD"),
        ("email", "john@example.com"),
        ("last_name", "Smith"),
        ("last_name", "Tanaka"),
    ]


def test_the_audit_log_masks_phones_and_cards_like_the_guard() -> None:
    masked = audit.mask_arguments(
        {"note": "call me on +66 81 234 5678, card 4111 1111 1111 1111, passport AA1234567", "ref": "AB12CD"}
    )
    note = masked["note"]
    assert "81 234 5678" not in note and "4111" not in note and "AA1234567" not in note
    assert "[PHONE]" in note and "[CARD]" in note and "[PASSPORT]" in note
    assert masked["ref"] == "AB12CD"
