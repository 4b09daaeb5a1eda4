"""The async LLM client: the official ``openai`` SDK, configured only from the settings.

Works with OpenAI and with any OpenAI-compatible server (Azure OpenAI's v1 endpoint, vLLM,
Ollama, llama.cpp) through ``LLM_BASE_URL``. Every attempt has a timeout
(``LLM_TIMEOUT_SECONDS``); 429, 5xx, timeouts and connection errors are retried at most
``LLM_MAX_RETRIES`` times with exponential backoff and jitter; the whole call is bounded by
``LLM_TOTAL_TIMEOUT_SECONDS``, well under Rasa's 60 s lock expiry. The SDK's own retries are off so
that the bound is ours. An endpoint that keeps failing is not called for a while
(:class:`~tandem.llm.breaker.CircuitBreaker`: ``LLM_BREAKER_FAILURES``, ``LLM_BREAKER_COOLDOWN_SECONDS``).
Each call is a span ``llm.chat`` (tandem/tracing.py): the model, the tokens, the attempts and the
outcome; never the prompt or the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from opentelemetry.trace import Span, SpanKind

from tandem import tracing
from tandem.errors import Unavailable
from tandem.llm.breaker import OUTAGE_REASONS, CircuitBreaker
from tandem.llm.tokens import estimate_message_tokens, estimate_tokens
from tandem.settings import LlmSettings

log = logging.getLogger(__name__)

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


class LlmUnavailable(Unavailable):
    """The model did not answer usefully in time (after the retries), or refused the request."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Completion:
    """The text of one chat completion and what it cost."""

    content: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_seconds: float
    attempts: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class LlmClient:
    """One chat completion per call, bounded in time and attempts."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        model: str,
        max_tokens: int,
        temperature: float,
        json_mode: bool = True,
        max_retries: int = 2,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 4.0,
        total_timeout_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self.max_tokens = max_tokens
        self._temperature = temperature
        self._json_mode = json_mode
        self._max_retries = max_retries
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._total_timeout = total_timeout_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.breaker = breaker or CircuitBreaker(failures=0, cooldown_seconds=0)  # failures=0: off

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> LlmClient | None:
        """A client when ``LLM_MODEL`` is set, else None (retrieval-only mode)."""
        if not settings.llm_configured or not settings.llm_model:
            return None
        client = openai.AsyncOpenAI(
            # Local servers (vLLM, Ollama) accept any key; the SDK insists on one.
            api_key=settings.llm_secret or "not-needed",
            base_url=settings.llm_base_url or None,
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
        )
        return cls(
            client,
            model=settings.llm_model,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            json_mode=settings.llm_json_mode,
            max_retries=settings.llm_max_retries,
            backoff_base_seconds=settings.llm_backoff_base_seconds,
            backoff_max_seconds=settings.llm_backoff_max_seconds,
            total_timeout_seconds=settings.llm_total_timeout_seconds,
            breaker=CircuitBreaker(
                failures=settings.llm_breaker_failures, cooldown_seconds=settings.llm_breaker_cooldown_seconds
            ),
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    def _delay(self, attempt: int, error: Exception) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        # "Equal jitter": at least half the exponential step, so retries do spread out.
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if isinstance(error, openai.RateLimitError):
            retry_after = error.response.headers.get("retry-after") if error.response is not None else None
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), self._backoff_max)) if retry_after else delay
        return float(delay)

    async def complete(
        self, messages: Sequence[dict[str, str]], *, json_mode: bool | None = None, max_tokens: int | None = None
    ) -> Completion:
        """One chat completion (JSON mode when configured); :class:`LlmUnavailable` when it fails.

        ``json_mode`` and ``max_tokens`` override the configured ones for this call (the handoff
        summary asks for plain text, and for less of it).
        """
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": self.model}
        with tracing.start_span("llm.chat", kind=SpanKind.CLIENT, attributes=attributes) as span:
            try:
                completion = await self._guarded(messages, json_mode=json_mode, max_tokens=max_tokens)
            except LlmUnavailable as exc:
                tracing.set_outcome(span, exc.reason, failed=True)
                raise
            except BaseException as exc:  # cancelled (the turn's budget), or a bug
                tracing.set_outcome(span, type(exc).__name__, failed=True)
                raise
            _record_usage(span, completion)
            return completion

    async def _guarded(
        self, messages: Sequence[dict[str, str]], *, json_mode: bool | None, max_tokens: int | None
    ) -> Completion:
        """The call behind the circuit breaker."""
        if not self.breaker.allow():
            raise LlmUnavailable("the model kept failing: not called for a moment", reason="circuit_open")
        outage: bool | None = None  # no evidence (the call was cancelled) unless set below
        try:
            completion = await self._complete(messages, json_mode=json_mode, max_tokens=max_tokens)
            outage = False
            return completion
        except LlmUnavailable as exc:
            outage = exc.reason in OUTAGE_REASONS
            raise
        finally:
            was = self.breaker.state
            self.breaker.record(outage)
            if was != "open" and self.breaker.state == "open":
                log.warning("llm circuit opened: calls fail at once for a while")

    async def _complete(
        self, messages: Sequence[dict[str, str]], *, json_mode: bool | None, max_tokens: int | None
    ) -> Completion:
        started = time.perf_counter()
        json_mode = self._json_mode if json_mode is None else json_mode
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        try:
            async with asyncio.timeout(self._total_timeout):
                return await self._attempts(messages, started, json_mode=json_mode, max_tokens=max_tokens)
        except TimeoutError as exc:
            raise LlmUnavailable("the model did not answer in time", reason="timeout") from exc

    async def _attempts(
        self, messages: Sequence[dict[str, str]], started: float, *, json_mode: bool, max_tokens: int
    ) -> Completion:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": self._temperature,
        }
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        attempt = 0
        while True:
            try:
                response = await self._client.chat.completions.create(**kwargs)
                break
            except _RETRYABLE as exc:
                reason = _reason(exc)
                if attempt >= self._max_retries:
                    raise LlmUnavailable(f"the model failed after {attempt + 1} attempts", reason=reason) from exc
                delay = self._delay(attempt, exc)
                log.warning("llm attempt %d failed (%s); retrying in %.2fs", attempt + 1, reason, delay)
                await self._sleep(delay)
                attempt += 1
            except openai.APIStatusError as exc:
                # 4xx other than 429: our request or key is wrong; retrying cannot help.
                raise LlmUnavailable("the model refused the request", reason=f"http_{exc.status_code}") from exc
            except openai.OpenAIError as exc:
                raise LlmUnavailable("the model call failed", reason="error") from exc
        content = response.choices[0].message.content if response.choices else None
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else estimate_message_tokens(messages)
        completion_tokens = usage.completion_tokens if usage else estimate_tokens(content or "")
        return Completion(
            content=content,
            prompt_tokens=int(prompt_tokens or 0),
            completion_tokens=int(completion_tokens or 0),
            latency_seconds=time.perf_counter() - started,
            attempts=attempt + 1,
        )


def _record_usage(span: Span, completion: Completion) -> None:
    span.set_attribute("gen_ai.usage.input_tokens", completion.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", completion.completion_tokens)
    span.set_attribute("tandem.llm.attempts", completion.attempts)
    tracing.set_outcome(span, "ok", failed=False)


def _reason(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    return "server_error"
