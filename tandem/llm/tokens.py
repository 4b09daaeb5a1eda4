"""A simple, dependency-free token estimate (words and punctuation), close to BPE counts for English."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_TOKEN = re.compile(r"\w+|[^\w\s]")
# Chat formats add a few tokens per message (role, separators).
_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """Words plus punctuation marks; long words count once per 6 characters, as BPE splits them."""
    return sum(max(1, len(t) // 6 + (1 if len(t) % 6 else 0)) if len(t) > 6 else 1 for t in _TOKEN.findall(text))


def estimate_message_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """Estimated prompt tokens of a chat request."""
    return sum(estimate_tokens(m["content"]) + _PER_MESSAGE for m in messages)
