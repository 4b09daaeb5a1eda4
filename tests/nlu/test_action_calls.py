"""tandem_rasa/action_calls.py inside Rasa's own environment, against real HTTP servers: an action
server that cannot be reached (closed port, 503, no answer in time) fails the turn with
ActionServerUnreachable, which Rasa's processor does not catch (not an Exception); a reachable
server's own failure (HTTP 500) keeps Rasa's RasaException; a good answer is unchanged."""

from __future__ import annotations

import json
import subprocess
import textwrap

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, socket, threading, time
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

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/webhook"

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
        action_calls.install()
        action_calls.install()  # twice: wrapped once
        with mock.patch.object(action_module, "DEFAULT_REQUEST_TIMEOUT", 1):
            for name, url in [
                ("closed", closed), ("busy", base + "/busy"), ("bug", base + "/bug"),
                ("ok", base + "/ok"), ("slow", base + "/slow"),
            ]:
                results[name] = await outcome(url)
        return results

    print(json.dumps(asyncio.run(main())))
    """
)


def test_an_unreachable_action_server_fails_the_turn_and_a_buggy_one_does_not() -> None:
    run = subprocess.run([str(PYTHON), "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    # Rasa's own behaviour, which its processor catches (and carries on without the action).
    assert result["before"] == {"rasa_exception": "RasaException"}
    assert result["closed"] == {"unreachable": "connection", "is_exception": False}
    assert result["busy"] == {"unreachable": "HTTP 503", "is_exception": False}
    assert result["slow"] == {"unreachable": "timeout", "is_exception": False}
    assert result["bug"] == {"rasa_exception": "RasaException"}
    assert result["ok"] == {"events": ["BotUttered", "SlotSet"]}
