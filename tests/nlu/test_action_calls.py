"""tandem_rasa/action_calls.py inside Rasa's own environment, against real HTTP servers: an action
server that cannot be reached (closed port, 503, no answer in time) fails the turn with
ActionServerUnreachable, which Rasa's processor does not catch (not an Exception); a reachable
server's own failure (HTTP 500) keeps Rasa's RasaException; a good answer is unchanged. With
fallback action servers, a call that never ran (refused, 503) goes to the next one; a call that
may have run (no answer in time) goes nowhere else."""

from __future__ import annotations

import json
import subprocess
import textwrap
from typing import Any

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"

SCRIPT = textwrap.dedent(
    """
    import asyncio, collections, json, socket, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from unittest import mock

    import rasa.core.actions.action as action_module
    from rasa.core.actions.action import RemoteAction
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.exceptions import RasaException
    from rasa.utils.endpoints import EndpointConfig

    from tandem_rasa import action_calls

    hits = collections.Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            hits[self.path] += 1
            if self.path == "/slow":
                time.sleep(3)
            status, body = {
                "/ok": (200, {"events": [{"event": "slot", "name": "a", "value": 1}], "responses": [{"text": "hi"}]}),
                "/busy": (503, {"error": "busy"}),
                "/bug": (500, {"error": "bug"}),
                "/slow": (200, {"events": [], "responses": []}),
            }[self.path]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    def closed_url():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return f"http://127.0.0.1:{s.getsockname()[1]}/webhook"

    closed = closed_url()
    urls = {"closed": closed, "closed2": closed_url(), **{p: base + "/" + p for p in ("busy", "bug", "ok", "slow")}}
    fallbacks = [urls[name] for name in json.loads(sys.argv[1])]

    domain = Domain.empty()
    nlg = TemplatedNaturalLanguageGenerator({})

    async def outcome(url):
        action = RemoteAction("action_x", EndpointConfig(url))
        tracker = DialogueStateTracker("s", [])
        try:
            events = await action.run(CollectingOutputChannel(), nlg, tracker, domain)
        except action_calls.ActionServerUnreachable as error:
            return {"unreachable": error.reason, "is_exception": isinstance(error, Exception)}
        except RasaException as error:
            return {"rasa_exception": type(error).__name__}
        return {"events": [type(e).__name__ for e in events]}

    async def main():
        results = {"before": await outcome(closed)}
        action_calls.install(fallbacks)
        action_calls.install()  # twice: wrapped once (the first fallbacks stay)
        with mock.patch.object(action_module, "DEFAULT_REQUEST_TIMEOUT", 1):
            for name in ("closed", "busy", "bug", "ok", "slow"):
                hits.clear()
                results[name] = {**await outcome(urls[name]), "hits": dict(hits)}
        return results

    print(json.dumps(asyncio.run(main())))
    """
)


def _run(fallbacks: list[str]) -> dict[str, Any]:
    run = subprocess.run(
        [str(PYTHON), "-c", SCRIPT, json.dumps(fallbacks)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


UNREACHABLE = {"is_exception": False}
OK = {"events": ["BotUttered", "SlotSet"]}


def test_an_unreachable_action_server_fails_the_turn_and_a_buggy_one_does_not() -> None:
    result = _run([])
    # Rasa's own behaviour, which its processor catches (and carries on without the action).
    assert result["before"] == {"rasa_exception": "RasaException"}
    assert result["closed"] == {"unreachable": "connect", **UNREACHABLE, "hits": {}}
    assert result["busy"] == {"unreachable": "HTTP 503", **UNREACHABLE, "hits": {"/busy": 1}}
    assert result["slow"] == {"unreachable": "timeout", **UNREACHABLE, "hits": {"/slow": 1}}
    assert result["bug"] == {"rasa_exception": "RasaException", "hits": {"/bug": 1}}
    assert result["ok"] == {**OK, "hits": {"/ok": 1}}


def test_a_call_that_never_ran_goes_to_the_next_action_server() -> None:
    result = _run(["closed2", "busy", "ok"])
    # Refused, then refused and 503 on the first fallbacks: the third runs it, once.
    assert result["closed"] == {**OK, "hits": {"/busy": 1, "/ok": 1}}
    assert result["busy"] == {**OK, "hits": {"/busy": 2, "/ok": 1}}  # its own 503, the fallback's 503
    # No answer in time: it may have run, so it goes nowhere else.
    assert result["slow"] == {"unreachable": "timeout", **UNREACHABLE, "hits": {"/slow": 1}}
    assert result["bug"] == {"rasa_exception": "RasaException", "hits": {"/bug": 1}}


def test_a_fallback_that_may_have_run_the_call_ends_the_tries() -> None:
    result = _run(["slow", "ok"])
    assert result["closed"] == {"unreachable": "timeout", **UNREACHABLE, "hits": {"/slow": 1}}
