"""The guarded, grounded fallback chain, as a Rasa-free service.

For ``nlu_fallback``, ``out_of_scope`` and Rasa's core fallback the action server builds a
:class:`FallbackRequest` and awaits :meth:`FallbackChain.decide`; the returned
:class:`FallbackDecision` says what to do (rescue to an intent, answer with sources, answer inside
a form and re-ask, clarify, refuse, offer a human, or a degraded retrieval-only reply) and carries
the messages to send (domain response names, or model/passage text) ready for the dispatcher.

The chain: guard → (two fallbacks in a row → human) → retrieval → cache → budget → one model call
→ validated JSON → grounded decision. With no model configured (the embedded default), or when the
model is unavailable or over budget, the retrieval-only path decides: the best passage when it
clears the tuned thresholds, else the two most likely intents as buttons, else a human.

The model never reaches a write tool: a rescue only names an intent whose deterministic flow
(forms, verification, explicit confirmation) then runs; ``affirm``/``deny``/``inform`` and the
like are not in the closed set, so a model cannot confirm anything.

The package, by concern:

- :mod:`.types`: request, decision, message, button, source, the chain's knobs;
- :mod:`.catalogue`: the one intent catalogue (flow, response, title, prompt line, suggestible);
- :mod:`.policy`: the decision rules, with one constructor of decisions;
- :mod:`.chain`: the orchestration (guard, retrieval, cache, budget, model, policy);
- :mod:`.summary`: the handoff summary for agents, over the chain's model, guards and budgets;
- :mod:`.wiring`: the composition root (from the settings; owns the Redis client);
- :mod:`.record`: the durable record of every decision (table ``fallback_decisions``, no text).
"""

from tandem.llm import Turn

from .catalogue import CATALOGUE, RESCUE_INTENTS, SUGGESTIBLE, Flow, IntentEntry, RescueIntent
from .chain import FallbackChain
from .record import DecisionRecord, DecisionRecorder, record_decision
from .summary import HandoffSummarizer
from .types import (
    Button,
    ChainConfig,
    DecisionKind,
    FallbackDecision,
    FallbackRequest,
    Message,
    Mode,
    Source,
)
from .wiring import build_chain, resolve_knowledge_dir

__all__ = [
    "CATALOGUE",
    "RESCUE_INTENTS",
    "SUGGESTIBLE",
    "Button",
    "ChainConfig",
    "DecisionKind",
    "DecisionRecord",
    "DecisionRecorder",
    "FallbackChain",
    "FallbackDecision",
    "FallbackRequest",
    "Flow",
    "HandoffSummarizer",
    "IntentEntry",
    "Message",
    "Mode",
    "RescueIntent",
    "Source",
    "Turn",
    "build_chain",
    "record_decision",
    "resolve_knowledge_dir",
]
