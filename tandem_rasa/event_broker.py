"""Rasa's event stream to RabbitMQ that never loses a turn to RabbitMQ and never drops in silence.

Loaded by class path from ``endpoints.yml``; the stream feeds the analytics consumer
(``python -m tandem.cli analytics consume``)::

    event_broker:
      type: tandem_rasa.event_broker.TandemPikaEventBroker
      url: ${EVENT_BROKER_URL}         # amqp://user:password@host:5672/vhost, or empty: no broker
      queues: [${EVENT_BROKER_QUEUE}]

Rasa 3.6's ``PikaEventBroker`` has these problems, measured against its source (rasa/core/brokers):

- **Startup.** It tries to connect 20 times, 5 s apart, before the server serves, and then raises;
  ``EventBroker.create`` turns that into a ``ConnectionException`` and the Sanic listener that
  loads the agent fails: RabbitMQ down means no bot after 100 s of waiting.
- **Silent drops.** ``publish`` starts one task per event; the task returns without a word when
  the exchange is not declared yet (``self._exchange is None``: before the connection, or for
  ever after a failed start). Failed publishes go to an unbounded ``deque`` that is only replayed
  on a reconnect. Tasks run side by side, so nothing promises the order of the events.
- **The URL.** ``username`` and ``password`` are required arguments even when the URL holds them,
  and ``_configure_url`` rebuilds the URL by searching strings: a percent-encoded password is
  inserted a second time, a port is added when its digits do not appear anywhere in the URL. The
  host (with its password) is written to the logs.

Here:

- **No URL, no broker.** ``url`` empty or blank (``EVENT_BROKER_URL=``, the embedded default):
  ``from_endpoint_config`` returns ``None`` and Rasa runs without an event broker, without a
  warning. The variable must still be defined: Rasa refuses an ``endpoints.yml`` whose ``${VAR}``
  is not set (scripts/env.sh defines it empty).
- **The URL as given.** ``amqp://`` or ``amqps://`` with the user, password (percent-encoded),
  port, vhost and query parameters the way RabbitMQ's URI spec means them, handed to aio-pika as
  it is (``username``/``password``/``port`` settings only fill in what the URL lacks; a bare host
  name is ``amqp://host``; aio-pika's ``reconnect_interval`` and a connection ``name`` are added to
  the query unless given). The logs name the host and port, never the password. A URL that is not
  AMQP, or unknown settings, raise ``ValueError`` at startup: a misconfiguration is loud.
- **Startup never fails on RabbitMQ.** The connection is made by a background task; the server
  waits at most ``startup_wait_in_seconds`` (default 5) for it and then serves either way. An
  unreachable RabbitMQ (or wrong credentials) logs one error with the reason, then a warning a
  minute while it stays unreachable, and the task keeps trying every ``retry_delay_in_seconds``
  (default 5) until it connects. From then on aio-pika's robust connection reconnects on its own
  (same interval; its log lines about each failed attempt are thinned to one a minute) and
  restores the channel, the exchange and the queue bindings. Why not fail fast: the event stream
  is analytics, not the conversation; a customer should be answered while RabbitMQ restarts, and
  the events of that time wait in the buffer below.
- **Every event goes into one bounded buffer, in order.** ``publish`` serialises the event and
  appends it to a ``deque`` (``max_unpublished_events``, default 10000) and returns: no I/O, no
  task per event, no exception (Rasa publishes inside the tracker save, so a raise would fail the
  turn). One delivery task sends the buffer's head, waits for RabbitMQ's publisher confirm
  (bounded by ``publish_timeout_in_seconds``) and only then removes it: events reach the queue in
  the order they were published, also across outages. A failed publish leaves the event at the
  head and is tried again after ``retry_delay_in_seconds``. A full buffer drops its OLDEST event;
  the drops are counted (``dropped_events``), warned about on the first drop and then at most once
  a minute, and totalled in a warning when the stream delivers again.
- **At least once.** A publish whose confirm was lost is sent again, so an event can arrive twice;
  every message carries a ``message_id`` (a UUID given at ``publish``, the same on every retry)
  for the consumer to drop repeats. Messages are persistent (``delivery_mode=2``) and go, as in
  Rasa, through the fanout exchange (``exchange_name``, default ``rasa-exchange``) to the durable
  queues Rasa declares; the body is Rasa's (the event's dict with ``sender_id``).
- **Closing** (Rasa's ``after_server_stop``): the buffer is delivered for up to
  ``close_timeout_in_seconds`` (default 5) when RabbitMQ is connected; what is left is counted in
  a warning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from asyncio import AbstractEventLoop
from collections import deque
from typing import Any

import aio_pika
from rasa.core.brokers.pika import RABBITMQ_EXCHANGE, PikaEventBroker
from yarl import URL

logger = logging.getLogger(__name__)

DEFAULT_MAX_UNPUBLISHED_EVENTS = 10_000
DEFAULT_RETRY_DELAY_IN_SECONDS = 5.0
DEFAULT_STARTUP_WAIT_IN_SECONDS = 5.0
DEFAULT_CONNECT_TIMEOUT_IN_SECONDS = 10.0
DEFAULT_PUBLISH_TIMEOUT_IN_SECONDS = 10.0
DEFAULT_CLOSE_TIMEOUT_IN_SECONDS = 5.0
LOG_EVERY_SECONDS = 60.0  # while a problem lasts, its warning comes at most this often

OURS = {
    "username",
    "password",
    "port",
    "queues",
    "exchange_name",
    "max_unpublished_events",
    "retry_delay_in_seconds",
    "startup_wait_in_seconds",
    "connect_timeout_in_seconds",
    "publish_timeout_in_seconds",
    "close_timeout_in_seconds",
}
# Rasa's own settings of the Pika broker that mean nothing here: accepted (a configuration written
# for Rasa's broker still loads), ignored. Connecting is retried for ever; nothing ever raises; an
# event is always kept.
IGNORED = {"connection_attempts", "raise_on_failure", "should_keep_unpublished_messages"}
SETTINGS = OURS | IGNORED


def broker_url(url: str, *, username: str | None = None, password: str | None = None, port: Any = None) -> URL:
    """The AMQP URL to connect to: ``url`` as given, with what it lacks from the other settings.

    Raises ``ValueError`` for a URL that is not ``amqp://``/``amqps://`` with a host.
    """
    text = url.strip()
    if "://" not in text:
        text = f"amqp://{text}"  # Rasa's broker takes a bare host name too
    parsed = URL(text)
    if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
        raise ValueError(f"event_broker url must be amqp://[user:password@]host[:port][/vhost], not {_safe(parsed)}")
    if parsed.user is None and username:
        parsed = parsed.with_user(username).with_password(password or None)
    if parsed.explicit_port is None and port not in (None, ""):
        parsed = parsed.with_port(_int("port", port, minimum=1))
    return parsed


def _safe(url: URL) -> str:
    """``url`` for the logs: no user, no password, no query (it may hold key file paths)."""
    port = f":{url.explicit_port}" if url.explicit_port else ""
    return f"{url.scheme}://{url.host or ''}{port}{url.raw_path}"


def _int(name: str, value: Any, *, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"event_broker {name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ValueError(f"event_broker {name} must be at least {minimum}, not {number}")
    return number


def _seconds(name: str, value: Any, *, positive: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"event_broker {name} must be a number of seconds, not {value!r}") from None
    if not number >= 0 or (positive and number == 0) or number == float("inf"):  # NaN fails `>=`
        raise ValueError(f"event_broker {name} must be {'above' if positive else 'at least'} 0, not {value!r}")
    return number


class _Throttle:
    """At most one ``ready()`` per ``seconds``: one warning a minute while a problem lasts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: float | None = None

    def ready(self) -> bool:
        now = time.monotonic()
        if self._last is None or now - self._last >= self.seconds:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        self._last = None


