"""The LLM layer of the fallback chain: client, prompts, JSON contract, sanitiser, cache, budgets, metrics."""

from tandem.llm.breaker import CircuitBreaker
from tandem.llm.budget import BudgetScope, InMemoryTokenBudget, RedisTokenBudget, TokenBudget
from tandem.llm.cache import (
    AnswerCache,
    InMemoryAnswerCache,
    RedisAnswerCache,
    cache_key,
    is_context_free,
)
from tandem.llm.client import Completion, LlmClient, LlmUnavailable
from tandem.llm.metrics import FallbackMetrics
from tandem.llm.prompts import IntentChoice, Persona, Turn, build_messages
from tandem.llm.sanitize import OutputSanitizer
from tandem.llm.schema import LlmReply, parse_reply
from tandem.llm.tokens import estimate_message_tokens, estimate_tokens

__all__ = [
    "AnswerCache",
    "BudgetScope",
    "CircuitBreaker",
    "Completion",
    "FallbackMetrics",
    "InMemoryAnswerCache",
    "InMemoryTokenBudget",
    "IntentChoice",
    "LlmClient",
    "LlmReply",
    "LlmUnavailable",
    "OutputSanitizer",
    "Persona",
    "RedisAnswerCache",
    "RedisTokenBudget",
    "TokenBudget",
    "Turn",
    "build_messages",
    "cache_key",
    "estimate_message_tokens",
    "estimate_tokens",
    "is_context_free",
    "parse_reply",
]
