"""The one intent catalogue: consistent with domain.yml, closed to confirmations, and unchanged in
what the model is shown and what a clarification offers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tandem.services.fallback import CATALOGUE, RESCUE_INTENTS, SUGGESTIBLE, catalogue

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def test_every_name_in_the_catalogue_exists_in_the_domain(domain: dict[str, Any]) -> None:
    responses = set(domain["responses"])
    runnable = set(domain["forms"]) | set(domain["actions"])
    for entry in CATALOGUE.values():
        assert entry.name in domain["intents"], entry.name
        if entry.response is not None:
            assert entry.response in responses, entry.name
        if entry.flow is not None:
            assert entry.flow.followup in runnable, entry.name
            for slot, value in entry.flow.slots:
                allowed = domain["slots"][slot].get("values")
                assert allowed is None or value in allowed, (entry.name, slot, value)
    named = [v for k, v in vars(catalogue).items() if k.startswith("RESPONSE_")]
    assert len(named) == 8 and set(named) <= responses
    assert catalogue.OUT_OF_SCOPE in domain["intents"]


def test_a_rescue_never_confirms_and_always_has_somewhere_to_go() -> None:
    rescuable = {i.name for i in RESCUE_INTENTS}
    assert not rescuable & {"affirm", "deny", "inform", "choose_flight", "rate", "stop", "faq", "out_of_scope"}
    for name in rescuable:
        entry = CATALOGUE[name]
        assert (entry.flow is None) != (entry.response is None), name
    # Only a request for a person leaves an active form.
    assert [e.name for e in CATALOGUE.values() if e.flow and e.flow.interrupts_form] == ["request_human"]


def test_the_prompt_lines_and_the_buttons_are_those_of_before_the_split() -> None:
    # The prompt (and so the cache keys and the sanitiser's secret text) must not move.
    assert [(i.name, i.description, i.title) for i in RESCUE_INTENTS] == [
        ("book_flight", "wants to book a new flight", "Book a flight"),
        ("check_booking", "wants the details or status of an existing booking", "Check a booking"),
        ("cancel_booking", "wants to cancel an existing booking (verified and confirmed later)", "Cancel a booking"),
        ("flight_status", "asks whether a flight is on time, delayed, departed or landed", "Flight status"),
        ("reset_password", "cannot log in or forgot the account password", "Reset my password"),
        ("request_human", "asks to talk to a person or an agent", "Talk to an agent"),
        ("ask_capabilities", "asks what the assistant can do", "What can you do?"),
        ("bot_challenge", "asks whether they are talking to a bot", "Are you a bot?"),
        ("greet", "says hello", "Hello"),
        ("goodbye", "ends the conversation", "Goodbye"),
        ("thank", "says thank you", "Thanks"),
    ]
    assert SUGGESTIBLE == (
        ("book_flight", "Book a flight"),
        ("check_booking", "Check a booking"),
        ("cancel_booking", "Cancel a booking"),
        ("flight_status", "Flight status"),
        ("reset_password", "Reset my password"),
        ("faq", "A travel question"),
        ("ask_capabilities", "What can you do?"),
    )
