"""Rasa tracker events as Rasa writes them, for analytics tests: a conversation script with a clock.

Each method appends the event Rasa would store (the same dict shapes as the tracker store's
``data`` column and the Pika broker's messages, minus ``sender_id``), stamped by a clock that
moves on by ``step`` seconds per event unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Script:
    sender_id: str
    at: float = 1_800_000_000.0
    step: float = 0.01
    channel: str = "website"
    events: list[dict[str, Any]] = field(default_factory=list)

    def _add(self, event: dict[str, Any], after: float | None = None) -> Script:
        self.at += self.step if after is None else after
        self.events.append({**event, "timestamp": round(self.at, 6)})
        return self

    def start(self, after: float | None = None) -> Script:
        """Rasa's new session: ``action_session_start``, ``session_started``, ``action_listen``."""
        self._add({"event": "action", "name": "action_session_start"}, after)
        self._add({"event": "session_started"})
        return self.listen()

    def user(
        self,
        text: str = "hello",
        intent: str = "greet",
        confidence: float = 0.97,
        *,
        after: float | None = None,
        external: bool = False,
    ) -> Script:
        metadata: dict[str, Any] = {"channel": self.channel, "correlation_id": f"c-{len(self.events)}"}
        if external:
            metadata = {"is_external": True}
        return self._add(
            {
                "event": "user",
                "text": text,
                "parse_data": {"intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text},
                "input_channel": "tandem",
                "metadata": metadata,
            },
            after,
        )

    def action(self, name: str, after: float | None = None) -> Script:
        return self._add({"event": "action", "name": name, "policy": "RulePolicy", "confidence": 1.0}, after)

    def bot(self, utter_action: str | None = None, text: str = "...", after: float | None = None) -> Script:
        metadata = {"utter_action": utter_action} if utter_action else {}
        return self._add({"event": "bot", "text": text, "data": {}, "metadata": metadata}, after)

    def slot(self, name: str, value: Any) -> Script:
        return self._add({"event": "slot", "name": name, "value": value})

    def listen(self, after: float | None = None) -> Script:
        return self.action("action_listen", after)

    def utter(self, response: str, after: float | None = None) -> Script:
        """A rule's response: its action, then its bot message."""
        return self.action(response, after).bot(response)

    def messages(self) -> list[dict[str, Any]]:
        """The events as the Pika broker publishes them (with ``sender_id``)."""
        return [{"sender_id": self.sender_id, **event} for event in self.events]


def fallback(
    stage: str, *, cached: bool = False, model: bool = False, prompt: int = 0, completion: int = 0, cost: str = "0"
) -> dict[str, Any]:
    """A ``fallback_decision`` slot value (tandem.analytics.outcomes.fallback_slot_value's shape)."""
    return {
        "stage": stage,
        "reason": "test",
        "mode": "llm" if model or cached else "retrieval",
        "cached": cached,
        "model": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "model_ms": 0,
        "cost": cost,
    }
