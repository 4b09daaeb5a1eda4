"""Single-turn latency through the gateway (one customer alone, sequential) and the stages' share.

What is measured:

- ``whole turn``: the HTTP call ``POST /api/v1/messages`` timed by this program (client side);
- ``Rasa turn``: the gateway's own timing of its call to Rasa's channel (``upstream_ms`` of its
  ``turn`` log line, joined on the turn id);
- ``action server``: the sum of ``duration_ms`` of the action server's ``action`` log lines of the
  turn (joined on the correlation id = turn id), i.e. time inside the actions, and their number;
- ``NLU parse``: ``POST /model/parse`` timed separately, the same utterances, one at a time (this
  includes the HTTP handling of Rasa's API, a millisecond or so).

What is derived, per turn: ``gateway overhead`` = whole turn − Rasa turn (the gateway's own work,
its session and rate-limit checks, and the HTTP hop from this program); ``rest of Rasa`` = Rasa turn
− NLU parse (median of that utterance) − action server: policies, the tracker store, the lock store,
the HTTP round trips to the action server and their (de)serialization. Shares are of the mean turn
(means add up; medians do not).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.load.loadgen import TANDEM_SCRIPT, Target, make_client, timed_turn
from benchmarks.load.stats import Turn, percentile


def _dist(values: list[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "p50_ms": r(percentile(values, 50)),
        "p95_ms": r(percentile(values, 95)),
        "mean_ms": r(sum(values) / len(values)) if values else None,
    }


def json_lines(path: Path) -> Iterable[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def gateway_upstream_ms(log: Path) -> dict[str, float]:
    """turn id → ``upstream_ms`` from the gateway's ``turn`` log lines."""
    return {
        str(r["turn_id"]): float(r["upstream_ms"])
        for r in json_lines(log)
        if r.get("event") == "turn" and "turn_id" in r and "upstream_ms" in r
    }


def action_ms(log: Path) -> dict[str, list[float]]:
    """correlation id → ``duration_ms`` of each action call of that turn (action server log)."""
    calls: dict[str, list[float]] = {}
    for r in json_lines(log):
        if r.get("event") == "action" and r.get("correlation_id") and "duration_ms" in r:
            calls.setdefault(str(r["correlation_id"]), []).append(float(r["duration_ms"]))
    return calls


def breakdown(
    turns: list[dict[str, Any]],
    upstream: dict[str, float],
    actions: dict[str, list[float]],
    parse_ms: dict[str, list[float]],
) -> dict[str, Any]:
    """Per-stage distributions and shares from the measured turns and the joined log timings."""
    parse_median = {text: percentile(values, 50) or 0.0 for text, values in parse_ms.items()}
    rows = []
    for t in turns:
        if t["error"] is not None or t["turn_id"] not in upstream:
            continue
        rasa = upstream[t["turn_id"]]
        acts = actions.get(t["turn_id"], [])
        parse = parse_median.get(t["text"], 0.0)
        rows.append(
            {
                "text": t["text"],
                "whole": t["client_ms"],
                "rasa": rasa,
                "gateway": t["client_ms"] - rasa,
                "parse": parse,
                "actions": sum(acts),
                "calls": len(acts),
                "rest": rasa - parse - sum(acts),
            }
        )

    def column(name: str, subset: list[dict[str, Any]] | None = None) -> list[float]:
        return [float(r[name]) for r in (rows if subset is None else subset)]

    whole_mean = sum(column("whole")) / len(rows) if rows else 0.0
    shares = {
        stage: round(sum(column(stage)) / len(rows) / whole_mean, 3) if whole_mean else None
        for stage in ("gateway", "parse", "actions", "rest")
    }
    by_text = {}
    for text in dict.fromkeys(r["text"] for r in rows):
        subset = [r for r in rows if r["text"] == text]
        by_text[text] = {
            "turns": len(subset),
            "whole_p50_ms": round(percentile(column("whole", subset), 50) or 0, 1),
            "rasa_p50_ms": round(percentile(column("rasa", subset), 50) or 0, 1),
            "parse_p50_ms": round(parse_median.get(text, 0.0), 1),
            "actions_p50_ms": round(percentile(column("actions", subset), 50) or 0, 1),
            "action_calls": round(sum(column("calls", subset)) / len(subset), 2),
        }
    all_parse = [v for values in parse_ms.values() for v in values]
    return {
        "turns_joined": len(rows),
        "measured": {
            "whole_turn_client": _dist(column("whole")),
            "rasa_turn_gateway_upstream": _dist(column("rasa")),
            "nlu_parse_model_parse": _dist(all_parse),
            "action_server_in_actions": _dist(column("actions")),
            "action_calls_per_turn": round(sum(column("calls")) / len(rows), 2) if rows else None,
        },
        "derived": {
            "gateway_overhead": _dist(column("gateway")),
            "rasa_rest": _dist(column("rest")),
        },
        "share_of_mean_turn": shares,
        "by_text": by_text,
    }


