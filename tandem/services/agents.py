"""The support team's accounts for the agent console: argon2id passwords and hashed session tokens.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults); the rules are NIST SP 800-63B's:
a length of 12 to 1024 characters and nothing else (no composition rules, which only make people
pick worse passwords). Whether an e-mail belongs to an agent is not revealed by a login: unknown
and disabled addresses verify against a dummy hash made with the same parameters, so they cost
as long as a wrong password. A console session is a 256-bit random token given to the browser;
only its SHA-256 is stored (like the reset tokens of :mod:`tandem.services.accounts`), so a
leaked table logs nobody in. Nothing here logs an e-mail, a password, a hash or a token.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tandem.clock import utc_now
from tandem.db.models import AGENT_ROLES, Agent, AgentSession
from tandem.errors import Conflict, Invalid
from tandem.services.common import require_aware, require_email, rowcount

log = logging.getLogger(__name__)

PASSWORD_MIN_CHARS = 12
# Long enough for any passphrase or manager-generated secret, short enough that hashing stays cheap.
PASSWORD_MAX_CHARS = 1024
DISPLAY_NAME_MAX_CHARS = 64
# ``secrets.token_urlsafe(32)`` is 43 characters; anything much longer is not one of ours.
TOKEN_MAX_CHARS = 200


@dataclass(frozen=True)
class AgentView:
    """What the console and the desk may know of an agent: never the hash, never the active flag's history."""

    id: int
    email: str
    display_name: str
    role: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "display_name": self.display_name, "role": self.role}


def _view(agent: Agent) -> AgentView:
    return AgentView(id=agent.id, email=agent.email, display_name=agent.display_name, role=agent.role)


def password_hasher() -> PasswordHasher:
    """The production hasher: argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile).

    Tests pass a cheaper one as ``hasher=``; hashes record their own parameters, so a hash made
    with other parameters still verifies, and :func:`authenticate` upgrades it on the next login.
    """
    return PasswordHasher()


@functools.lru_cache(maxsize=8)
def _dummy_hash(type_: Type, time_cost: int, memory_cost: int, parallelism: int, hash_len: int, salt_len: int) -> str:
    # A hash of a random secret nobody knows, made once per process and parameter set: verifying
    # against it costs what verifying a real agent's hash costs, and can never succeed.
    hasher = PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=hash_len,
        salt_len=salt_len,
        type=type_,
    )
    return hasher.hash(secrets.token_urlsafe(32))


def _burn_time(hasher: PasswordHasher, password: str) -> None:
    """Do the work of a failed verification, for logins that fail before there is a hash to check."""
    dummy = _dummy_hash(
        hasher.type, hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len, hasher.salt_len
    )
    with contextlib.suppress(VerificationError):
        hasher.verify(dummy, password)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a session token, as stored. Tokens are 256-bit random: no salt or KDF needed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def require_display_name(display_name: str) -> str:
    """Trimmed, 1 to 64 printable characters (no control characters or line breaks): customers see it."""
    value = display_name.strip()
    if not value or len(value) > DISPLAY_NAME_MAX_CHARS or not value.isprintable():
        raise Invalid(f"display name must be 1 to {DISPLAY_NAME_MAX_CHARS} printable characters", reason="display_name")
    return value


def require_role(role: str) -> str:
    if role not in AGENT_ROLES:
        raise Invalid("role must be agent or admin", reason="role")
    return role


def require_password(password: str) -> str:
    """12 to 1024 characters, as typed (not trimmed: spaces are characters too); no other rules."""
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise Invalid(f"password must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters", reason="password")
    return password


def add_agent(
    session: Session,
    *,
    email: str,
    display_name: str,
    password: str,
    role: str = "agent",
    now: datetime,
    hasher: PasswordHasher | None = None,
) -> AgentView:
    """Create an active agent; ``Invalid`` (reason ``email``, ``display_name``, ``role``,
    ``password``) for bad input, ``Conflict(reason="agent_exists")`` when the e-mail is taken.

    Everything is checked before the (deliberately slow) hash is computed. The e-mail check and
    the unique constraint both raise the same ``Conflict``: two concurrent adds of one address
    cannot both succeed, and the loser's error does not carry the SQL parameters (the hash).
    """
    require_aware(now)
    address = require_email(email)
    name = require_display_name(display_name)
    require_role(role)
    require_password(password)
    if session.scalar(select(Agent.id).where(Agent.email == address)) is not None:
        raise Conflict("an agent with this e-mail already exists", reason="agent_exists")
    password_hash = (hasher or password_hasher()).hash(password)
    agent = Agent(email=address, display_name=name, role=role, password_hash=password_hash, active=True, created_at=now)
    session.add(agent)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("an agent with this e-mail already exists", reason="agent_exists") from None
    log.info("agent %d added (%s)", agent.id, role)
    return _view(agent)


