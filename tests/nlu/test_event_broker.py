"""tandem_rasa/event_broker.py inside Rasa's own environment, against the real RabbitMQ of
``TEST_RABBITMQ_URL`` (default: the local server, guest/guest; unreachable: the tests that need it
error out, never skip). Each test has a queue and a fanout exchange of its own (so a running bot's
``rasa-exchange`` and its queues see nothing of the tests), deleted afterwards.

The tests check that: Rasa's loader builds the broker from the project's ``endpoints.yml``
(``EVENT_BROKER_URL``, ``EVENT_BROKER_QUEUE``) and the project's tracker store streams every new
event of its saves, with ``sender_id``, in order, persistent, into the durable queue; an empty URL
means no broker and no warning; events published before the connection, and during an outage
after it, are delivered once RabbitMQ is back (a TCP relay in the test stands for RabbitMQ going
away and coming back); a full buffer drops the oldest events and says how many; a broker pointed at
a closed port, or at one that never answers, neither raises nor holds up publish, a tracker save
or the server's start; credentials come from the URL (percent-encoded too), and a wrong password
leaves the bot serving; scripts/env.sh defines and exports both variables.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, os, socket, sys, time, warnings

    import aio_pika
    from yarl import URL

    conf = json.loads(sys.argv[2])
    RABBIT = URL(conf["url"])
    BROKER = "tandem_rasa.event_broker.TandemPikaEventBroker"


    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.records = []

        def emit(self, record):
            self.records.append(record)

        def of(self, level, text=""):
            return [r.getMessage() for r in self.records if r.levelno == level and text in r.getMessage()]

        def at_least(self, level):
            return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= level]


    records = Records()
    logging.getLogger().addHandler(records)
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("tandem_rasa").setLevel(logging.DEBUG)


    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


    def config(url, **settings):
        from rasa.utils.endpoints import EndpointConfig

        settings = {"queues": [conf["queue"]], "exchange_name": conf["exchange"], **settings}
        return EndpointConfig(url=url, type=BROKER, **settings)


    async def create(endpoint):
        from rasa.core.brokers.broker import EventBroker

        started = time.monotonic()
        broker = await EventBroker.create(endpoint)
        return broker, time.monotonic() - started


    class Relay:
        # A TCP relay to RabbitMQ: "RabbitMQ" for the broker, which can go away and come back.
        def __init__(self):
            self.port = free_port()
            self.server = None
            self.writers = []

        async def up(self):
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

        async def down(self):
            self.server.close()
            await self.server.wait_closed()
            for writer in self.writers:
                writer.transport.abort()
            self.writers = []

        async def _serve(self, reader, writer):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(RABBIT.host, RABBIT.port or 5672)
            except OSError:
                writer.transport.abort()
                return
            self.writers += [writer, upstream_writer]

            async def pipe(source, sink):
                try:
                    while data := await source.read(65536):
                        sink.write(data)
                        await sink.drain()
                except Exception:
                    pass
                finally:
                    sink.transport.abort()

            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        def url(self):
            return str(RABBIT.with_host("127.0.0.1").with_port(self.port))


    class Reader:
        # The consumer's side: the test's durable queue, read message by message.
        async def open(self):
            self.connection = await aio_pika.connect(conf["url"])
            self.channel = await self.connection.channel()
            self.queue = await self.channel.declare_queue(conf["queue"], passive=True)  # the broker declared it
            return self

        async def take(self, n, seconds=20):
            got, deadline = [], time.monotonic() + seconds
            while len(got) < n and time.monotonic() < deadline:
                message = await self.queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.01)
                    continue
                got.append({"body": json.loads(message.body), "id": message.message_id,
                            "mode": int(message.delivery_mode), "type": message.content_type})
            return got

        async def rest(self, wait=0.5):
            await asyncio.sleep(wait)
            return await self.take(10_000, seconds=0)

        async def durable(self):
            # Declaring it durable again succeeds only if it is durable (else PRECONDITION_FAILED).
            channel = await self.connection.channel()
            await channel.declare_queue(conf["queue"], durable=True)
            await channel.close()
            return True

        async def close(self):
            await self.connection.close()


    async def eventually(condition, seconds=20):
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return condition()


    def numbers(messages):
        return [m["body"]["n"] for m in messages]


    async def endpoints():
        # The project's endpoints.yml as deployed: the URL and the queue from the environment.
        from rasa.core.brokers.broker import EventBroker
        from rasa.shared.core.domain import Domain
        from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
        from rasa.shared.core.trackers import DialogueStateTracker
        from rasa.utils.endpoints import read_endpoint_config

        from tandem_rasa.tracker_store import TandemSQLTrackerStore

        os.environ.update({"EVENT_BROKER_URL": conf["url"], "EVENT_BROKER_QUEUE": conf["queue"]})
        endpoint = read_endpoint_config("endpoints.yml", "event_broker")
        settings = {"type": endpoint.type, "queues": endpoint.kwargs.get("queues")}
        endpoint.kwargs["exchange_name"] = conf["exchange"]  # the test's own, not the bot's rasa-exchange
        broker, seconds = await create(endpoint)
        domain = Domain.empty()
        store = TandemSQLTrackerStore(domain=domain, dialect="sqlite", db=conf["tracker_db"], event_broker=broker)
        clock = iter(1_700_000_000.0 + 0.5 * n for n in range(1000))

        def stamped(*events):
            for event in events:
                event.timestamp = next(clock)
            return list(events)

        def first_turn(name):
            return stamped(ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
                           UserUttered(f"hi, I am {name}", {"name": "greet", "confidence": 0.9}),
                           ActionExecuted("utter_greet"), BotUttered(f"hello {name}"), ActionExecuted("action_listen"))

        expected, started = [], time.monotonic()
        for sender in ("alice", "bob"):
            events = first_turn(sender)
            await store.save(DialogueStateTracker.from_events(sender, events, domain.slots))
            expected += [{"sender_id": sender, **e.as_dict()} for e in events]
        tracker = await store.retrieve("alice")  # a second turn: only its new events are streamed
        for event in stamped(UserUttered("and again", {"name": "greet", "confidence": 0.8}), BotUttered("again")):
            tracker.update(event)
            expected.append({"sender_id": "alice", **event.as_dict()})
        await store.save(tracker)
        saving = time.monotonic() - started
        reader = await Reader().open()
        got = await reader.take(len(expected))
        rest = await reader.rest()
        durable = await reader.durable()
        await reader.close()
        await broker.close()
        return {"class": type(broker).__name__, "settings": settings, "ready_after": seconds, "saving": saving,
                "expected": expected, "bodies": [m["body"] for m in got], "rest": len(rest), "durable": durable,
                "modes": sorted({m["mode"] for m in got}), "types": sorted({m["type"] for m in got}),
                "ids": len({m["id"] for m in got if m["id"]}), "published": broker.published_events,
                "problems": records.at_least(logging.WARNING)}


    async def no_url():
        from rasa.shared.exceptions import RasaException
        from rasa.utils.endpoints import read_endpoint_config

        results = {}  # deprecation warnings of Rasa's imports aside (Rasa's own warnings are UserWarnings)
        for value in ("", "   "):
            os.environ.update({"EVENT_BROKER_URL": value, "EVENT_BROKER_QUEUE": "tandem-analytics"})
            del records.records[:]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                endpoint = read_endpoint_config("endpoints.yml", "event_broker")
                broker, _ = await create(endpoint)
            results[repr(value)] = {"type": endpoint.type, "url": endpoint.url, "broker": repr(broker),
                                    "warnings": [str(w.message) for w in caught
                                                 if w.category is not DeprecationWarning],
                                    "logged": records.at_least(logging.WARNING)}
        del os.environ["EVENT_BROKER_URL"]
        try:
            read_endpoint_config("endpoints.yml", "event_broker")
            results["unset"] = "read"
        except RasaException as error:
            results["unset"] = str(error)
        return results


    async def outage():
        relay = Relay()
        endpoint = config(relay.url(), retry_delay_in_seconds="0.2", startup_wait_in_seconds="0.3")
        broker, seconds = await create(endpoint)  # RabbitMQ "down" at the start
        ready_at_start = broker.is_ready()
        for n in range(5):
            broker.publish({"sender_id": "early", "event": "user", "n": n})
        await asyncio.sleep(0.7)  # a few failed attempts
        errors = records.of(logging.ERROR, "unreachable")
        await relay.up()
        connected = await eventually(broker.is_ready)
        reader = await Reader().open()
        early = await reader.take(5)
        for n in range(5, 8):
            broker.publish({"sender_id": "live", "event": "user", "n": n})
        live = await reader.take(3)
        await relay.down()  # RabbitMQ goes away after the connection...
        await eventually(lambda: not broker.is_ready(), seconds=5)
        for n in range(8, 13):
            broker.publish({"sender_id": "outage", "event": "user", "n": n})
        await asyncio.sleep(0.7)  # aio-pika's robust connection tries 3 times meanwhile
        waiting = len(broker._unpublished_events)
        reconnect_warnings = records.of(logging.WARNING, "Connection attempt to")
        await relay.up()  # ... and comes back
        late = await reader.take(5)
        rest = await reader.rest()
        await reader.close()
        await broker.close()
        await relay.down()
        return {"ready_after": seconds, "ready_at_start": ready_at_start, "errors": errors, "connected": connected,
                "early": numbers(early), "senders": sorted({m["body"]["sender_id"] for m in early + live + late}),
                "live": numbers(live), "waiting": waiting, "late": numbers(late), "rest": numbers(rest),
                "dropped": broker.dropped_events, "published": broker.published_events,
                "reconnect_warnings": reconnect_warnings}


    async def bounded():
        relay = Relay()
        endpoint = config(relay.url(), retry_delay_in_seconds="0.2", startup_wait_in_seconds="0",
                          max_unpublished_events="5")
        broker, _ = await create(endpoint)
        for n in range(12):
            broker.publish({"sender_id": "s", "event": "user", "n": n})
        buffered = len(broker._unpublished_events)
        dropped = broker.dropped_events
        full_warnings = records.of(logging.WARNING, "buffer full")
        await relay.up()
        connected = await eventually(broker.is_ready)
        reader = await Reader().open()
        got = await reader.take(5)
        rest = await reader.rest()
        await eventually(lambda: records.of(logging.WARNING, "dropped meanwhile"), seconds=5)
        summary = records.of(logging.WARNING, "dropped meanwhile")
        await reader.close()
        await broker.close()
        await relay.down()
        return {"buffered": buffered, "dropped": dropped, "full_warnings": full_warnings, "connected": connected,
                "got": numbers(got),
                "rest": numbers(rest), "summary": summary}


    async def unreachable():
        from rasa.shared.core.domain import Domain
        from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
        from rasa.shared.core.trackers import DialogueStateTracker

        from tandem_rasa.tracker_store import TandemSQLTrackerStore

        async def silent(reader, writer):  # accepts, never answers: a RabbitMQ that hangs
            await asyncio.sleep(3600)

        silent_port = free_port()
        hanging = await asyncio.start_server(silent, "127.0.0.1", silent_port)
        results = {}
        for name, port in (("closed", free_port()), ("silent", silent_port)):
            del records.records[:]
            url = str(RABBIT.with_host("127.0.0.1").with_port(port))
            endpoint = config(url, retry_delay_in_seconds="0.1", startup_wait_in_seconds="0.5",
                              connect_timeout_in_seconds="0.3")
            broker, seconds = await create(endpoint)
            calls, started = [], time.monotonic()
            for n in range(2000):
                before = time.perf_counter()
                broker.publish({"sender_id": "s", "event": "user", "n": n, "text": "x" * 200})
                calls.append(time.perf_counter() - before)
            publishing = time.monotonic() - started
            calls.sort()
            domain = Domain.empty()
            store = TandemSQLTrackerStore(domain=domain, dialect="sqlite", db=conf["tracker_db"] + name,
                                          event_broker=broker)
            events = [UserUttered("hello", {"name": "greet", "confidence": 0.9}), ActionExecuted("utter_greet"),
                      BotUttered("hi"), ActionExecuted("action_listen")]
            started = time.monotonic()
            await store.save(DialogueStateTracker.from_events(f"{name}-sender", events, domain.slots))
            saving = time.monotonic() - started
            stored = len((await store.retrieve(f"{name}-sender")).events)
            await asyncio.sleep(1.5)  # ~10 more attempts
            started = time.monotonic()
            await broker.close()
            results[name] = {"ready_after": seconds, "ready": broker.is_ready(), "publishing": publishing,
                             "median": calls[len(calls) // 2], "p99": calls[int(0.99 * len(calls))],
                             "slowest": calls[-1], "saving": saving, "stored": stored,
                             "buffered": len(broker._unpublished_events), "closing": time.monotonic() - started,
                             "errors": records.of(logging.ERROR, "unreachable"),
                             "warnings": records.of(logging.WARNING, "still unreachable"),
                             "secret_logged": any(RABBIT.password and RABBIT.password in r.getMessage()
                                                  for r in records.records if r.name.startswith("tandem"))}
        hanging.close()
        return results


    async def credentials():
        from rasa.core.brokers.pika import PikaEventBroker

        from tandem_rasa.event_broker import TandemPikaEventBroker, broker_url

        results = {}
        # Percent-encoded user and password, a port and a vhost, as aio-pika/aiormq will read them.
        tricky = "amqp://us%40er:p%40ss%2Fw%3A@rabbit.example:5673/v%2Fhost?heartbeat=30"
        url = URL(str(broker_url(tricky)))
        results["parsed"] = [url.user, url.password, url.host, url.port, url.path[1:], url.query.get("heartbeat")]
        rasa_s = PikaEventBroker(tricky, username="us@er", password="p@ss/w:", port=5673, queues=["q"])
        results["rasa_url"] = rasa_s._configure_url()
        bare = broker_url("rabbit.example", username="u", password="pw", port="5675")
        results["bare"] = [bare.scheme, bare.user, bare.password, bare.host, bare.port]
        problems = {}
        for name, kwargs in (("scheme", {"url": "http://rabbit:5672/"}), ("queue", {"queues": [""]}),
                             ("unknown", {"queue_name": "x"}), ("delay", {"retry_delay_in_seconds": "soon"})):
            settings = {"url": conf["url"], "queues": ["q"], **kwargs}
            try:
                TandemPikaEventBroker(**settings)
                problems[name] = None
            except ValueError as error:
                problems[name] = str(error)
        results["problems"] = problems
        # The real server: the URL's credentials are the ones used.
        for name, url in (("right", conf["url"]), ("wrong", str(RABBIT.with_password("not-the-password"))),
                          ("settings", f"{RABBIT.host}")):
            del records.records[:]
            extra = {"username": RABBIT.user, "password": RABBIT.password, "port": str(RABBIT.port or 5672)} \\
                if name == "settings" else {}
            endpoint = config(url, retry_delay_in_seconds="0.2", startup_wait_in_seconds="3", **extra)
            broker, seconds = await create(endpoint)
            ready = broker.is_ready()
            if ready:
                broker.publish({"sender_id": name, "event": "user", "n": 0})
                reader = await Reader().open()
                got = await reader.take(1)
                await reader.close()
            else:
                got = []
            await broker.close()
            results[name] = {"ready": ready, "seconds": seconds, "got": [m["body"]["sender_id"] for m in got],
                             "errors": records.of(logging.ERROR, "unreachable"),
                             "secret_logged": any("not-the-password" in r.getMessage() for r in records.records)}
        return results


    print(json.dumps(asyncio.run(globals()[sys.argv[1]]())))
    """
)

