"""Password reset: hashed single-use tokens, no account enumeration, rate limits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from tandem.clock import utc_now
from tandem.db.models import PasswordResetOutbox
from tandem.errors import Invalid, RateLimited
from tandem.ratelimit import InMemoryRateLimiter
from tandem.services.accounts import consume_reset_token, request_password_reset

if TYPE_CHECKING:
    from tests.conftest import Db


@dataclass
class CapturingMailer:
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send_reset(self, *, email: str, token: str) -> None:
        self.sent.append((email, token))


def _request(
    db: Db,
    email: str,
    *,
    limiter: InMemoryRateLimiter,
    mailer: CapturingMailer | None = None,
    conversation_id: str = "conv",
    now: datetime | None = None,
) -> None:
    with db.sessions.begin() as s:
        request_password_reset(
            s,
            email=email,
            conversation_id=conversation_id,
            settings=db.settings.business,
            limiter=limiter,
            now=now or utc_now(),
            mailer=mailer,
        )


def _outbox(db: Db) -> list[PasswordResetOutbox]:
    with db.sessions() as s:
        return list(s.scalars(select(PasswordResetOutbox)))


def test_known_email_gets_a_hashed_token_unknown_gets_nothing_same_reply(db: Db) -> None:
    mailer = CapturingMailer()
    limiter = InMemoryRateLimiter()
    now = utc_now()
    # Both complete the same way (no error, no payload); only the outbox differs.
    _request(db, " John.Smith@Example.com ", limiter=limiter, mailer=mailer, now=now)
    _request(db, "nobody@example.com", limiter=limiter, mailer=mailer, now=now)
    rows = _outbox(db)
    assert len(rows) == 1 and len(mailer.sent) == 1
    email, token = mailer.sent[0]
    assert email == rows[0].email == "john.smith@example.com"
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {rows[0].token_hash, rows[0].email}
    assert len(token) >= 40  # 32 random bytes, URL-safe
    assert rows[0].expires_at == now + timedelta(minutes=db.settings.business.password_reset_ttl_minutes)
    assert rows[0].used_at is None


def test_rate_limit_per_email_applies_to_unknown_addresses_too(db: Db) -> None:
    limiter = InMemoryRateLimiter()
    limit = db.settings.business.password_reset_limit_per_email
    for address in ("john.smith@example.com", "nobody@example.com"):
        for i in range(limit):
            _request(db, address, limiter=limiter, conversation_id=f"{address}-{i}")
        with pytest.raises(RateLimited):
            _request(db, address, limiter=limiter, conversation_id="fresh")
    assert len(_outbox(db)) == limit  # only the known address produced tokens


def test_rate_limit_per_conversation(db: Db) -> None:
    limiter = InMemoryRateLimiter()
    for i in range(db.settings.business.password_reset_limit_per_conversation):
        _request(db, f"user{i}@example.com", limiter=limiter, conversation_id="same")
    with pytest.raises(RateLimited):
        _request(db, "another@example.com", limiter=limiter, conversation_id="same")


def test_malformed_email_is_invalid(db: Db) -> None:
    with pytest.raises(Invalid) as err:
        _request(db, "not an email", limiter=InMemoryRateLimiter())
    assert err.value.reason == "email"


def test_token_is_single_use(db: Db) -> None:
    mailer = CapturingMailer()
    now = utc_now()
    _request(db, "yuki.tanaka@example.com", limiter=InMemoryRateLimiter(), mailer=mailer, now=now)
    token = mailer.sent[0][1]
    with db.sessions.begin() as s:
        assert consume_reset_token(s, token=token, now=now + timedelta(minutes=1)) == "yuki.tanaka@example.com"
    with pytest.raises(Invalid) as err, db.sessions.begin() as s:
        consume_reset_token(s, token=token, now=now + timedelta(minutes=2))
    assert err.value.reason == "token"
    assert _outbox(db)[0].used_at == now + timedelta(minutes=1)


def test_token_expires_and_unknown_tokens_fail(db: Db) -> None:
    mailer = CapturingMailer()
    now = utc_now()
    _request(db, "yuki.tanaka@example.com", limiter=InMemoryRateLimiter(), mailer=mailer, now=now)
    token = mailer.sent[0][1]
    expiry = now + timedelta(minutes=db.settings.business.password_reset_ttl_minutes)
    for candidate, at in ((token, expiry), ("forged-token", now)):
        with pytest.raises(Invalid), db.sessions.begin() as s:
            consume_reset_token(s, token=candidate, now=at)
    assert _outbox(db)[0].used_at is None
