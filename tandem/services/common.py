"""Small helpers shared by the services: strict checks, matching keys, time zones, locks.

The ``require_*`` functions check a value that should already be canonical (a tool argument, a
service parameter) and raise ``Invalid`` when it is not; they do not search free text. Reading
what a customer typed ("my email is ...", "flight 204") is the action layer's job:
the ``parse_*`` functions of :mod:`tandem.normalize`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, Result, text
from sqlalchemy.orm import Session

from tandem.errors import Invalid

CABINS = ("economy", "business")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")


def to_local(moment: datetime, tz: str) -> datetime:
    """An aware instant shown in the airline's time zone."""
    return moment.astimezone(ZoneInfo(tz))


def require_email(email: str) -> str:
    """Lower-cased, trimmed, and syntactically plausible; else ``Invalid(reason="email")``."""
    value = email.strip().lower()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise Invalid("not a valid e-mail address", reason="email")
    return value


def normalize_name_for_match(name: str) -> str:
    """Case-, accent- and whitespace-insensitive form of a name: " Müller" and "MULLER" match."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(stripped.casefold().split())


def require_last_name(name: str) -> str:
    """A last name as stored: trimmed, inner whitespace collapsed, 1..80 characters."""
    value = " ".join(name.split())
    if not value or len(value) > 80:
        raise Invalid("last name must be 1 to 80 characters", reason="last_name")
    return value


def normalize_reference(reference: str) -> str:
    return "".join(reference.split()).upper()


def require_flight_number(flight_number: str, *, prefix: str) -> str:
    """``"an 204"`` -> ``"AN204"`` for the prefix ``AN`` (FLIGHT_NUMBER_PREFIX); Invalid when it is
    not the prefix and 2-4 digits."""
    value = "".join(flight_number.split()).upper()
    if not re.fullmatch(re.escape(prefix) + r"[0-9]{2,4}", value):
        raise Invalid(f"not one of our flight numbers ({prefix} and 2 to 4 digits)", reason="flight_number")
    return value


def require_cabin(cabin: str) -> str:
    if cabin not in CABINS:
        raise Invalid("cabin must be economy or business", reason="cabin")
    return cabin


def require_passengers(passengers: int, maximum: int) -> int:
    if isinstance(passengers, bool) or not 1 <= passengers <= maximum:
        raise Invalid(f"passengers must be between 1 and {maximum}", reason="passengers")
    return passengers


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE (``Session.execute`` is typed as returning a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


def require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")


def serialize_on(session: Session, *keys: str) -> None:
    """Make transactions that name the same key wait for each other, until this one ends.

    For check-then-write limits ("at most N open holds per e-mail"): without it two concurrent
    transactions both count N-1 and both write. PostgreSQL takes a transaction-level advisory
    lock per key (a 64-bit hash), in sorted order so that callers with overlapping keys cannot
    deadlock. SQLite has one writer at a time, but the driver starts the transaction only at the
    first write, so a count read before it is not protected: a no-op write on the one row that
    always exists (``alembic_version``) takes the database's write lock first, and everything
    after it is serialised (embedded mode, one process: the cost is nil).
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE alembic_version SET version_num = version_num"))
        return
    for key in sorted(set(keys)):
        digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"tandem-lock").digest()
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int.from_bytes(digest, "big", signed=True)})
