"""What the gateway's routes share: one :class:`GatewayState` per app, built by ``create_app``.

The state also owns the fail-closed use of its stores (offers, revocations): a store error becomes a
clear 503 for the visitor, never a 500 and never a silent pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Engine

from tandem.db.engine import create_engine_from_settings
from tandem.gateway.errors import store_unavailable
from tandem.gateway.messages import history_from_tracker
from tandem.gateway.metrics import GatewayMetrics
from tandem.gateway.offers import OfferStore
from tandem.gateway.ratelimit import RateLimits
from tandem.gateway.readiness import Check
from tandem.gateway.revocations import RevocationStore
from tandem.gateway.sessions import Session, SessionCodec
from tandem.gateway.turns import TurnStore
from tandem.gateway.upstream import RasaClient
from tandem.runtime import Infrastructure
from tandem.settings import DatabaseSettings, GatewaySettings, InputSettings

if TYPE_CHECKING:
    from tandem.gateway.desk import Desk


@dataclass
class GatewayState:
    """Everything the routes share; one per app, built by :func:`tandem.gateway.app.create_app`."""

    settings: GatewaySettings
    database: DatabaseSettings
    input: InputSettings
    codec: SessionCodec
    limits: RateLimits
    offers: OfferStore
    revocations: RevocationStore
    turns: TurnStore
    rasa: RasaClient
    metrics: GatewayMetrics
    http: httpx.AsyncClient
    owns_http: bool
    infra: Infrastructure
    log: logging.Logger
    engine: Engine | None = None
    readiness_checks: dict[str, Check] = field(default_factory=dict)
    # Who has each conversation, the bot or a person (set by create_app; None in bare tests).
    desk: Desk | None = None

    def database_engine(self) -> Engine:
        # Built on first use so that creating the app touches nothing (and a stopped database
        # only fails /readyz).
        if self.engine is None:
            self.engine = create_engine_from_settings(self.database, pool_pre_ping=True)
        return self.engine

    def observe_turn(self, elapsed: float, **fields: Any) -> None:
        """A turn's latency metric and its log line: lengths, kinds and outcome, never the text."""
        self.metrics.turn_latency.observe(elapsed)
        self.log.info("turn", extra={"event": "turn", **fields, "upstream_ms": round(elapsed * 1000, 1)})

    async def offered(self, conversation: str) -> set[str]:
        """The payloads the bot offered in its last turn of ``conversation`` (what a button may send)."""
        try:
            offered = await self.offers.get(conversation)
        except Exception as exc:  # Redis errors of any kind: fail closed with a clear message
            raise store_unavailable() from exc
        if offered is None:
            # Nothing recorded (in-process store after a restart, or expired): Rasa's tracker knows.
            _, offered = history_from_tracker(await self.rasa.tracker(conversation))
            await self.remember(conversation, offered)
        return offered

    async def remember(self, conversation: str, offered: set[str]) -> None:
        """Record the payloads the bot just offered in ``conversation``."""
        try:
            await self.offers.set(conversation, offered)
        except Exception as exc:  # Redis errors of any kind
            raise store_unavailable() from exc

    async def revoke(self, session: Session) -> None:
        """Revoke ``session``'s token for the rest of its lifetime."""
        try:
            await self.revocations.revoke(session.session_id, expires_at=session.expires_at)
        except Exception as exc:  # Redis errors of any kind: say so rather than pretend it is revoked
            raise store_unavailable("revocation_store") from exc
