"""Account help: password reset through a single-use, expiring token.

Only the SHA-256 of a token is stored (``password_reset_outbox.token_hash``); the token itself
goes to the customer through a :class:`ResetMailer` and is never written anywhere else. Whether an
e-mail belongs to a customer is never revealed: known and unknown addresses get the same return,
the same errors and the same rate limits.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tandem.db.models import Customer, PasswordResetOutbox
from tandem.errors import Invalid, RateLimited
from tandem.ratelimit import RateLimiter
from tandem.services.common import require_aware, require_email, rowcount
from tandem.settings import BusinessSettings

log = logging.getLogger(__name__)


class ResetMailer(Protocol):
    def send_reset(self, *, email: str, token: str) -> None:
        """Deliver the reset link containing ``token`` to ``email`` (after the commit, ideally)."""
        ...


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token, as stored. Tokens are 256-bit random, so no salt or KDF is needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def email_key(email: str) -> str:
    """A rate-limit key for an e-mail that does not put the address itself into Redis."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:32]


def request_password_reset(
    session: Session,
    *,
    email: str,
    conversation_id: str,
    settings: BusinessSettings,
    limiter: RateLimiter,
    now: datetime,
    mailer: ResetMailer | None = None,
) -> None:
    """Start a password reset for ``email`` if it belongs to a customer; say nothing either way.

    Rate limited per e-mail (``PASSWORD_RESET_LIMIT_PER_EMAIL``) and per conversation
    (``PASSWORD_RESET_LIMIT_PER_CONVERSATION``) in ``PASSWORD_RESET_WINDOW_SECONDS``, counted for
    unknown addresses too: ``RateLimited``. A malformed address is ``Invalid(reason="email")``
    (that reveals nothing about customers). For a known customer a token hash with expiry is
    written to the outbox and the raw token handed to ``mailer``.
    """
    require_aware(now)
    address = require_email(email)
    window = settings.password_reset_window_seconds
    per_conversation = limiter.hit(
        f"pwreset:conv:{conversation_id}",
        limit=settings.password_reset_limit_per_conversation,
        window_seconds=window,
    )
    per_email = limiter.hit(
        f"pwreset:email:{email_key(address)}",
        limit=settings.password_reset_limit_per_email,
        window_seconds=window,
    )
    if not (per_conversation and per_email):
        raise RateLimited("too many password reset requests", retry_after_seconds=window)

    # Made for every request, so both paths do the same work up to the insert.
    token = secrets.token_urlsafe(32)
    token_hash = hash_token(token)
    customer_id = session.scalar(select(Customer.id).where(Customer.email == address))
    if customer_id is None:
        return
    session.add(
        PasswordResetOutbox(
            email=address,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + timedelta(minutes=settings.password_reset_ttl_minutes),
        )
    )
    session.flush()
    if mailer is not None:
        mailer.send_reset(email=address, token=token)
    else:
        log.info("password reset token written to the outbox; no mailer configured")


def consume_reset_token(session: Session, *, token: str, now: datetime) -> str:
    """Use a reset token once; returns the e-mail it was issued for.

    The check and the marking are one conditional UPDATE, so two concurrent uses cannot both
    succeed. Unknown, expired and already used tokens all raise ``Invalid(reason="token")``.
    """
    require_aware(now)
    token_hash = hash_token(token)
    used = session.execute(
        update(PasswordResetOutbox)
        .where(
            PasswordResetOutbox.token_hash == token_hash,
            PasswordResetOutbox.used_at.is_(None),
            PasswordResetOutbox.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(used) != 1:
        raise Invalid("this reset link is invalid or has expired", reason="token")
    email = session.scalar(select(PasswordResetOutbox.email).where(PasswordResetOutbox.token_hash == token_hash))
    assert email is not None  # the row was just updated in this transaction
    return email
