"""The analytics consumer: Rasa's event stream (RabbitMQ) → the analytics tables, idempotently.

``python -m tandem.cli analytics consume`` runs :class:`AnalyticsConsumer`: it reads the durable
queue Rasa's Pika broker publishes to (EVENT_BROKER_QUEUE, bound to Rasa's fanout exchange),
takes up to ANALYTICS_PREFETCH messages or what arrived within a second, and handles them as one
batch (:meth:`AnalyticsConsumer.handle`): new events stored, the sessions of their conversations
rebuilt, all in one transaction, and only then acknowledged. Delivery is at least once: a crash
before the acknowledgement redelivers the batch, and a redelivered event changes nothing (its key
is already stored). A message that is not a Rasa event is dropped (acknowledged, never stored) and counted; a
database failure requeues the batch and the loop waits before the next try. One consumer per
queue: two would rebuild one conversation's sessions concurrently and retry on the conflict.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy.orm import Session, sessionmaker

from tandem.analytics.metrics import ConsumerMetrics
from tandem.analytics.outcomes import FALLBACK_SLOT, HANDOFF_REASON_SLOT, RATING_SLOT, TASK_OUTCOME_SLOT
from tandem.analytics.sessions import SessionRecord
from tandem.analytics.store import (
    StoredEvent,
    is_rasa_event,
    previous_user_timestamp,
    rebuild_sessions,
    store_events,
)
from tandem.clock import Clock, utc_now
from tandem.conversation.turns import channel_name
from tandem.logs import plausible_correlation_id

log = logging.getLogger(__name__)

RASA_EXCHANGE = "rasa-exchange"  # Rasa's Pika broker's fanout exchange (rasa.core.brokers.pika)
MAX_MESSAGE_BYTES = 1_000_000
CONNECT_TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class BatchResult:
    stored: int
    duplicates: int
    rejected: int
    sessions: int


def parse_message(body: bytes) -> dict[str, Any] | None:
    """A broker message's Rasa event, or None when it is not one (too big, not JSON, no fields)."""
    if len(body) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return message if isinstance(message, dict) and is_rasa_event(message) else None