CLEANUP = textwrap.dedent(
    """
    import asyncio, json, sys

    import aio_pika
    import aiormq

    async def main(conf):
        connection = await aio_pika.connect(conf["url"])
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(conf["queue"])
            await channel.exchange_delete(conf["exchange"])
            try:  # still there? (a passive declare of a missing queue closes the channel)
                await (await connection.channel()).declare_queue(conf["queue"], passive=True)
                return False
            except aiormq.exceptions.ChannelNotFoundEntity:
                return True

    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
    """
)


@pytest.fixture
def names(tmp_path: Path) -> dict[str, Any]:
    """A queue and an exchange of the test's own (for the tests that never reach RabbitMQ)."""
    name = f"tandem-test-{uuid.uuid4().hex[:12]}"
    return {"url": RABBITMQ_URL, "queue": name, "exchange": f"{name}-exchange", "tracker_db": str(tmp_path / "t.db")}


@pytest.fixture
def rabbit(names: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Where the test RabbitMQ is (unreachable: the test errors out), and the test's own names,
    deleted afterwards."""
    where = urlsplit(RABBITMQ_URL)
    socket.create_connection((where.hostname or "127.0.0.1", where.port or 5672), timeout=2).close()
    conf = names
    try:
        yield conf
    finally:
        cleanup = subprocess.run(
            [str(PYTHON), "-c", CLEANUP, json.dumps(conf)], capture_output=True, text=True, timeout=60
        )
        assert cleanup.returncode == 0, cleanup.stderr[-3000:]
        assert json.loads(cleanup.stdout.strip().splitlines()[-1]) is True, "the test's queue is still there"


def _run(scenario: str, conf: dict[str, Any], seconds: float = 120) -> dict[str, Any]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("EVENT_BROKER_", "RABBITMQ_"))}
    for name in ("ACTION_SERVER_URL", "ACTION_SERVER_TOKEN", "TRACKER_DB_DIALECT", "TRACKER_DB_URL"):
        env.setdefault(name, "placeholder")  # endpoints.yml's other ${VAR}s (not used here)
    for name in ("LOCK_STORE_TYPE", "LOCK_STORE_HOST", "LOCK_STORE_PORT", "LOCK_STORE_DB"):
        env.setdefault(name, "placeholder")
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.run(
        [str(PYTHON), "-c", SCRIPT, scenario, json.dumps(conf)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return dict(json.loads(process.stdout.strip().splitlines()[-1]))


def test_the_tracker_store_streams_every_new_event_in_order_through_endpoints_yml(rabbit: dict[str, Any]) -> None:
    result = _run("endpoints", rabbit)
    assert result["class"] == "TandemPikaEventBroker", result
    assert result["settings"] == {"type": "tandem_rasa.event_broker.TandemPikaEventBroker", "queues": [rabbit["queue"]]}
    assert result["ready_after"] < 5, result  # connected before the server would serve
    # Two first turns (7 events each) and alice's second turn (2 new events): each once, in order.
    assert len(result["expected"]) == 16 and result["bodies"] == result["expected"], result
    assert result["rest"] == 0 and result["published"] == 16, result
    assert result["modes"] == [2] and result["types"] == ["application/json"], result  # persistent
    assert result["ids"] == 16, result  # a message_id each, for the consumer to drop repeats
    assert result["durable"] is True, result
    assert result["problems"] == [], result
    assert result["saving"] < 2, result


def test_an_empty_url_means_no_broker_and_no_warning(names: dict[str, Any]) -> None:
    result = _run("no_url", names)
    for value in ("''", "'   '"):
        assert result[value]["type"] == "tandem_rasa.event_broker.TandemPikaEventBroker", result
        assert result[value]["broker"] == "None", result
        assert result[value]["warnings"] == [] and result[value]["logged"] == [], result
    # Rasa refuses endpoints.yml when the variable is not defined at all: scripts/env.sh defines it.
    assert "EVENT_BROKER_URL" in result["unset"], result


def test_events_published_before_the_connection_and_during_an_outage_are_delivered(rabbit: dict[str, Any]) -> None:
    result = _run("outage", rabbit)
    assert result["ready_at_start"] is False and result["ready_after"] < 1.5, result  # the server is not held up
    assert len(result["errors"]) == 1, result  # one error, not one per attempt
    assert result["connected"] is True, result
    assert result["early"] == [0, 1, 2, 3, 4], result  # published before RabbitMQ was there
    assert result["live"] == [5, 6, 7], result
    assert result["waiting"] == 5, result  # kept while RabbitMQ was away
    assert result["late"] == [8, 9, 10, 11, 12] and result["rest"] == [], result  # all, in order, once
    assert result["senders"] == ["early", "live", "outage"], result
    assert result["dropped"] == 0 and result["published"] == 13, result
    assert len(result["reconnect_warnings"]) <= 1, result  # aio-pika's, thinned to one a minute


def test_a_full_buffer_drops_the_oldest_events_and_counts_them(rabbit: dict[str, Any]) -> None:
    result = _run("bounded", rabbit)
    assert result["buffered"] == 5 and result["dropped"] == 7 and result["connected"] is True, result
    assert len(result["full_warnings"]) == 1, result  # the first drop; the next ones a minute later
    assert result["got"] == [7, 8, 9, 10, 11] and result["rest"] == [], result  # the newest five
    assert len(result["summary"]) == 1 and "7 events were dropped" in result["summary"][0], result


def test_an_unreachable_rabbitmq_neither_raises_nor_holds_up_a_turn(names: dict[str, Any]) -> None:
    result = _run("unreachable", names)
    for name in ("closed", "silent"):
        one = result[name]
        assert one["ready"] is False, (name, one)
        assert one["ready_after"] < 1.5, (name, one)  # startup_wait_in_seconds (0.5), then Rasa serves
        # 2000 events: no I/O in a call (the slowest may meet a garbage collection on a busy machine)
        assert one["publishing"] < 1.0 and one["median"] < 0.001 and one["p99"] < 0.01, (name, one)
        assert one["saving"] < 1.0 and one["stored"] == 4, (name, one)  # the turn is saved
        assert one["buffered"] == 2004, (name, one)
        assert one["closing"] < 1.5, (name, one)
        assert len(one["errors"]) == 1 and one["warnings"] == [], (name, one)  # no warning storm
        assert one["secret_logged"] is False, (name, one)
    print(
        "\npublish of 2000 events with RabbitMQ unreachable: "
        + ", ".join(
            f"{n} {result[n]['publishing'] * 1000:.1f} ms (a call: median {result[n]['median'] * 1e6:.0f} µs, "
            f"p99 {result[n]['p99'] * 1e6:.0f} µs, slowest {result[n]['slowest'] * 1000:.1f} ms)"
            for n in ("closed", "silent")
        )
    )


def test_credentials_come_from_the_url(rabbit: dict[str, Any]) -> None:
    result = _run("credentials", rabbit)
    assert result["parsed"] == ["us@er", "p@ss/w:", "rabbit.example", 5673, "v/host", "30"], result
    assert result["rasa_url"].count("@") > 1, result  # Rasa's own inserts the password a second time
    assert result["bare"] == ["amqp", "u", "pw", "rabbit.example", 5675], result
    problems = result["problems"]
    assert "amqp://" in problems["scheme"] and "queue" in problems["queue"], problems
    assert "queue_name" in problems["unknown"] and "retry_delay_in_seconds" in problems["delay"], problems
    assert result["right"]["ready"] is True and result["right"]["got"] == ["right"], result
    assert result["settings"]["ready"] is True and result["settings"]["got"] == ["settings"], result
    wrong = result["wrong"]
    assert wrong["ready"] is False and 2.5 < wrong["seconds"] < 5, result  # serves after the startup wait
    assert len(wrong["errors"]) == 1 and wrong["secret_logged"] is False, result


def test_env_sh_defines_and_exports_the_broker_variables(tmp_path: Path) -> None:
    script = f". {ROOT / 'scripts' / 'env.sh'}; env"
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    defaults = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert defaults.returncode == 0, defaults.stderr
    exported = dict(line.split("=", 1) for line in defaults.stdout.splitlines() if "=" in line)
    assert exported["EVENT_BROKER_URL"] == "" and exported["EVENT_BROKER_QUEUE"] == "tandem-analytics"
    given = {**clean, "EVENT_BROKER_URL": "amqp://u:p@rabbit:5672/%2F", "EVENT_BROKER_QUEUE": "other"}
    kept = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=given, capture_output=True, text=True)
    exported = dict(line.split("=", 1) for line in kept.stdout.splitlines() if "=" in line)
    assert exported["EVENT_BROKER_URL"] == given["EVENT_BROKER_URL"] and exported["EVENT_BROKER_QUEUE"] == "other"
