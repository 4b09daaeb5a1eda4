"""The answer cache: validated model replies keyed by what the prompt contained.

The key is the normalised question, the rescue intents, the knowledge-base version, the form
context and a hash of the (masked) history window the prompt carried. A follow-up ("and for a
bike?") is sent with its history, so its key holds that history: another conversation typing
the same words after a different history never gets this conversation's answer. A question that
stands on its own (:func:`is_context_free`) is sent without any history, so its answer depends
on nothing of the conversation and is shared by everybody who asks it.

In-process (bounded LRU with a time to live) by default, Redis when ``REDIS_URL`` is set so every
replica shares it. A cache failure is a miss, never an error: the cache saves money, it does not
decide anything. Only validated :class:`~tandem.llm.schema.LlmReply` objects are stored, so a
cached reply goes through the same checks as a fresh one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tandem.llm.prompts import Turn
from tandem.llm.schema import LlmReply

log = logging.getLogger(__name__)

_PUNCT = re.compile(r"[^\w\s]")
_WS = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    """Lower case, no punctuation, single spaces: "Can I bring my surfboard?" == "can i bring my surfboard"."""
    return _WS.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


# Words that point back at the conversation ("is it free?", "what about that one?", "and for
# my son?"): a turn holding one, or too short to stand alone, is answered with its history.
_ANAPHORA = frozenset(
    [
        "it",
        "its",
        "it's",
        "itself",
        "that",
        "that's",
        "this",
        "these",
        "those",
        "they",
        "them",
        "their",
        "theirs",
        "then",
        "he",
        "she",
        "him",
        "her",
        "his",
        "hers",
        "one",
        "ones",
        "same",
        "too",
        "also",
        "else",
        "again",
        "another",
        "other",
        "others",
        "more",
        "such",
        "former",
        "latter",
        "above",
        "before",
        "earlier",
        "previous",
        "said",
        "yes",
        "no",
        "ok",
        "okay",
        "sure",
    ]
)
_LEADING = frozenset(["and", "but", "or", "so", "also", "plus"])
_FOLLOW_UP = re.compile(r"^(what|how) about\b")
_MIN_WORDS = 4


def is_context_free(question: str) -> bool:
    """True when ``question`` can be answered without the conversation before it.

    Conservative on purpose: a false "context-free" would send no history with a follow-up (a
    worse answer) and share its answer; a false "context-dependent" only costs a cache miss.
    """
    words = normalise_question(question).replace(" s ", "'s ").split()
    if len(words) < _MIN_WORDS or words[0] in _LEADING or _FOLLOW_UP.match(" ".join(words)):
        return False
    return not any(word in _ANAPHORA for word in words)


def history_digest(turns: Sequence[Turn]) -> str:
    """A hash of the (masked) history window a prompt carries, for the cache key."""
    material = json.dumps([[t.role, t.text] for t in turns], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def cache_key(
    question: str,
    *,
    intents: Sequence[str],
    kb_version: str,
    active_form: str | None = None,
    requested_slot: str | None = None,
    history: Sequence[Turn] = (),
) -> str:
    """A stable key of what the prompt contained: the form context (the prompt differs inside a
    form) and the history window sent with the question (empty for a context-free question)."""
    material = json.dumps(
        [
            normalise_question(question),
            sorted(intents),
            kb_version,
            active_form,
            requested_slot,
            history_digest(history) if history else None,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


class AnswerCache(Protocol):
    async def get(self, key: str) -> LlmReply | None:
        """The cached reply, or None."""
        ...

    async def set(self, key: str, reply: LlmReply) -> None:
        """Store a reply for the configured time to live."""
        ...


class InMemoryAnswerCache:
    """A bounded LRU with a time to live, for one process."""

    def __init__(
        self, *, max_entries: int = 2048, ttl_seconds: int = 86400, clock: Callable[[], float] = time.monotonic
    ):
        self._max = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, LlmReply]] = OrderedDict()

    async def get(self, key: str) -> LlmReply | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, reply = item
        if expires <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return reply

    async def set(self, key: str, reply: LlmReply) -> None:
        if self._max <= 0 or self._ttl <= 0:
            return
        self._items[key] = (self._clock() + self._ttl, reply)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class RedisAnswerCache:
    """Replies as JSON strings with an expiry, shared by every replica."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_seconds: int = 86400):
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix

    async def get(self, key: str) -> LlmReply | None:
        try:
            raw = await self._client.get(self._prefix + key)
        except (RedisError, OSError, TimeoutError):
            log.warning("answer cache unavailable; treating as a miss")
            return None
        if raw is None:
            return None
        try:
            return LlmReply.model_validate_json(raw)
        except ValueError:
            return None

    async def set(self, key: str, reply: LlmReply) -> None:
        if self._ttl <= 0:
            return
        try:
            await self._client.set(self._prefix + key, reply.model_dump_json(), ex=self._ttl)
        except (RedisError, OSError, TimeoutError):
            log.warning("answer cache unavailable; reply not stored")
