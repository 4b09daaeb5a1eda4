"""A local OpenAI-compatible test server: real HTTP on 127.0.0.1, scripted per test.

Each test sets ``server.script`` to a list of :class:`Step`; request N gets step N (the last step
repeats). A test may instead set ``server.responder``, a function from the request body to the
:class:`Step` to answer with (the obedient model of tests/security computes its replies from what
it was sent). Every request body is recorded in ``server.requests`` so tests can assert what
reached the "vendor".
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Step:
    """One scripted reply: HTTP status, message content, delay before replying, usage."""

    content: str | None = None
    status: int = 200
    delay: float = 0.0
    prompt_tokens: int = 500
    completion_tokens: int = 40
    headers: dict[str, str] = field(default_factory=dict)
    # OpenAI-style tool calls in the assistant message (the chain offers no tools: it must ignore them).
    tool_calls: list[dict[str, Any]] | None = None


def reply(**fields: Any) -> str:
    """The JSON contract with defaults, as the model would write it."""
    data: dict[str, Any] = {"intent": None, "answer": None, "confidence": 0.9, "handoff": False, "sources": []}
    data.update(fields)
    return json.dumps(data)


class FakeLlmServer:
    """uvicorn in a background thread on a free port."""

    def __init__(self) -> None:
        self.script: list[Step] = [Step(content=reply())]
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.responder: Callable[[dict[str, Any]], Step] | None = None
        self.port = _free_port()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> JSONResponse:
            body = await request.json()
            index = len(self.requests)
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            scripted = self.script[min(index, len(self.script) - 1)]
            step = self.responder(body) if self.responder is not None else scripted
            if step.delay:
                await asyncio.sleep(step.delay)
            if step.status != 200:
                return JSONResponse(
                    {"error": {"message": f"scripted {step.status}", "type": "scripted", "code": None}},
                    status_code=step.status,
                    headers=step.headers,
                )
            return JSONResponse(
                {
                    "id": f"chatcmpl-{index}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "test"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": step.content}
                            | ({"tool_calls": step.tool_calls} if step.tool_calls else {}),
                            "finish_reason": "tool_calls" if step.tool_calls else "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": step.prompt_tokens,
                        "completion_tokens": step.completion_tokens,
                        "total_tokens": step.prompt_tokens + step.completion_tokens,
                    },
                },
                headers=step.headers,
            )

        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def reset(self, *steps: Step) -> None:
        self.script = list(steps) or [Step(content=reply())]
        self.responder = None
        self.requests.clear()
        self.headers.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
