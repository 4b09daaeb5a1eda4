"""The one input channel of the Rasa server: the gateway's, authenticated by a shared token.

Rasa's own REST channel trusts whoever reaches its port: the ``sender`` (any conversation) and the
``metadata`` (which the action server uses for limits per client) are the caller's to choose. Every
door (website, Slack, Telegram) ends in the gateway, which verifies its callers and then posts here:

    POST /webhooks/gateway/webhook
    Authorization: Bearer <RASA_API_TOKEN>
    {"sender": "<conversation id>", "message": "<text>",
     "metadata": {"channel": "website", "client": "<opaque key>", "correlation_id": "<turn id>",
                  "traceparent": "00-<trace id>-<span id>-<flags>"}}

and gets the bot's messages as a JSON list, like the REST channel; a turn that fails (the tracker
store, the lock store or the action server unreachable) answers ``500 {"error": "turn_failed"}``
and saves nothing, where the REST channel would answer 200 with whatever was said before the
failure (tandem_rasa/failures.py). Without the token (compared in
constant time) the answer is 401 and nothing runs. The metadata is reduced to the known keys with
short printable string values (:func:`tandem.conversation.metadata.clean_metadata`, which the
actions read it with too), so the tracker never stores what a caller invents. The W3C trace context
(``traceparent``, ``tracestate``) is kept only when well formed: Rasa 3.6 has no tracing of its
own, it hands the metadata on unchanged to the action server, which continues the gateway's trace.

``credentials.yml``::

    tandem_rasa.channel.GatewayInput:
      token: ${RASA_API_TOKEN}
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from tandem.conversation.metadata import clean_metadata
from tandem_rasa import action_calls, speedups
from tandem_rasa.failures import TurnFailed

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # a backstop: the gateway caps messages far lower
MAX_SENDER_CHARS = 128
MAX_MESSAGE_CHARS = 20_000
MIN_TOKEN_CHARS = 16
# The answer to a turn that did not finish: nothing of it was saved, the gateway may let the
# customer send it again (tandem/gateway/upstream.py: 503 turn_failed).
TURN_FAILED = "turn_failed"


def _error(status: int, code: str) -> HTTPResponse:
    return response.json({"error": code}, status=status)


def authorized(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    expected = f"Bearer {token}".encode()
    return hmac.compare_digest((header or "").encode("utf-8", "replace"), expected)


class GatewayInput(InputChannel):
    """``/webhooks/gateway/webhook``: turns from the gateway only (bearer token)."""

    def __init__(self, token: str) -> None:
        if not token or len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the gateway channel needs a token of {MIN_TOKEN_CHARS}+ characters (RASA_API_TOKEN)")
        self._token = token

    @classmethod
    def name(cls) -> str:
        return "gateway"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> GatewayInput:
        # Rasa builds its channels once at start: the moment to install the speed-ups of
        # tandem_rasa/speedups.py (work Rasa repeats on every action call, done once).
        speedups.install()
        action_calls.install(action_calls.fallback_urls(os.environ))
        return cls(str((credentials or {}).get("token") or ""))

    def parse(self, request: Request) -> dict[str, Any] | None:
        """The turn's fields, or None when the body is not the expected shape."""
        if len(request.body or b"") > MAX_BODY_BYTES:
            return None
        try:
            body = json.loads(request.body or b"")
        except (ValueError, RecursionError):  # ValueError covers huge integers too
            return None
        if not isinstance(body, dict):
            return None
        sender, message = body.get("sender"), body.get("message")
        if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS or not sender.isprintable():
            return None
        if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
            return None
        metadata = clean_metadata(body.get("metadata"))
        return {"sender": sender, "message": message, "metadata": metadata}

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("tandem_gateway_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            if not authorized(request.headers.get("authorization"), self._token):
                return _error(401, "unauthorized")
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not authorized(request.headers.get("authorization"), self._token):
                return _error(401, "unauthorized")
            turn = self.parse(request)
            if turn is None:
                return _error(400, "invalid_request")
            metadata = turn["metadata"]
            collector = CollectingOutputChannel()
            try:
                await on_new_message(
                    UserMessage(
                        turn["message"],
                        collector,
                        turn["sender"],
                        input_channel=metadata.get("channel", self.name()),
                        metadata=metadata,
                    )
                )
            except CancelledError:
                # The text is not logged: it may hold personal data.
                logger.error("gateway turn timed out (correlation_id=%s)", metadata.get("correlation_id"))
                return _error(500, TURN_FAILED)
            except TurnFailed as error:
                logger.error(
                    "gateway turn failed unsaved: %s (correlation_id=%s)", error, metadata.get("correlation_id")
                )
                return _error(500, TURN_FAILED)
            except Exception:
                # The tracker store, the lock store or the NLU failed: the turn's events were not
                # saved (Rasa saves them at the end, in one transaction). Rasa's REST channel would
                # answer 200 with the messages collected so far: a reply the history never holds.
                logger.exception("gateway turn failed (correlation_id=%s)", metadata.get("correlation_id"))
                return _error(500, TURN_FAILED)
            return response.json(collector.messages)

        return webhook
