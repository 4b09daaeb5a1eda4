"""The audit log: one row per tool call, with personal data masked before it is stored.

Free-text values go through the guard's model-free detection (:mod:`tandem.guard.patterns`:
e-mails, phones, payment cards, passports), so the audit log and the LLM guard agree on what
is personal; e-mails keep a readable hint (``j***@e***.com``) for the operators.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tandem.db.models import AuditLog
from tandem.guard.patterns import mask_patterns
from tandem.services.common import require_aware

# Argument names whose values are personal; matched case-insensitively.
NAME_KEYS = frozenset({"last_name", "first_name", "name", "lastname", "surname"})
SECRET_KEYS = frozenset({"token", "password"})
EMAIL_KEYS = frozenset({"email", "contact", "contact_email"})
MAX_STRING = 500


def mask_email(email: str) -> str:
    """``john.smith@example.com`` -> ``j***@e***.com``."""
    local, _, domain = email.partition("@")
    head, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{head[:1]}***.{tld}" if head else f"{local[:1]}***@***"


def mask_name(name: str) -> str:
    """``Smith`` -> ``S***``."""
    name = name.strip()
    return f"{name[:1]}***" if name else ""


def _placeholder(label: str, value: str) -> str:
    return mask_email(value) if label == "EMAIL" else f"[{label}]"


def mask_arguments(value: Any, *, key: str | None = None) -> Any:
    """A JSON-safe copy of tool arguments with e-mails, names and secrets masked (recursively)."""
    lowered = key.lower() if key else None
    if isinstance(value, dict):
        return {str(k): mask_arguments(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_arguments(v, key=key) for v in value]
    if lowered in SECRET_KEYS and value is not None:
        return "***"
    if isinstance(value, str):
        if lowered in NAME_KEYS:
            return mask_name(value)
        if lowered in EMAIL_KEYS:
            return mask_email(value.strip()) if "@" in value else mask_name(value)
        masked = mask_patterns(value, _placeholder).text
        return masked if len(masked) <= MAX_STRING else masked[:MAX_STRING] + "..."
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def record(
    session: Session,
    *,
    actor: str,
    role: str,
    tool: str,
    arguments: dict[str, Any],
    outcome: str,
    duration_ms: int,
    at: datetime,
    channel: str | None = None,
    correlation_id: str | None = None,
) -> int:
    """Write one audit row; ``arguments`` are masked here, so callers pass them as received.

    ``channel`` and ``correlation_id`` say where the call came from (the caller's channel, the
    gateway's turn id); None when unknown (scripts, tests, rows written outside a turn).
    """
    require_aware(at)
    row = AuditLog(
        at=at,
        actor=actor[:128],
        role=role[:16],
        tool=tool[:64],
        arguments=mask_arguments(arguments),
        outcome=outcome[:64],
        duration_ms=max(0, duration_ms),
        channel=channel[:32] if channel else None,
        correlation_id=correlation_id[:64] if correlation_id else None,
    )
    session.add(row)
    session.flush()
    return row.id