async def single_turn(
    *,
    gateway_url: str,
    rasa_url: str,
    token: str,
    gateway_log: Path,
    action_log: Path | list[Path],
    turns: int = 50,
    conversation_turns: int = 5,
    script: list[str] | None = None,
) -> dict[str, Any]:
    """``turns`` sequential turns through the gateway (a new session every ``conversation_turns``),
    after one warm-up conversation; then the NLU parse of the same utterances. ``action_log``: the
    action server's log, or each replica's."""
    script = script or [str(step) for step in TANDEM_SCRIPT]
    conversation_turns = max(1, conversation_turns)
    measured: list[dict[str, Any]] = []
    async with make_client(2) as client:

        async def new_session() -> str:
            response = await client.post(f"{gateway_url}/api/v1/session", json={"mode": "bearer"})
            response.raise_for_status()
            return str(response.json()["token"])

        async def turn(session: str, text: str) -> dict[str, Any]:
            started = time.perf_counter()
            error: str | None = None
            turn_id = None
            try:
                response = await client.post(
                    f"{gateway_url}/api/v1/messages",
                    json={"text": text},
                    headers={"Authorization": f"Bearer {session}"},
                )
                if response.status_code == 200:
                    body = response.json()
                    turn_id = body.get("turn_id")
                    error = None if body.get("messages") else "empty_reply"
                else:
                    error = f"status_{response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            return {
                "text": text,
                "client_ms": (time.perf_counter() - started) * 1000,
                "turn_id": turn_id,
                "error": error,
            }

        session = await new_session()
        for index in range(conversation_turns):  # warm-up, not recorded
            await turn(session, script[index % len(script)])
        for n in range(turns):
            index = n % conversation_turns
            if index == 0:
                session = await new_session()
            measured.append(await turn(session, script[index % len(script)]))

        parse_ms: dict[str, list[float]] = {}
        texts = [t["text"] for t in measured]
        for text in dict.fromkeys(texts):  # warm-up
            await client.post(f"{rasa_url}/model/parse", params={"token": token}, json={"text": text})
        for text in texts:
            started = time.perf_counter()
            response = await client.post(f"{rasa_url}/model/parse", params={"token": token}, json={"text": text})
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                parse_ms.setdefault(text, []).append(elapsed)

    await asyncio.sleep(0.5)  # the servers' last log lines
    calls: dict[str, list[float]] = {}
    for log in [action_log] if isinstance(action_log, Path) else action_log:
        for correlation_id, durations in action_ms(log).items():
            calls.setdefault(correlation_id, []).extend(durations)
    result = breakdown(measured, gateway_upstream_ms(gateway_log), calls, parse_ms)
    return {
        "turns": len(measured),
        "conversation_turns": conversation_turns,
        "errors": sum(1 for t in measured if t["error"] is not None),
        **result,
    }


async def rasa_alone(
    target: Target, *, rasa_url: str, token: str | None, turns: int = 50, conversation_turns: int = 5
) -> dict[str, Any]:
    """One customer alone, straight to the Rasa server (no gateway): ``turns`` sequential turns (a new
    conversation every ``conversation_turns``), then ``POST /model/parse`` of the same utterances.
    ``rest`` (derived) = turn − the utterance's median parse: policies, actions, stores, channel."""
    conversation_turns = max(1, conversation_turns)
    done: list[Turn] = []
    parse_ms: dict[str, list[float]] = {}
    params = {"token": token} if token else {}
    async with make_client(2) as client:
        session = None
        for n in range(turns):
            index = n % conversation_turns
            if index == 0:
                session = await target.open_session(client, n)
            done.append(await timed_turn(target, client, session, 0, index))
        for text in dict.fromkeys(t.text for t in done):  # warm-up
            await client.post(f"{rasa_url}/model/parse", params=params, json={"text": text})
        for t in done:
            started = time.perf_counter()
            response = await client.post(f"{rasa_url}/model/parse", params=params, json={"text": t.text})
            if response.status_code == 200:
                parse_ms.setdefault(t.text, []).append((time.perf_counter() - started) * 1000)
    median = {text: percentile(values, 50) or 0.0 for text, values in parse_ms.items()}
    ok = [t for t in done if t.error is None]
    return {
        "turns": len(done),
        "errors": len(done) - len(ok),
        "measured": {
            "turn_client": _dist([t.latency_ms for t in ok]),
            "nlu_parse_model_parse": _dist([v for values in parse_ms.values() for v in values]),
        },
        "derived": {"rest": _dist([t.latency_ms - median.get(t.text, 0.0) for t in ok])},
    }