class _QuietReconnects(logging.Filter):
    """aio-pika's robust connection logs a warning and an info line at every failed reconnect
    (every ``reconnect_interval``, for as long as RabbitMQ stays away): one of each a minute."""

    def __init__(self) -> None:
        super().__init__()
        self._throttles: dict[str, _Throttle] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if not template.startswith(("Connection attempt to", "Reconnect attempt failed")):
            return True
        return self._throttles.setdefault(template, _Throttle(LOG_EVERY_SECONDS)).ready()


def _quiet_aio_pika_reconnects() -> None:
    robust = logging.getLogger("aio_pika.robust_connection")
    if not any(isinstance(f, _QuietReconnects) for f in robust.filters):
        robust.addFilter(_QuietReconnects())


class TandemPikaEventBroker(PikaEventBroker):
    """Rasa's Pika event broker with a bounded, ordered buffer and a connection in the background.

    See the module docstring. ``from_endpoint_config`` is how Rasa builds it; code may build one
    directly and call ``await connect()`` (which waits at most ``startup_wait_in_seconds``).
    """

    def __init__(
        self,
        url: str,
        *,
        queues: Any = None,
        exchange_name: str = RABBITMQ_EXCHANGE,
        username: str | None = None,
        password: str | None = None,
        port: Any = None,
        max_unpublished_events: Any = DEFAULT_MAX_UNPUBLISHED_EVENTS,
        retry_delay_in_seconds: Any = DEFAULT_RETRY_DELAY_IN_SECONDS,
        startup_wait_in_seconds: Any = DEFAULT_STARTUP_WAIT_IN_SECONDS,
        connect_timeout_in_seconds: Any = DEFAULT_CONNECT_TIMEOUT_IN_SECONDS,
        publish_timeout_in_seconds: Any = DEFAULT_PUBLISH_TIMEOUT_IN_SECONDS,
        close_timeout_in_seconds: Any = DEFAULT_CLOSE_TIMEOUT_IN_SECONDS,
        event_loop: AbstractEventLoop | None = None,
        **ignored: Any,
    ) -> None:
        """Check the settings (``ValueError`` on bad ones); no I/O here."""
        unknown = sorted(set(ignored) - IGNORED)
        if unknown:
            raise ValueError(f"unknown event_broker settings {unknown}; known: {sorted(SETTINGS)}")
        self._url = broker_url(url, username=username, password=password, port=port)
        queue_names = [queues] if isinstance(queues, str) else list(queues or [])
        if not queue_names or not all(isinstance(name, str) and name.strip() for name in queue_names):
            # An empty name would make RabbitMQ invent a queue that nobody reads.
            raise ValueError(f"event_broker queues must be non-empty queue names, not {queues!r}")
        self._retry_delay = _seconds("retry_delay_in_seconds", retry_delay_in_seconds)
        # aio-pika reads these from the URL (which wins over its keyword arguments): its robust
        # reconnects at the same pace, and a connection name for RabbitMQ's management views.
        defaults = {"reconnect_interval": f"{self._retry_delay:g}", "name": "tandem-rasa"}
        missing = {key: value for key, value in defaults.items() if key not in self._url.query}
        if missing:
            self._url = self._url.update_query(missing)
        self._startup_wait = _seconds("startup_wait_in_seconds", startup_wait_in_seconds, positive=False)
        self._connect_timeout = _seconds("connect_timeout_in_seconds", connect_timeout_in_seconds)
        self._publish_timeout = _seconds("publish_timeout_in_seconds", publish_timeout_in_seconds)
        self._close_timeout = _seconds("close_timeout_in_seconds", close_timeout_in_seconds, positive=False)
        self.max_unpublished_events = _int("max_unpublished_events", max_unpublished_events, minimum=1)
        super().__init__(
            host=self._url.host or "",  # Rasa logs `host`: the name only, never the password
            username=self._url.user or "guest",
            password=self._url.password or "guest",
            port=self._url.explicit_port or (5671 if self._url.scheme == "amqps" else 5672),
            queues=[name.strip() for name in queue_names],
            event_loop=event_loop,
            retry_delay_in_seconds=self._retry_delay,
            exchange_name=exchange_name,
        )
        # The events not confirmed by RabbitMQ yet, oldest first (Rasa's deque, bounded here).
        self._unpublished_events: deque[aio_pika.Message] = deque()
        self.dropped_events = 0  # since the start, by a full buffer
        self.published_events = 0  # confirmed by RabbitMQ
        self._dropped_in_outage = 0
        self._drop_warning = _Throttle(LOG_EVERY_SECONDS)
        self._failure_warning = _Throttle(LOG_EVERY_SECONDS)
        self._has_events = asyncio.Event()
        self._exchange_ready = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._delivering: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: Any, event_loop: AbstractEventLoop | None = None
    ) -> TandemPikaEventBroker | None:
        """The broker of ``endpoints.yml``'s ``event_broker`` entry, or ``None`` without a URL.

        Returns once connected, or after ``startup_wait_in_seconds`` without RabbitMQ (the
        connection is then retried in the background); never raises for an unreachable RabbitMQ.
        """
        if broker_config is None or not (broker_config.url or "").strip():
            logger.debug("event_broker has no url (EVENT_BROKER_URL is empty): no event stream")
            return None
        broker = cls(broker_config.url, **broker_config.kwargs, event_loop=event_loop)
        await broker.connect()
        return broker

    @property
    def url_for_logs(self) -> str:
        """Where RabbitMQ is, without credentials."""
        return _safe(self._url)

    def _configure_url(self) -> str:
        return str(self._url)  # Rasa's rebuilds it by string search (module docstring)

    async def connect(self) -> None:
        """Start connecting and delivering in the background; wait for the connection at most
        ``startup_wait_in_seconds``. Never raises for an unreachable RabbitMQ."""
        self._start()
        if self._exchange_ready.is_set() or self._startup_wait == 0:
            return
        try:
            await asyncio.wait_for(self._exchange_ready.wait(), self._startup_wait)
        except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not the builtin TimeoutError)
            logger.warning(
                f"RabbitMQ at {self.url_for_logs} not connected after {self._startup_wait:g} s: Rasa serves "
                f"without the event stream meanwhile; events are kept (up to {self.max_unpublished_events})"
            )

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("the event broker was closed")
        _quiet_aio_pika_reconnects()
        loop = asyncio.get_running_loop()
        self._loop = loop  # Rasa's attribute; the loop that runs the tasks below
        if self._connecting is None:
            self._connecting = loop.create_task(self._connect_until_ready(), name="tandem-event-broker-connect")
        if self._delivering is None:
            self._delivering = loop.create_task(self._deliver(), name="tandem-event-broker-deliver")

    async def _connect_until_ready(self) -> None:
        """Connect, declare the exchange and bind the queues; on failure try again, for ever."""
        attempts = 0
        while True:
            attempts += 1
            connection: aio_pika.abc.AbstractRobustConnection | None = None
            try:
                connection = await aio_pika.connect_robust(str(self._url), timeout=self._connect_timeout)
                channel = await asyncio.wait_for(connection.channel(), self._connect_timeout)
                exchange = await asyncio.wait_for(self._set_up_exchange(channel), self._connect_timeout)
            except asyncio.CancelledError:
                await _close_quietly(connection, 1.0)
                raise
            except Exception as error:
                await _close_quietly(connection, 1.0)
                reason = f"{type(error).__name__}: {error}".rstrip(": ")
                if attempts == 1:
                    logger.error(
                        f"RabbitMQ at {self.url_for_logs} is unreachable ({reason}): Rasa serves without the "
                        f"event stream; events are kept (up to {self.max_unpublished_events}) and the "
                        f"connection is tried again every {self._retry_delay:g} s"
                    )
                    self._failure_warning.ready()  # the error was this minute's message
                elif self._failure_warning.ready():
                    logger.warning(
                        f"RabbitMQ at {self.url_for_logs} still unreachable after {attempts} attempts ({reason}); "
                        f"{len(self._unpublished_events)} events waiting, {self.dropped_events} dropped"
                    )
                else:
                    logger.debug(f"RabbitMQ connection attempt {attempts} failed: {reason}")
                await asyncio.sleep(self._retry_delay)
                continue
            self._connection, self._exchange = connection, exchange
            self._exchange_ready.set()
            self._failure_warning.reset()
            logger.info(
                f"RabbitMQ connection to {self.url_for_logs} established"
                + (f" after {attempts} attempts" if attempts > 1 else "")
                + f"; publishing to {list(self.queues)} through exchange '{self.exchange_name}'"
            )
            return

    def is_ready(self) -> bool:
        """``True`` while connected with the exchange declared."""
        connection = self._connection
        if connection is None or not self._exchange_ready.is_set() or connection.is_closed:
            return False
        connected = getattr(connection, "connected", None)  # aio-pika's robust: cleared while reconnecting
        return connected is None or connected.is_set()

    def publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Queue ``event`` for RabbitMQ and return at once; never raises (see the module docstring)."""
        try:
            message = aio_pika.Message(
                json.dumps(event).encode("utf-8"),
                headers=headers,
                content_type="application/json",
                app_id=self.rasa_environment,
                message_id=uuid.uuid4().hex,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
        except Exception:
            logger.exception(f"event {str(event.get('event'))[:40]!r} could not be serialised; not published")
            return
        try:
            if len(self._unpublished_events) >= self.max_unpublished_events:
                self._unpublished_events.popleft()
                self.dropped_events += 1
                self._dropped_in_outage += 1
                if self._drop_warning.ready():
                    logger.warning(
                        f"RabbitMQ event buffer full ({self.max_unpublished_events} events): dropping the oldest; "
                        f"{self.dropped_events} dropped since the start"
                    )
            self._unpublished_events.append(message)
            self._has_events.set()
        except Exception:  # pragma: no cover - nothing above raises; a turn must never fail here
            logger.exception("event could not be queued for RabbitMQ")

    async def _deliver(self) -> None:
        """Send the buffer's head until RabbitMQ confirms it, then the next one: in order."""
        while True:
            if not self._unpublished_events:
                if self._dropped_in_outage:
                    logger.warning(
                        f"RabbitMQ event stream delivering again: {self._dropped_in_outage} events were dropped "
                        f"meanwhile (buffer of {self.max_unpublished_events}); {self.dropped_events} since the start"
                    )
                    self._dropped_in_outage = 0
                    self._drop_warning.reset()
                self._has_events.clear()
                await self._has_events.wait()
                continue
            await self._exchange_ready.wait()
            message = self._unpublished_events[0]
            try:
                await asyncio.wait_for(self._exchange.publish(message, ""), self._publish_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._failure_warning.ready():
                    logger.warning(
                        f"publishing to RabbitMQ at {self.url_for_logs} failed ({type(error).__name__}: {error}); "
                        f"{len(self._unpublished_events)} events waiting, tried again every {self._retry_delay:g} s"
                    )
                await asyncio.sleep(self._retry_delay)
                continue
            self.published_events += 1
            self._failure_warning.reset()
            if self._unpublished_events and self._unpublished_events[0] is message:
                self._unpublished_events.popleft()  # else a full buffer dropped it meanwhile

    async def close(self) -> None:
        """Deliver what is buffered (for ``close_timeout_in_seconds`` at most), then disconnect."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self._close_timeout
        while self._unpublished_events and self.is_ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        tasks = [task for task in (self._connecting, self._delivering) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close_quietly(self._connection, self._close_timeout or 1.0)
        self._exchange = None
        self._exchange_ready.clear()
        if self._unpublished_events:
            logger.warning(f"event broker closed with {len(self._unpublished_events)} events not published to RabbitMQ")


async def _close_quietly(connection: Any, timeout: float) -> None:
    if connection is None:
        return
    try:
        await asyncio.wait_for(connection.close(), timeout)
    except Exception as error:  # closing a broken connection can fail in many ways; it is gone anyway
        logger.debug(f"closing the RabbitMQ connection: {error!r}")


__all__ = ["TandemPikaEventBroker", "broker_url"]
