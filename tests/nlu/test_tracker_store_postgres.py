"""tandem_rasa/tracker_store.py on real PostgreSQL, inside Rasa's own environment (issue 15).

Each test gets a new database ``tandem_tracker_<random>`` on the server of ``TEST_POSTGRES_URL``,
dropped afterwards. An unreachable server makes the tests error out, never skip. The tests check
that:
- Rasa's loader builds the store from ``endpoints.yml`` with a full ``postgresql://`` URL, uses
  that database, and a multi-turn tracker comes back exactly (only the latest session from
  ``retrieve``);
- the index exists after construction, and a second store neither locks nor creates anything;
- replicas that start together on a fresh database all succeed, and exactly one creates the index;
- ``EXPLAIN ANALYZE`` of Rasa's per-turn query, over thousands of conversations, reads the latest
  session start from the index instead of every event of the conversation.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.integration.conftest import fresh_database_url
from tests.stack import RASA, ROOT

pytestmark = pytest.mark.integration

PYTHON = RASA.parent / "python"
INDEX = "tandem_events_session_started"
REPLICAS = 8

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, re, sys, time

    import sqlalchemy as sa

    import tandem_rasa.tracker_store as ours
    from rasa.core.tracker_store import create_tracker_store
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import read_endpoint_config

    mode, url = sys.argv[1], sys.argv[2]
    domain = Domain.empty()
    statements = []  # every SQL statement sent, to see what a construction runs
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    created = []  # what create_postgresql_indexes returned, in this process
    real_create = ours.create_postgresql_indexes

    def create(engine, table):
        if mode == "replica":  # every replica reaches the index at the same moment (after Rasa's table)
            time.sleep(max(0.0, float(sys.argv[4]) - time.time()))
        created.extend(real_create(engine, table))

    ours.create_postgresql_indexes = create

    def store():
        return ours.TandemSQLTrackerStore(domain=domain, dialect="postgresql", host=url)

    def indexes(s):
        query = "SELECT indexname, indexdef, to_regclass(indexname)::oid FROM pg_indexes WHERE tablename = 'events'"
        with s.engine.connect() as connection:
            return {name: [definition, oid] for name, definition, oid in connection.execute(sa.text(query))}

    clock = iter(1_700_000_000.0 + 0.1 * n for n in range(10_000))  # exact floats must come back exactly

    def stamped(*events):
        for event in events:
            event.timestamp = next(clock)
        return list(events)

    def session_start():
        return stamped(ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"))

    def turn(n):
        return stamped(UserUttered(f"message {n}", {"name": "greet", "confidence": 0.9}), ActionExecuted("utter_greet"),
                       BotUttered(f"reply {n}"), ActionExecuted("action_listen"))

    async def roundtrip():
        # endpoints.yml as deployed: the full URL in TRACKER_DB_URL, every other ${VAR} a placeholder.
        text = open("endpoints.yml").read()
        for name in set(re.findall(r"\\$\\{(\\w+)\\}", text)):
            os.environ.setdefault(name, "placeholder")
        os.environ.update({"TRACKER_DB_URL": url, "TRACKER_DB_DIALECT": "postgresql"})
        s = create_tracker_store(read_endpoint_config("endpoints.yml", "tracker_store"), domain)
        with s.engine.connect() as connection:
            database = connection.execute(sa.text("SELECT current_database()")).scalar()
        assert await s.retrieve("c1") is None
        saved = session_start() + turn(1)
        await s.save(DialogueStateTracker.from_events("c1", saved, domain.slots))
        for n in (2, 3):
            tracker = await s.retrieve("c1")
            for event in turn(n):
                tracker.update(event)
                saved.append(event)
            await s.save(tracker)
        tracker = await s.retrieve("c1")
        second = session_start() + turn(4)
        for event in second:
            tracker.update(event)
            saved.append(event)
        await s.save(tracker)
        latest = await s.retrieve("c1")
        full = await s.retrieve_full_tracker("c1")
        with s.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT count(*) FROM events WHERE sender_id = 'c1'")).scalar()
        return {
            "class": type(s).__name__, "database": database, "url_database": s.engine.url.database, "rows": rows,
            "saved": [e.as_dict() for e in saved], "full": [e.as_dict() for e in full.events],
            # a session starts with its SessionStarted (action_session_start is stamped before it)
            "expected_latest": [e.as_dict() for e in second[1:]], "latest": [e.as_dict() for e in latest.events],
        }

    def construct():
        first = store()
        after_first = indexes(first)
        first_statements = list(statements)
        del statements[:]
        second = store()
        return {"indexes": after_first, "after_second": indexes(second), "first_statements": first_statements,
                "second_statements": list(statements), "created": created}

    def replica():
        start_at = float(sys.argv[3])
        time.sleep(max(0.0, start_at - time.time()))  # every replica starts at the same moment
        started = time.perf_counter()
        s = store()
        return {"created": created, "indexes": sorted(indexes(s)), "seconds": time.perf_counter() - started}

    POPULATE = '''
    INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)
    WITH s AS (
      SELECT g AS sid, 1 + (random() * 5)::int AS sessions, 1.7e9 + random() * 30 * 86400 AS t0
      FROM generate_series(1, :senders) g),
    sess AS (
      SELECT sid, t0 + k * 3600 * (1 + random() * 24) AS ts, 1 + (random() * 11)::int AS turns
      FROM s, generate_series(1, s.sessions) k),
    ev AS (
      SELECT sid, ts, 'action' AS type_name, 'action_session_start' AS action_name, NULL AS intent FROM sess
      UNION ALL SELECT sid, ts + 0.001, 'session_started', NULL, NULL FROM sess
      UNION ALL SELECT sid, ts + 0.002, 'action', 'action_listen', NULL FROM sess
      UNION ALL SELECT sid, ts + t * 20 + e * 0.5, (ARRAY['user', 'action', 'bot', 'action'])[e + 1],
        (ARRAY[NULL, 'utter_greet', NULL, 'action_listen'])[e + 1], CASE e WHEN 0 THEN 'greet' END
      FROM sess, generate_series(1, sess.turns) t, generate_series(0, 3) e)
    SELECT md5(sid::text)::uuid::text, type_name, ts, intent, action_name,
      json_build_object('event', type_name, 'timestamp', ts, 'name', action_name,
                        'text', repeat('x', 100 + (random() * 300)::int))::text
    FROM ev ORDER BY ts
    '''

    def explain():
        s = store()
        with s.engine.begin() as connection:
            connection.execute(sa.text("SELECT setseed(0.15)"))
            connection.execute(sa.text(POPULATE), {"senders": int(sys.argv[3])})
        with s.engine.connect() as connection:
            connection.execute(sa.text("ANALYZE events"))
            stats = connection.execute(sa.text("SELECT count(*), count(DISTINCT sender_id) FROM events")).one()
            busiest = "SELECT sender_id FROM events WHERE type_name = 'session_started' GROUP BY 1"
            sender = connection.execute(sa.text(busiest + " ORDER BY count(*) DESC, 1 LIMIT 1")).scalar()
        with s.session_scope() as session:  # the turn's query as the store sends it (psycopg2 and its parameters)
            query = s._event_query(session, sender, False).with_entities(s.SQLEvent.data)
            compiled = query.statement.compile(dialect=s.engine.dialect)
            rows = len(query.all())

        def plan(connection):
            sql = "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled)
            return "\\n".join(line for (line,) in connection.exec_driver_sql(sql, compiled.params))

        with s.engine.connect() as connection:
            after = plan(connection)
            with connection.begin() as transaction:  # the same statistics without the index, rolled back
                for name in ours.POSTGRESQL_INDEXES:
                    connection.execute(sa.text(f"DROP INDEX {name}"))
                before = plan(connection)
                transaction.rollback()
        return {"events": stats[0], "senders": stats[1], "rows": rows, "before": before, "after": after}

    result = {"roundtrip": lambda: asyncio.run(roundtrip()), "construct": construct, "replica": replica,
              "explain": explain}[mode]()
    print(json.dumps(result))
    """
)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(PYTHON), "-c", SCRIPT, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def _run(*args: str) -> dict[str, Any]:
    return _result(_start(*args))


