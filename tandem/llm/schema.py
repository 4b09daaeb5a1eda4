"""The JSON contract with the model, validated with pydantic.

Anything that does not parse or does not fit (unknown keys, wrong types, confidence outside 0..1,
an answer too long to be a chat reply) is "no answer": :func:`parse_reply` returns None and the
chain takes the retrieval-only path. The raw text is never shown to the user.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# A reply longer than this was not written for a chat window (or the server ignored max_tokens).
MAX_RAW_REPLY_CHARS = 8000


class LlmReply(BaseModel):
    """``{"intent", "answer", "confidence", "handoff", "sources"}``: exactly these keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    intent: str | None = Field(max_length=64)
    answer: str | None = Field(max_length=4000)
    confidence: float = Field(ge=0.0, le=1.0)
    handoff: bool
    sources: list[str] = Field(default_factory=list, max_length=8)


def parse_reply(raw: str | None) -> LlmReply | None:
    """The validated reply, or None when ``raw`` is not exactly the contract."""
    if not raw or len(raw) > MAX_RAW_REPLY_CHARS:
        return None
    text = raw.strip()
    # Some servers wrap JSON in a Markdown fence even in JSON mode.
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    # The model must say every key; a missing "handoff" is not "false".
    if set(data) != {"intent", "answer", "confidence", "handoff", "sources"}:
        return None
    if isinstance(data.get("confidence"), bool) or not isinstance(data.get("handoff"), bool):
        return None
    try:
        return LlmReply.model_validate(data)
    except ValidationError:
        return None
