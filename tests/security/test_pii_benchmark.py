"""Finding 4, measured: the PII masker on the committed labelled samples (benchmarks/security/pii).

Pattern PII (e-mails, phones, cards, passports) must reach the 0.95 recall goal on the whole
committed set; names are measured, not held to a goal (the rules need a cue, see the README).
Ordinary airline questions must come out unchanged.
"""

from __future__ import annotations

import pytest

from benchmarks.security.pii import (
    GOAL_PATTERN_RECALL,
    PATTERN_TYPES,
    false_positives,
    generated_samples,
    load_presidio_samples,
    ordinary_turns,
    score,
)
from tandem.guard import PiiMasker

ORDINARY = [
    "Can I bring my surfboard?",
    "I'm travelling to Phuket next week, how much baggage can I take?",
    "I am flying business class on Friday, is there a lounge?",
    "This is my first flight with a baby, what do I need?",
    "It's my wife's birthday, can we sit together?",
    "I'm not sure my booking went through",
    "Is flight AN204 on time today?",
    "My name is wrong on the ticket, how do I fix it?",
    "the surname on my booking is misspelled",
    "What is the name of the airport in Krabi?",
    "Hi, I need help with a refund",
    "Thank you so much!",
    "khop khun krap",
    "Hello there, can a human help me?",
    "passenger with reduced mobility: is a wheelchair free?",
    "I booked under my company account, can I change the date?",
    "Mr and Mrs fares are the same?",
    "Can I pay with Visa or Mastercard?",
    "Do you fly from Bangkok to Chiang Mai every day?",
    "What happens if I miss my connection in Bangkok?",
    "refund of 20000 THB on 2025-01-25 for 2 people",
    "my booking AB12CD on AN305, seat 12A",
    "Can I take 2 bags of 23 kg each on international flights?",
    "I'm a member of the frequent flyer program, do I get extra baggage?",
    "Is it possible to travel with my dog in the cabin?",
]


@pytest.fixture(scope="module")
def masker() -> PiiMasker:
    return PiiMasker.create(prefer_trained=False)


def test_pattern_pii_recall_reaches_the_goal_on_the_committed_set(masker: PiiMasker) -> None:
    presidio = load_presidio_samples()
    generated = generated_samples(presidio)
    everything = [*presidio, *generated["dev"], *generated["test"]]
    assert len(everything) >= 300
    scores = score(everything, masker)
    for kind in PATTERN_TYPES:
        assert scores[kind]["support"] >= 20, kind
        assert scores[kind]["recall"] >= GOAL_PATTERN_RECALL, (kind, scores[kind])
    # Names: measured. The rules find the names that follow a cue, and only names.
    assert scores["PERSON"]["precision"] >= 0.95
    assert scores["PERSON"]["recall"] > 0.3


@pytest.mark.parametrize("question", ORDINARY)
def test_ordinary_airline_questions_stay_unmasked(masker: PiiMasker, question: str) -> None:
    assert masker.mask(question).text == question


def test_names_are_almost_never_found_in_the_bots_own_training_turns(masker: PiiMasker) -> None:
    texts, _ = ordinary_turns()
    result = false_positives(texts, masker)
    assert result["turns"] > 1000
    # The one NLU example with a name in it ("cancel the reservation under the name Smith") is PII.
    assert result["masked_turns"].get("NAME", 0) <= 2, result["examples"].get("NAME")