@pytest.fixture
def tracker_url() -> Iterator[str]:
    """A fresh, empty database, as the psycopg2 URL Rasa's SQLAlchemy 1.4 speaks."""
    with fresh_database_url("tandem_tracker") as url:
        yield make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _cost(plan: str) -> float:
    match = re.match(r"\S.*?\(cost=[\d.]+\.\.([\d.]+)", plan)
    assert match, plan
    return float(match.group(1))


def test_rasa_s_loader_uses_the_url_s_database_and_the_tracker_comes_back_exactly(tracker_url: str) -> None:
    result = _run("roundtrip", tracker_url)
    name = make_url(tracker_url).database
    assert result["class"] == "TandemSQLTrackerStore"  # not Rasa's silent in-memory fallback
    assert result["database"] == result["url_database"] == name
    # 3 + 4 events, two turns of 4, a new session (3) with a turn (4): all stored once, all equal.
    assert result["rows"] == len(result["saved"]) == 22
    assert result["full"] == result["saved"]
    assert result["latest"] == result["expected_latest"] and len(result["latest"]) == 6


def test_the_index_is_created_once_and_a_second_store_is_a_no_op(tracker_url: str) -> None:
    result = _run("construct", tracker_url)
    assert result["created"] == [INDEX]  # the first store only
    definition, oid = result["indexes"][INDEX]
    assert "(sender_id, \"timestamp\") WHERE ((type_name)::text = 'session_started'::text)" in definition
    assert set(result["indexes"]) == {"events_pkey", "ix_events_sender_id", INDEX}  # Rasa's own are untouched
    assert any("pg_advisory_xact_lock" in s for s in result["first_statements"])
    assert any(s.startswith(f"CREATE INDEX IF NOT EXISTS {INDEX}") for s in result["first_statements"])
    # The second store finds the index in the catalog: no lock, no DDL, the same index.
    assert not any("pg_advisory" in s or "CREATE" in s for s in result["second_statements"])
    assert result["after_second"][INDEX][1] == oid