class AnalyticsConsumer:
    """Turns batches of broker messages into analytics rows (and metrics), then acknowledges them."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        metrics: ConsumerMetrics | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self.clock = clock

    def handle(self, bodies: Sequence[bytes]) -> BatchResult:
        """Store one batch in one transaction; raises when the database fails (nothing is kept)."""
        messages = [m for body in bodies if (m := parse_message(body)) is not None]
        rejected = len(bodies) - len(messages)
        with self.sessions.begin() as session:
            new = store_events(session, messages, now=self.clock())
            rebuilt = rebuild_sessions(session, {event.sender_id for event in new}, now=self.clock())
            latencies = self._latencies(session, new)
        for event in new:  # one line per stored user turn: the turn's id, joined with the other logs
            metadata = event.data.get("metadata") or {}
            if event.data.get("event") == "user" and isinstance(metadata.get("correlation_id"), str):
                log.info(
                    "turn stored",
                    extra={
                        "event": "analytics_turn",
                        "correlation_id": plausible_correlation_id(metadata["correlation_id"]),
                    },
                )
        if self.metrics is not None:
            self._observe(new, rebuilt, latencies, duplicates=len(messages) - len(new), rejected=rejected)
        return BatchResult(
            stored=len(new),
            duplicates=len(messages) - len(new),
            rejected=rejected,
            sessions=sum(len(records) for records in rebuilt.values()),
        )

    @staticmethod
    def _latencies(session: Session, new: Sequence[StoredEvent]) -> list[tuple[str, float]]:
        """(sender, seconds) for each new ``action_listen`` that ends a user turn."""
        found: list[tuple[str, float]] = []
        for event in new:
            data = event.data
            if data.get("event") == "action" and data.get("name") == "action_listen":
                stamp = float(data["timestamp"])
                started = previous_user_timestamp(session, event.sender_id, stamp)
                if started is not None:
                    found.append((event.sender_id, stamp - started))
        return found

    def _observe(
        self,
        new: Sequence[StoredEvent],
        rebuilt: dict[str, list[SessionRecord]],
        latencies: Sequence[tuple[str, float]],
        *,
        duplicates: int,
        rejected: int,
    ) -> None:
        metrics = self.metrics
        assert metrics is not None
        metrics.duplicates.inc(duplicates)
        metrics.rejected.inc(rejected)

        def channel_of(sender: str) -> str:
            records = rebuilt.get(sender) or []
            return (records[-1].channel if records else None) or "unknown"

        for event in new:
            data = event.data
            kind = str(data.get("event"))
            metrics.events.labels(type=kind[:32]).inc()
            if kind == "user" and not (data.get("metadata") or {}).get("is_external"):
                confidence = ((data.get("parse_data") or {}).get("intent") or {}).get("confidence")
                if isinstance(confidence, int | float):
                    channel = channel_name(data.get("metadata"), data.get("input_channel")) or "unknown"
                    metrics.intent_confidence.labels(channel=channel).observe(float(confidence))
            elif kind == "slot":
                self._observe_slot(data.get("name"), data.get("value"), channel_of(event.sender_id), new, event)
        for sender, seconds in latencies:
            metrics.turn_latency.labels(channel=channel_of(sender)).observe(max(seconds, 0.0))

    def _observe_slot(
        self, name: Any, value: Any, channel: str, new: Sequence[StoredEvent], event: StoredEvent
    ) -> None:
        metrics = self.metrics
        assert metrics is not None
        if name == TASK_OUTCOME_SLOT and isinstance(value, str):
            metrics.outcomes.labels(outcome=value[:64], channel=channel).inc()
        elif name == HANDOFF_REASON_SLOT and isinstance(value, str):
            metrics.handoffs.labels(reason=value[:64]).inc()
        elif name == FALLBACK_SLOT and isinstance(value, dict) and isinstance(value.get("stage"), str):
            metrics.fallback_turns.labels(stage=value["stage"][:64]).inc()
        elif name == RATING_SLOT and isinstance(value, int | float) and 1 <= value <= 5:
            metrics.ratings.labels(rating=str(int(value)), channel=channel).inc()


def _parameters(url: str) -> pika.URLParameters:
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = CONNECT_TIMEOUT_SECONDS
    parameters.blocked_connection_timeout = 30
    parameters.connection_attempts = 1
    parameters.heartbeat = 30
    return parameters


def declare(channel: BlockingChannel, queue: str) -> None:
    """The queue Rasa publishes to, as Rasa declares it (durable), bound to Rasa's exchange:
    the consumer may start first and no event published after that is lost."""
    channel.exchange_declare(RASA_EXCHANGE, exchange_type="fanout")
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, RASA_EXCHANGE, routing_key="")


def consume(
    consumer: AnalyticsConsumer,
    *,
    url: str,
    queue: str,
    prefetch: int,
    stop: threading.Event,
    batch_seconds: float = 1.0,
    connect: Callable[[pika.URLParameters], pika.BlockingConnection] = pika.BlockingConnection,
) -> None:
    """Consume ``queue`` in batches until ``stop`` is set, reconnecting with backoff."""
    failures = 0
    while not stop.is_set():
        try:
            connection = connect(_parameters(url))
        except pika.exceptions.AMQPError as error:
            wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            log.error("cannot reach the event broker (%s); retrying in %.0f s", type(error).__name__, wait)
            failures += 1
            stop.wait(wait)
            continue
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=prefetch)
            declare(channel, queue)
            log.info("consuming %s", queue)
            failures = 0
            _batches(consumer, channel, queue, prefetch=prefetch, stop=stop, batch_seconds=batch_seconds)
        except pika.exceptions.AMQPError as error:
            log.error("event broker connection lost (%s)", type(error).__name__)
            failures += 1
            stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    log.debug("closing the broker connection failed")
    log.info("analytics consumer stopped")


def _batches(
    consumer: AnalyticsConsumer,
    channel: BlockingChannel,
    queue: str,
    *,
    prefetch: int,
    stop: threading.Event,
    batch_seconds: float,
) -> None:
    pending: list[tuple[int, bytes]] = []
    failures = 0
    for method, _properties, body in channel.consume(queue, inactivity_timeout=batch_seconds):
        if method is not None:
            pending.append((method.delivery_tag, body))
            if len(pending) < prefetch:
                continue
        if pending:
            last_tag = pending[-1][0]
            try:
                result = consumer.handle([body for _, body in pending])
            except Exception as error:  # a database failure: requeue the batch, try again later
                failures += 1
                log.error("analytics batch failed (%s); requeued", type(error).__name__)
                channel.basic_nack(delivery_tag=last_tag, multiple=True, requeue=True)
                pending = []
                stop.wait(RETRY_SECONDS[min(failures - 1, len(RETRY_SECONDS) - 1)])
            else:
                failures = 0
                channel.basic_ack(delivery_tag=last_tag, multiple=True)
                pending = []
                if result.rejected:
                    log.warning("rejected %d messages that were not Rasa events", result.rejected)
                log.debug("analytics batch", extra={"stored": result.stored, "duplicates": result.duplicates})
        if stop.is_set():
            break
    channel.cancel()
