"""What the handoff tests share: the gateway's database, agents, a logged-in console client, tickets.

The fake Rasa's ``on_handoff`` hook opens the ticket in the gateway's own database the way
``action_handoff`` does (through :func:`tandem.services.handoff.create_handoff`), so the desk
finds a real ticket when the bot's marker announces it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from argon2 import PasswordHasher
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from tandem.clock import utc_now
from tandem.ratelimit import InMemoryRateLimiter
from tandem.services import agents, handoff
from tandem.settings import BusinessSettings, GatewayAppSettings

PASSWORD = "correct horse battery staple"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class DeskDb:
    engine: Engine
    sessions: sessionmaker[Session]

    def add_agent(self, email: str = "ploy@andaman.example", name: str = "Ploy", role: str = "agent") -> int:
        with self.sessions.begin() as session:
            return agents.add_agent(
                session, email=email, display_name=name, password=PASSWORD, role=role, now=utc_now(), hasher=FAST
            ).id

    def open_ticket(self, conversation_id: str, *, channel: str = "website", reason: str = "user_request") -> int:
        """A handoff ticket as action_handoff opens it: reason, transcript, slots, summary."""
        with self.sessions.begin() as session:
            return handoff.create_handoff(
                session,
                conversation_id=conversation_id,
                reason=reason,
                transcript=[
                    {"role": "user", "text": "my bag did not arrive", "at": 1_700_000_000.0, "intent": "out_of_scope"},
                    {"role": "bot", "text": "I'm having trouble helping with this.", "at": 1_700_000_001.0},
                    {"role": "user", "text": "human please", "at": 1_700_000_002.0, "intent": "request_human"},
                ],
                slots={"email": "jane.smith@example.com"},
                summary="reason: user_request; topics: out_of_scope; active form: none",
                now=utc_now(),
                settings=BusinessSettings(_env_file=None),  # type: ignore[call-arg]
                limiter=InMemoryRateLimiter(),
                channel=channel,
            ).ticket_id

    def opener(self, channel: str = "website") -> Callable[[str], int]:
        return lambda sender: self.open_ticket(sender, channel=channel)


def desk_db(settings: GatewayAppSettings) -> DeskDb:
    engine = create_engine(settings.database.database_url)
    return DeskDb(engine, sessionmaker(engine, expire_on_commit=False))


async def login(client: httpx.AsyncClient, email: str = "ploy@andaman.example") -> str:
    """Log ``client`` in to the console; the CSRF token (the cookie stays in the client)."""
    response = await client.post("/agent/api/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def csrf(token: str) -> dict[str, Any]:
    return {"X-CSRF-Token": token}
