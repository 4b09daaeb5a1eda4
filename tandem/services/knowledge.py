"""Knowledge-base search as a service: the ``search_knowledge`` tool's function.

The index itself (:mod:`tandem.knowledge`) is built once per process by whoever owns it (the
toolbox, or the fallback chain's composition root); this function only searches it, so it needs
no database and runs in well under a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tandem.errors import Invalid
from tandem.settings import FallbackSettings, InputSettings

if TYPE_CHECKING:  # the index (bm25s, numpy) is imported by whoever builds it
    from tandem.knowledge import KnowledgeBase, Passage


@dataclass(frozen=True, slots=True)
class KnowledgeResult:
    """The best passages for a query, best first, each with its source document.

    ``version`` names the state of the knowledge base the passages come from (a hash of its
    contents), so a caller can cite or cache them.
    """

    passages: tuple[Passage, ...]
    version: str


def search_knowledge(
    *,
    query: str,
    limit: int | None = None,
    knowledge: KnowledgeBase,
    fallback: FallbackSettings,
    limits: InputSettings,
) -> KnowledgeResult:
    """The ``limit`` (None: ``FALLBACK_TOP_K``) best passages for ``query``; none when nothing matches."""
    if len(query) > limits.max_message_chars:  # the one input cap (MAX_MESSAGE_CHARS), as at the edge
        raise Invalid(f"a query has at most {limits.max_message_chars} characters", reason="arguments")
    k = fallback.fallback_top_k if limit is None else limit
    return KnowledgeResult(passages=tuple(knowledge.search(query, k)), version=knowledge.version)
