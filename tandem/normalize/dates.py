"""Travel dates: absolute, relative and ordinal dates, checked against the booking window.

``dateparser`` is slow to import and to initialise, so it is imported lazily inside
:func:`_dateparser_date`, and only when the cheap hand-written rules did not recognise
the date.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta

from tandem.errors import Invalid

from ._text import _WHITESPACE, _clean, _words_to_digits

_MONTHS: dict[str, int] = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ORDINAL_UNITS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
_ORDINAL_TEENS = (
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
)
#: "first" -> 1 ... "thirty-first" -> 31 (days of the month written as words).
_ORDINAL_DAY_WORDS: dict[str, int] = {
    **{word: i + 1 for i, word in enumerate(_ORDINAL_UNITS)},
    **{word: i + 10 for i, word in enumerate(_ORDINAL_TEENS)},
    "twentieth": 20,
    "thirtieth": 30,
    **{f"twenty{sep}{word}": 21 + i for i, word in enumerate(_ORDINAL_UNITS) for sep in (" ", "-", "")},
    "thirty first": 31,
    "thirty-first": 31,
    "thirtyfirst": 31,
}
_ORDINAL_DAY_WORDS_PATTERN = re.compile(r"\b(" + "|".join(sorted(_ORDINAL_DAY_WORDS, key=len, reverse=True)) + r")\b")
_WEEKDAYS: dict[str, int] = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
_WEEKDAY_RE = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))

_DATE_FILLER = re.compile(
    r"\b(?:please|pls|plz|thanks|thank you|i(?:'d| would)? (?:want|like|wanna|need|plan|hope)"
    r"(?: to)?(?: (?:leave|fly|go|travel|depart|return|come back))?|i'm (?:leaving|flying|going)"
    r"|leaving|departing|flying|going|travel(?:l?ing)?|depart(?:ure)?(?: date)?|date|"
    r"on|around|about|for|maybe|probably|ideally|um+|uh+)\b"
)
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_NUMERIC_DMY = re.compile(r"(?<![\d/.\-:])(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?![\d/.\-:])")
_NUMERIC_DM = re.compile(r"(?<![\d/.\-:])(\d{1,2})[/.\-](\d{1,2})(?![\d/.\-:])")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s*(?:of\s+)?({_MONTH_RE})\b\.?,?(?:\s*(\d{{4}})\b)?")
_MONTH_DAY = re.compile(rf"\b({_MONTH_RE})\.?\s+(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\b,?(?:\s*(\d{{4}})\b)?")
_ORDINAL_DAY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b")
_IN_DELTA = re.compile(r"\bin\s+(a couple of|a|an|\d{1,3})\s+(day|week|month)s?\b")
_WEEKDAY = re.compile(rf"\b(?:(this|next|coming|this coming|last|past)\s+)?({_WEEKDAY_RE})\b")


def _year(token: str | None) -> int | None:
    """A four- or two-digit year; Thai Buddhist-era years (2400+) are converted."""
    if not token:
        return None
    value = int(token)
    if value < 100:
        value += 2000
    if value >= 2400:
        value -= 543
    return value


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_day_month(day: int, month: int, today: date) -> date | None:
    """The next occurrence (today or later) of day/month; None if it never exists."""
    for year in range(today.year, today.year + 9):  # 29 February needs up to 8 years
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _next_day_of_month(day: int, today: date) -> date | None:
    """The next date (today or later) whose day of month is ``day``."""
    if not 1 <= day <= 31:
        return None
    year, month = today.year, today.month
    for _ in range(13):
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None


def _add_months(start: date, months: int) -> date:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _day_month_year(day: int, month: int, year: int | None, today: date) -> date | None:
    if year is None:
        return _next_day_month(day, month, today)
    return _safe_date(year, month, day)


def _rule_based_date(text: str, today: date) -> date | None:
    """Dates our own rules understand (fast and deterministic); None when none matched."""
    match = _ISO_DATE.search(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return _safe_date(year - 543 if year >= 2400 else year, month, day)

    match = _NUMERIC_DMY.search(text)
    if match:
        first, second, full_year = int(match.group(1)), int(match.group(2)), _year(match.group(3))
        return _day_month_year(first, second, full_year, today) or _day_month_year(second, first, full_year, today)

    match = _DAY_MONTH.search(text)
    if match:
        return _day_month_year(int(match.group(1)), _MONTHS[match.group(2)], _year(match.group(3)), today)

    match = _MONTH_DAY.search(text)
    if match:
        return _day_month_year(int(match.group(2)), _MONTHS[match.group(1)], _year(match.group(3)), today)

    match = _NUMERIC_DM.search(text)
    if match:
        first, second = int(match.group(1)), int(match.group(2))
        # Day first (Thai/British); "1/25" can only be month first.
        return _next_day_month(first, second, today) or _next_day_month(second, first, today)

    if re.search(r"\b(?:the\s+)?day\s+after\s+tomorrow\b|\bovermorrow\b", text):
        return today + timedelta(days=2)
    if re.search(r"\b(?:the\s+)?day\s+before\s+yesterday\b", text):
        return today - timedelta(days=2)
    if re.search(r"\b(?:tomorrow|tmrw?|tomorow|tommorow|tommorrow)\b", text):
        return today + timedelta(days=1)
    if re.search(r"\byesterday\b", text):
        return today - timedelta(days=1)
    if re.search(r"\b(?:today|tonight|this (?:morning|afternoon|evening)|now|asap)\b", text):
        return today

    match = re.search(r"\b(this|next|the|coming)?\s*weekend\b", text)
    if match:
        days_to_saturday = (5 - today.weekday()) % 7
        if today.weekday() == 6:  # on Sunday "this weekend" is today
            days_to_saturday = 0
        coming = today + timedelta(days=days_to_saturday)
        return coming + timedelta(days=7) if match.group(1) == "next" else coming

    match = _IN_DELTA.search(_words_to_digits(text))
    if match:
        amount_text, unit = match.groups()
        amount = 2 if amount_text == "a couple of" else 1 if amount_text in ("a", "an") else int(amount_text)
        if unit == "day":
            return today + timedelta(days=amount)
        if unit == "week":
            return today + timedelta(weeks=amount)
        return _add_months(today, amount)

    match = _WEEKDAY.search(text)
    if match:
        qualifier, name = match.groups()
        if qualifier in ("last", "past"):
            return today - timedelta(days=(today.weekday() - _WEEKDAYS[name]) % 7 or 7)
        ahead = (_WEEKDAYS[name] - today.weekday()) % 7
        if ahead == 0 and qualifier == "next":
            ahead = 7
        return today + timedelta(days=ahead)

    match = _ORDINAL_DAY.search(text)
    if match:
        return _next_day_of_month(int(match.group(1)), today)
    return None


def _dateparser_date(text: str, today: date) -> date | None:
    """Ask dateparser (full parse, then search inside the sentence); None when it misses."""
    import dateparser  # slow import: done lazily, cached by Python afterwards
    from dateparser.search import search_dates

    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime.combine(today, datetime.min.time()),
        "DATE_ORDER": "DMY",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    languages = ["en", "th"]
    try:
        parsed = dateparser.parse(text, languages=languages, settings=settings)
        if parsed is not None:
            return parsed.date()
        found = search_dates(text, languages=languages, settings=settings)
    except Exception:  # dateparser may raise anything on odd input
        return None
    for matched, value in found or ():
        if matched.strip().lower() in ("may", "sat", "sun", "mar"):  # verbs/words, not dates
            continue
        return value.date()
    return None


def parse_travel_date(text: str, *, today: date, window_days: int, days_back: int = 0) -> date:
    """Return the travel date the customer means, checked against the booking window.

    Understands ISO dates, day-month with or without year (day first: "25/1" is 25
    January), "January 25th", "the 3rd" (next 3rd of a month), relative dates ("tomorrow",
    "day after tomorrow", "next Friday", "this weekend" = coming Saturday, "in two weeks"),
    and falls back on ``dateparser`` (also for dates inside longer sentences and Thai).
    A day and month without a year means its next occurrence, today included.

    Raises:
        Invalid: ``unparseable``; ``past`` (before ``today - days_back``; ``days_back`` lets a
            flight-status question be about yesterday); ``beyond_window`` (after
            ``today + window_days``).
    """
    if isinstance(today, datetime):
        today = today.date()
    cleaned = _clean(text, limit=300).lower()
    stripped = _WHITESPACE.sub(" ", _DATE_FILLER.sub(" ", cleaned)).strip(" .,!?;:")
    # "the first of December" -> "the 1st of december" so that the rules see digits.
    stripped = _ORDINAL_DAY_WORDS_PATTERN.sub(lambda m: f"{_ORDINAL_DAY_WORDS[m.group(1)]}th", stripped)
    if not stripped:
        raise Invalid("Which date would you like to travel?", reason="unparseable")
    try:
        result = _rule_based_date(stripped, today) or _dateparser_date(stripped, today)
    except (ValueError, OverflowError):
        result = None
    if result is None:
        raise Invalid("I could not understand that date.", reason="unparseable")
    if result < today - timedelta(days=days_back):
        raise Invalid(f"{result.isoformat()} is in the past.", reason="past")
    if result > today + timedelta(days=window_days):
        raise Invalid(
            f"{result.isoformat()} is beyond our schedule (up to {window_days} days ahead).",
            reason="beyond_window",
        )
    return result