def authenticate(
    session: Session, *, email: str, password: str, hasher: PasswordHasher | None = None
) -> AgentView | None:
    """The active agent with this e-mail and password, else ``None`` — the same ``None``, after
    the same argon2 work, for an unknown or malformed e-mail, a disabled agent and a wrong password.

    A password outside 12..1024 characters cannot be anyone's and is refused before any hashing
    (that says nothing about the e-mail, and keeps megabyte "passwords" cheap). After a success,
    a hash made with older parameters is replaced by one with the current hasher's.
    """
    ph = hasher or password_hasher()
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        return None
    try:
        address = require_email(email)
    except Invalid:
        _burn_time(ph, password)
        return None
    agent = session.scalar(select(Agent).where(Agent.email == address))
    if agent is None or not agent.active:
        _burn_time(ph, password)
        return None
    try:
        ph.verify(agent.password_hash, password)
    except VerificationError:
        return None
    except InvalidHashError:
        log.warning("agent %d has an unreadable password hash; login refused", agent.id)
        return None
    if ph.check_needs_rehash(agent.password_hash):
        agent.password_hash = ph.hash(password)
        session.flush()
        log.info("agent %d password rehashed with the current parameters", agent.id)
    return _view(agent)


def start_session(session: Session, *, agent_id: int, now: datetime, ttl_seconds: int) -> str:
    """A new console session for ``agent_id`` (after :func:`authenticate`), valid ``ttl_seconds``.

    Returns the token for the cookie; only its SHA-256 is stored.
    """
    require_aware(now)
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    token = secrets.token_urlsafe(32)
    session.add(
        AgentSession(
            token_hash=hash_token(token),
            agent_id=agent_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            revoked_at=None,
        )
    )
    session.flush()
    return token


def _plausible_token(token: str) -> bool:
    # Cheap checks before hashing and querying: whatever a client sends in a cookie gets here.
    return bool(token) and len(token) <= TOKEN_MAX_CHARS and token.isascii()


def session_agent(session: Session, *, token: str, now: datetime) -> AgentView | None:
    """The agent a session token belongs to, or ``None``: unknown, revoked, expired, or the agent
    has been disabled since (disabling takes effect on the next request, not at the next login)."""
    require_aware(now)
    if not _plausible_token(token):
        return None
    agent = session.scalar(
        select(Agent)
        .join(AgentSession, AgentSession.agent_id == Agent.id)
        .where(
            AgentSession.token_hash == hash_token(token),
            AgentSession.revoked_at.is_(None),
            AgentSession.expires_at > now,
            Agent.active.is_(True),
        )
    )
    return None if agent is None else _view(agent)


def end_session(session: Session, *, token: str, now: datetime) -> bool:
    """Log out: revoke the session. ``False`` for an unknown token; ``True`` for a known one, also
    when it was already revoked or expired (logging out twice is not an error; the first
    revocation time is kept)."""
    require_aware(now)
    if not _plausible_token(token):
        return False
    row = session.scalar(select(AgentSession).where(AgentSession.token_hash == hash_token(token)))
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return True


def set_active(session: Session, *, email: str, active: bool, now: datetime | None = None) -> bool:
    """Enable or disable the agent with this e-mail; ``False`` when there is none.

    Disabling also revokes the agent's open sessions (at ``now``, by default the current time), so
    enabling the agent again later does not bring old logins back to life.
    """
    address = require_email(email)
    agent_id = session.scalar(select(Agent.id).where(Agent.email == address))
    if agent_id is None:
        return False
    session.execute(update(Agent).where(Agent.id == agent_id).values(active=active))
    if not active:
        moment = now or utc_now()
        require_aware(moment)
        revoked = session.execute(
            update(AgentSession)
            .where(AgentSession.agent_id == agent_id, AgentSession.revoked_at.is_(None))
            .values(revoked_at=moment)
            .execution_options(synchronize_session=False)
        )
        log.info("agent %d disabled, %d open sessions revoked", agent_id, rowcount(revoked))
    else:
        log.info("agent %d enabled", agent_id)
    return True