def test_replicas_starting_together_on_a_fresh_database_all_succeed(tracker_url: str) -> None:
    # Every replica creates Rasa's table at the same moment (after its interpreter has imported
    # Rasa), then reaches the index at the same moment: the check and the CREATE INDEX collide.
    start_at = time.time() + 8
    replicas = [_start("replica", tracker_url, str(start_at), str(start_at + 3)) for _ in range(REPLICAS)]
    try:
        results = [_result(replica) for replica in replicas]
    finally:
        for replica in replicas:  # none left behind when one fails
            if replica.poll() is None:
                replica.kill()
    assert all(INDEX in r["indexes"] for r in results), results
    assert sorted(len(r["created"]) for r in results) == [0] * (REPLICAS - 1) + [1], results
    print("construction seconds:", sorted(round(r["seconds"], 2) for r in results))


def test_the_per_turn_query_reads_the_session_start_from_the_index(tracker_url: str) -> None:
    result = _run("explain", tracker_url, "2000")
    print(f"{result['events']} events of {result['senders']} senders; before:\n{result['before']}")
    print(f"after:\n{result['after']}")
    assert result["senders"] == 2000 and result["events"] > 100_000 and result["rows"] > 0
    after, before = result["after"], result["before"]
    assert f"Index Only Scan Backward using {INDEX}" in after
    assert "Seq Scan" not in after and "Seq Scan" not in before
    # Without it, the max() read every event of the conversation through Rasa's sender_id index.
    assert INDEX not in before and "Filter: ((type_name)::text = 'session_started'::text)" in before
    assert _cost(after) < _cost(before)
