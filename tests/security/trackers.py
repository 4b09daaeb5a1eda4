"""Trackers for the action tests of the attack suite: any sender id, and the gateway's metadata.

The gateway puts ``{"channel", "client", "correlation_id"}`` into each message's metadata; a test
that plays an attacker opening new conversations from one address varies ``sender`` and keeps
``client``.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

DOMAIN: dict[str, Any] = {"slots": {}, "forms": {}, "responses": {}}


def tracker(
    slots: dict[str, Any] | None = None,
    *,
    sender: str = "sec-conversation",
    client: str | None = None,
    text: str = "",
    intent: str = "inform",
    events: list[dict[str, Any]] | None = None,
    active_loop: str | None = None,
) -> Tracker:
    metadata = {"channel": "website", "correlation_id": "turn-1"}
    if client is not None:
        metadata["client"] = client
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": [],
        "intent_ranking": [{"name": intent, "confidence": 0.9}],
        "metadata": metadata,
    }
    history = list(events or [])
    history.append({"event": "user", "text": text, "parse_data": latest, "metadata": metadata})
    return Tracker(
        sender,
        slots or {},
        latest,
        history,
        False,
        None,
        {"name": active_loop} if active_loop else {},
        "action_listen",
    )


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [str(m.get("response")) for m in dispatcher.messages]
