"""Identifiers found in a sentence: the 6-character booking reference and the flight number."""

from __future__ import annotations

import re

from tandem.errors import Invalid

from ._text import _clean

# --------------------------------------------------------------------------- booking reference

_EMAIL_FIND = re.compile(r"[A-Za-z0-9._%+'\-]+@[A-Za-z0-9.\-]+")
_REF_CANDIDATE = re.compile(r"(?<![A-Za-z0-9@._\-])([A-Za-z0-9]{6})(?![A-Za-z0-9@\-]|\.[A-Za-z0-9])")
_SPACED_REF = re.compile(r"^[A-Za-z0-9]{1,6}(?:[\s\-][A-Za-z0-9]{1,5})+$")


def _is_ref(token: str, flight_prefix: str) -> bool:
    upper = token.upper()
    return (
        len(token) == 6
        and token.isascii()
        and token.isalnum()
        and any(c.isalpha() for c in token)
        and any(c.isdigit() for c in token)
        and not (upper.startswith(flight_prefix) and upper[len(flight_prefix) :].isdigit())
    )


def parse_booking_ref(text: str, *, flight_prefix: str) -> str:
    """Return the 6-character booking reference (letters and digits, upper case) in the text.

    "my ref is ab12cd" and "AB12CD." work; "ab 12 cd" works when that is the whole answer.
    Flight numbers (``flight_prefix`` + digits, FLIGHT_NUMBER_PREFIX) and parts of e-mail
    addresses are never taken.

    Raises:
        Invalid: ``invalid_booking_ref`` when there is none, or more than one.
    """
    cleaned = _clean(text).strip(" .,!?;:\"'()[]")
    if _SPACED_REF.match(cleaned):
        joined = re.sub(r"[\s\-]", "", cleaned)
        if _is_ref(joined, flight_prefix):
            return joined.upper()
    without_emails = _EMAIL_FIND.sub(" ", cleaned)
    candidates: set[str] = {m.upper() for m in _REF_CANDIDATE.findall(without_emails) if _is_ref(m, flight_prefix)}
    if len(candidates) == 1:
        return candidates.pop()
    message = (
        "I found more than one booking reference; which one is it?"
        if candidates
        else "A booking reference has 6 letters and digits, like AB12CD."
    )
    raise Invalid(message, reason="invalid_booking_ref")


# --------------------------------------------------------------------------- flight number

_FLIGHT_WORD = re.compile(r"\bFLIGHT\s*(?:NO\.?|NUMBER|NR\.?|#)?\s*#?\s*(\d{2,4})(?![\d])")
_BARE_NUMBER = re.compile(r"^(?:NO\.?|NUMBER|#)?\s*#?\s*(\d{2,4})$")


def parse_flight_number(text: str, *, prefix: str) -> str:
    """Return one of our flight numbers as ``prefix`` + 2–4 digits ("AN 204" -> "AN204" for ``AN``,
    FLIGHT_NUMBER_PREFIX).

    Accepts "AN 204", "an204", "AN-204", "flight AN204", "flight 204" and "204" alone.

    Raises:
        Invalid: ``invalid_flight_number`` when there is none, or more than one.
    """
    cleaned = _clean(text, limit=200).upper().strip(" .,!?;:\"'()[]")
    with_prefix = re.compile(rf"(?<![A-Z0-9]){re.escape(prefix)}\s*[\s\-#]?\s*(\d{{2,4}})(?![\d])")
    found = set(with_prefix.findall(cleaned)) or set(_FLIGHT_WORD.findall(cleaned))
    if not found:
        bare = _BARE_NUMBER.match(cleaned)
        if bare:
            found = {bare.group(1)}
    if len(found) == 1:
        digits = found.pop()
        if digits.isascii():
            return f"{prefix}{digits}"
    raise Invalid(f"Our flight numbers look like {prefix}204.", reason="invalid_flight_number")
