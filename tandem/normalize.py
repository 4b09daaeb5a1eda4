"""Turn what customers type (or what the NLU extracted) into canonical slot values.

Every function here is pure: no I/O, no Rasa, no state. Each one either returns the
canonical value or raises :class:`tandem.errors.Invalid` with a short machine-readable
``reason`` that the Rasa layer maps to a helpful re-prompt. Inputs are treated as hostile:
they may be empty, huge, contain control characters, emoji or Thai; they are truncated
before any real work is done and nothing but ``Invalid`` ever escapes.

The functions are named ``parse_*``: they find a value in free text ("my email is ...",
"flight 204"). The services check values that should already be canonical with the strict
``require_*`` functions of :mod:`tandem.services.common`, which search nothing.

``dateparser`` is slow to import and to initialise, so it is imported lazily inside
:func:`parse_travel_date`, and only when the cheap hand-written rules did not recognise
the date.
"""

from __future__ import annotations

import calendar
import difflib
import math
import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Literal

from tandem.airports import AIRPORTS
from tandem.errors import Invalid

__all__ = [
    "parse_booking_ref",
    "parse_cabin",
    "parse_city",
    "parse_email",
    "parse_flight_number",
    "parse_last_name",
    "parse_option",
    "parse_passengers",
    "parse_rating",
    "parse_route",
    "parse_travel_date",
]

#: Inputs are cut to this many characters before any parsing (bounds the work).
MAX_INPUT_CHARS = 500

# --------------------------------------------------------------------------- helpers

_WHITESPACE = re.compile(r"\s+")


def _clean(text: object, *, limit: int = MAX_INPUT_CHARS) -> str:
    """Truncate, NFKC-normalise, replace control/format characters by spaces, collapse spaces.

    Non-string input yields ``""`` so that callers report their own "unparseable" reason.
    """
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFKC", text[:limit])[:limit]
    chars = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            chars.append(" ")
        else:
            chars.append(ch)
    # Curly apostrophes are common on phones.
    return _WHITESPACE.sub(" ", "".join(chars)).replace("\u2019", "'").replace("\u2018", "'").strip()


_NUMBER_WORDS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
}
_NUMBER_WORD_RE = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_NUMBER_WORDS_PATTERN = re.compile(rf"\b({_NUMBER_WORD_RE})\b")


def _words_to_digits(text: str) -> str:
    """Replace English number words (zero..twenty) by digits in lower-case ``text``."""
    return _NUMBER_WORDS_PATTERN.sub(lambda m: str(_NUMBER_WORDS[m.group(1)]), text)


def _to_int(token: str) -> int | None:
    """``int(token)`` for at most 6 digits (Unicode digits included), else None."""
    if not token or len(token) > 6:
        return None
    try:
        return int(token)
    except ValueError:
        return None


# --------------------------------------------------------------------------- cities

_CITY_STOPWORDS = frozenset(
    {
        "from",
        "to",
        "fly",
        "flying",
        "flight",
        "flights",
        "go",
        "going",
        "travel",
        "travelling",
        "traveling",
        "leave",
        "leaving",
        "depart",
        "departing",
        "departure",
        "heading",
        "head",
        "the",
        "a",
        "an",
        "i",
        "id",
        "i'd",
        "im",
        "i'm",
        "want",
        "wanna",
        "would",
        "like",
        "please",
        "pls",
        "plz",
        "airport",
        "airports",
        "international",
        "intl",
        "city",
        "in",
        "at",
        "of",
        "me",
        "my",
        "is",
        "it",
        "its",
        "it's",
        "back",
        "return",
        "returning",
        "destination",
        "origin",
        "via",
        "for",
        "book",
        "booking",
        "ticket",
        "tickets",
        "need",
        "get",
        "on",
        "and",
        "thanks",
        "thank",
        "you",
        "ok",
        "okay",
        "um",
        "uh",
        "yes",
        "yeah",
        "actually",
        "sorry",
        "mean",
        "out",
        "start",
        "starting",
        "arrive",
        "arriving",
        "arrival",
        "into",
        "there",
        "then",
        "let's",
        "lets",
        "just",
        "can",
        "could",
        "we",
        "our",
        "trip",
        "visit",
    }
)


def _alias_key(text: str) -> str:
    """Lower-case, accents folded, punctuation to spaces, airport stopwords removed."""
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch) or ord(ch) > 0x0E00)
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", folded)
    return " ".join(w for w in words if w not in ("airport", "international"))


def _build_city_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for airport in AIRPORTS:
        names = (airport.code, airport.city, airport.name, *airport.aliases)
        for name in names:
            key = _alias_key(name)
            if not key:
                continue
            # The first airport that claims an alias keeps it ("bangkok" is BKK, the hub).
            aliases.setdefault(key, airport.code)
            aliases.setdefault(key.replace(" ", ""), airport.code)
    return aliases


#: alias (normalised, see ``_alias_key``) -> IATA code. Precomputed constant table.
_CITY_ALIASES: dict[str, str] = _build_city_aliases()
_CITY_MAX_WORDS = max(len(alias.split()) for alias in _CITY_ALIASES)
#: Aliases long enough for fuzzy matching (short codes like "kl" only ever match exactly).
_CITY_FUZZY_ALIASES: tuple[str, ...] = tuple(a for a in _CITY_ALIASES if len(a) >= 4)
#: Minimum difflib ratio for a typo match; the first letter must match too ("danang" is
#: not "aonang", "change" is not "changi").
_CITY_FUZZY_CUTOFF = 0.84


def parse_city(text: str) -> str:
    """Return the IATA code of the served airport the customer means.

    Accepts city names, airport names, aliases and IATA codes in any case, surrounded by
    ordinary words ("from bangkok", "fly to Phuket please", "BKK airport"), and tolerates
    typos through a fuzzy match on the alias table ("chaing mai", "kuala lumpor").
    "Bangkok" alone means BKK, the main hub.

    Raises:
        Invalid: ``unknown_city`` when no served airport matches; ``ambiguous_city`` when
            the text names two different served airports ("from Bangkok to Phuket").
    """
    cleaned = _clean(text, limit=200)
    words = [w for w in _alias_key(cleaned).split() if w not in _CITY_STOPWORDS][:40]
    if not words:
        raise Invalid("Please tell me a city or airport.", reason="unknown_city")

    # 1. Exact alias matches on word n-grams, longest first; shorter matches inside an
    #    already matched span are ignored ("ho chi minh city", "bangkok don mueang").
    taken: set[int] = set()
    matches: list[tuple[int, str, str]] = []  # (start, alias, code)
    for size in range(min(_CITY_MAX_WORDS, len(words)), 0, -1):
        for start in range(len(words) - size + 1):
            span = range(start, start + size)
            if taken.intersection(span):
                continue
            gram = " ".join(words[start : start + size])
            code = _CITY_ALIASES.get(gram) or (_CITY_ALIASES.get(gram.replace(" ", "")) if size > 1 else None)
            if code:
                matches.append((start, gram, code))
                taken.update(span)
    if matches:
        codes = {code for _, _, code in matches}
        if codes == {"BKK", "DMK"} and all(
            alias in ("bangkok", "krung thep", "krungthep") for _, alias, code in matches if code == "BKK"
        ):
            # "Don Mueang, Bangkok": the generic city name does not mean the other airport.
            codes = {"DMK"}
        if len(codes) == 1:
            return codes.pop()
        raise Invalid("That mentions more than one airport; which one do you mean?", reason="ambiguous_city")

    # 2. Fuzzy match of n-grams (up to 3 words) against the longer aliases.
    best: tuple[float, str] = (0.0, "")
    for size in range(min(3, len(words)), 0, -1):
        for start in range(len(words) - size + 1):
            gram = " ".join(words[start : start + size])
            if len(gram) < 4:
                continue
            for candidate in difflib.get_close_matches(gram, _CITY_FUZZY_ALIASES, n=3, cutoff=_CITY_FUZZY_CUTOFF):
                score = difflib.SequenceMatcher(None, gram, candidate).ratio()
                if candidate[0] == gram[0] and score > best[0]:
                    best = (score, _CITY_ALIASES[candidate])
    if best[1]:
        return best[1]
    raise Invalid("We do not fly to or from that place.", reason="unknown_city")


_ROUTE_CUE = re.compile(r"\b(from|leaving|departing|out of|to|into|towards)\b")
_ORIGIN_CUES = frozenset({"from", "leaving", "departing", "out of"})


def parse_route(text: str) -> tuple[str | None, str | None]:
    """The origin and destination a sentence names with explicit cues, as IATA codes.

    "from A to B", "to B from A", "need to go to B from A", "A to B" (no "from": the city before
    "to" is the origin). Either is None when the text does not say it. A statistical entity
    extractor sometimes swaps the roles of two cities; these cues are unambiguous, so the
    booking form prefers them.
    """
    cleaned = _clean(text, limit=300).lower()
    cues = list(_ROUTE_CUE.finditer(cleaned))
    origin: str | None = None
    destination: str | None = None
    for index, cue in enumerate(cues):
        end = cues[index + 1].start() if index + 1 < len(cues) else len(cleaned)
        try:
            code = parse_city(cleaned[cue.end() : end])
        except Invalid:
            continue  # "want to fly": no city after this cue
        if cue.group(1) in _ORIGIN_CUES:
            origin = origin or code
        else:
            destination = destination or code
    if cues and origin is None and destination is not None:
        try:
            before = parse_city(cleaned[: cues[0].start()])
        except Invalid:
            before = None
        if before and before != destination:
            origin = before
    return origin, destination


# --------------------------------------------------------------------------- dates

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


# --------------------------------------------------------------------------- passengers

_SOLO = re.compile(
    r"\b(?:just|only)\s+(?:me|myself|1|one)\b|\bmyself\b|\balone\b|\bsolo\b|\bby myself\b"
    r"|^(?:me|i|single|one person)$"
)
_COUPLE = re.compile(r"\b(?:a\s+)?couple\b|\bboth of us\b|\bus two\b|\bthe two of us\b")
_TOTAL = re.compile(
    r"\b(?:family|group|party|team)\s+of\s+(\d+)\b|\b(\d+)\s+of\s+us\b|\bwe(?:\s+are|'re| re)\s+(\d+)\b"
    r"|\b(\d+)\s+(?:people|persons?|passengers?|pax|travell?ers?|tickets?|seats?|guests?|adults?\s+in\s+total)\b"
)
_PERSON_NOUNS = (
    r"adults?|child(?:ren)?|kids?|infants?|bab(?:y|ies)|toddlers?|sons?|daughters?|friends?|"
    r"colleagues?|teen(?:ager)?s?|students?|seniors?|brothers?|sisters?|cousins?|boys?|girls?"
)
_NUMBERED_PEOPLE = re.compile(
    rf"(?:(?<=\s)|^)(\d+|an?)\s+(?:(?:little|young|small|older|grown|grown-up)\s+)?({_PERSON_NOUNS})\b"
)
_SINGLE_COMPANIONS = re.compile(
    r"\b(?:wife|husband|partner|spouse|friend|girlfriend|boyfriend|fianc[eé]{1,2}|mom|mum|"
    r"mother|dad|father|son|daughter|brother|sister|colleague|boss|baby|child|kid|infant|grandma|"
    r"grandpa|grandmother|grandfather|aunt|uncle|cousin|nephew|niece|mother-in-law|father-in-law|"
    r"roommate|buddy|mate)\b"
)
_PAIR_COMPANIONS = re.compile(r"\b(?:parents|grandparents|twins|in-laws)\b")
_UNKNOWN_PLURALS = re.compile(r"\b(?:kids|children|friends|family|colleagues|babies|sons|daughters|brothers|sisters)\b")
_SELF = re.compile(r"\b(?:me|myself|i|i'm|im)\b")
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?![\w.])")


def _check_passengers(count: int, max_passengers: int) -> int:
    if count < 1 or count > max_passengers:
        raise Invalid(f"We can book 1 to {max_passengers} passengers at a time.", reason="out_of_range")
    return count


def parse_passengers(text: str | float | int, *, max_passengers: int = 9) -> int:
    """Return the number of passengers (1..``max_passengers``).

    Accepts numbers (2, 2.0, "2"), number words ("two", "three of us", "a family of four"),
    and descriptions ("just me" = 1, "me and my wife" = 2, "me and my 2 kids" = 3,
    "2 adults and 1 child" = 3, "a couple" = 2).

    Raises:
        Invalid: ``unparseable``; ``out_of_range`` (zero, negative, above the maximum).
    """
    if isinstance(text, bool):
        raise Invalid("How many passengers?", reason="unparseable")
    if isinstance(text, int):
        return _check_passengers(text, max_passengers)
    if isinstance(text, float):
        if not math.isfinite(text) or not text.is_integer():
            raise Invalid("How many passengers?", reason="unparseable")
        return _check_passengers(int(text), max_passengers)

    cleaned = _words_to_digits(_clean(text, limit=200).lower()).strip(" .,!?;:")
    cleaned = re.sub(r"\s*&\s*|\s*\+\s*", " and ", cleaned)
    if not cleaned:
        raise Invalid("How many passengers?", reason="unparseable")

    match = _TOTAL.search(cleaned)
    if match:
        number = _to_int(next(g for g in match.groups() if g))
        if number is not None:
            return _check_passengers(number, max_passengers)

    # A breakdown: "2 adults and 1 child", "me and my wife", "me and my 2 kids".
    numbered = [(1 if n in ("a", "an") else _to_int(n), noun) for n, noun in _NUMBERED_PEOPLE.findall(cleaned)]
    rest = _NUMBERED_PEOPLE.sub(" ", cleaned)
    singles = len(_SINGLE_COMPANIONS.findall(rest))
    pairs = len(_PAIR_COMPANIONS.findall(rest))
    if numbered or singles or pairs:
        if any(n is None for n, _ in numbered):
            raise Invalid("How many passengers?", reason="out_of_range")
        if _UNKNOWN_PLURALS.search(rest):
            raise Invalid("How many people are travelling in total?", reason="unparseable")
        total = sum(n for n, _ in numbered if n is not None) + singles + 2 * pairs
        has_adults = any(noun.startswith("adult") for _, noun in numbered)
        if _SELF.search(cleaned) and not has_adults:
            total += 1
        return _check_passengers(total, max_passengers)

    if _COUPLE.search(cleaned):
        return 2

    numbers = _NUMBER.findall(cleaned)
    if numbers:
        if len(set(numbers)) > 1:
            raise Invalid("How many passengers in total?", reason="unparseable")
        try:
            value = float(numbers[0])
        except ValueError:  # pragma: no cover - the regex only matches numbers
            value = math.nan
        if not math.isfinite(value) or not value.is_integer():
            raise Invalid("How many passengers?", reason="unparseable")
        return _check_passengers(int(value), max_passengers)

    if _SOLO.search(cleaned):
        return 1
    if re.search(r"\b(?:nobody|no one|none)\b", cleaned):
        raise Invalid("At least one passenger is needed.", reason="out_of_range")
    raise Invalid("How many passengers?", reason="unparseable")


# --------------------------------------------------------------------------- cabin

_ECONOMY_WORDS = frozenset(
    {"economy", "eco", "econ", "coach", "standard", "cheapest", "cheap", "budget", "basic", "normal", "regular"}
)
_BUSINESS_WORDS = frozenset({"business", "biz", "flatbed"})
_FIRST_CLASS = re.compile(r"\b(?:first|1st)(?:\s*-?\s*class)?\b|ชั้นหนึ่ง|เฟิร์สคลาส")


def parse_cabin(text: str) -> Literal["economy", "business"]:
    """Return ``"economy"`` or ``"business"``.

    Understands "economy class", "eco", "coach", "standard", "cheapest", "business class",
    "biz", "flat bed", typos ("econmy", "bussiness") and the Thai words.

    Raises:
        Invalid: ``no_first_class`` for first class; ``unknown_cabin`` otherwise.
    """
    cleaned = _clean(text, limit=200).lower()
    words = re.findall(r"[^\W_]+", cleaned)
    joined = " ".join(words)
    if _FIRST_CLASS.search(cleaned) and ("class" in words or words in (["first"], ["1st"]) or not cleaned.isascii()):
        raise Invalid("Andaman Air has no first class; we offer economy and business.", reason="no_first_class")
    if re.search(r"\b(?:lie|fully)\s*-?\s*flat\b|\bflat\s*-?\s*beds?\b", joined):
        return "business"

    found: set[str] = set()
    if "ประหยัด" in cleaned:
        found.add("economy")
    if "ธุรกิจ" in cleaned:
        found.add("business")
    for word in words:
        if word in _ECONOMY_WORDS:
            found.add("economy")
        elif word in _BUSINESS_WORDS:
            found.add("business")
        elif len(word) >= 5:
            if difflib.get_close_matches(word, ("economy",), n=1, cutoff=0.75):
                found.add("economy")
            elif difflib.get_close_matches(word, ("business",), n=1, cutoff=0.75):
                found.add("business")
    if len(found) == 1:
        return "economy" if "economy" in found else "business"
    raise Invalid("Economy or business?", reason="unknown_cabin")


# --------------------------------------------------------------------------- booking reference

_EMAIL_FIND = re.compile(r"[A-Za-z0-9._%+'\-]+@[A-Za-z0-9.\-]+")
_REF_CANDIDATE = re.compile(r"(?<![A-Za-z0-9@._\-])([A-Za-z0-9]{6})(?![A-Za-z0-9@\-]|\.[A-Za-z0-9])")
_FLIGHT_LIKE = re.compile(r"^AN\d+$")
_SPACED_REF = re.compile(r"^[A-Za-z0-9]{1,6}(?:[\s\-][A-Za-z0-9]{1,5})+$")


def _is_ref(token: str) -> bool:
    return (
        len(token) == 6
        and token.isascii()
        and token.isalnum()
        and any(c.isalpha() for c in token)
        and any(c.isdigit() for c in token)
        and not _FLIGHT_LIKE.match(token.upper())
    )


def parse_booking_ref(text: str) -> str:
    """Return the 6-character booking reference (letters and digits, upper case) in the text.

    "my ref is ab12cd" and "AB12CD." work; "ab 12 cd" works when that is the whole answer.
    Flight numbers (AN + digits) and parts of e-mail addresses are never taken.

    Raises:
        Invalid: ``invalid_booking_ref`` when there is none, or more than one.
    """
    cleaned = _clean(text).strip(" .,!?;:\"'()[]")
    if _SPACED_REF.match(cleaned):
        joined = re.sub(r"[\s\-]", "", cleaned)
        if _is_ref(joined):
            return joined.upper()
    without_emails = _EMAIL_FIND.sub(" ", cleaned)
    candidates: set[str] = {m.upper() for m in _REF_CANDIDATE.findall(without_emails) if _is_ref(m)}
    if len(candidates) == 1:
        return candidates.pop()
    message = (
        "I found more than one booking reference; which one is it?"
        if candidates
        else "A booking reference has 6 letters and digits, like AB12CD."
    )
    raise Invalid(message, reason="invalid_booking_ref")


# --------------------------------------------------------------------------- flight number

_FLIGHT_NUMBER = re.compile(r"(?<![A-Z0-9])AN\s*[\s\-#]?\s*(\d{2,4})(?![\d])")
_FLIGHT_WORD = re.compile(r"\bFLIGHT\s*(?:NO\.?|NUMBER|NR\.?|#)?\s*#?\s*(\d{2,4})(?![\d])")
_BARE_NUMBER = re.compile(r"^(?:NO\.?|NUMBER|#)?\s*#?\s*(\d{2,4})$")


def parse_flight_number(text: str) -> str:
    """Return an Andaman Air flight number as ``AN`` + 2–4 digits ("AN 204" -> "AN204").

    Accepts "AN 204", "an204", "AN-204", "flight AN204", "flight 204" and "204" alone.

    Raises:
        Invalid: ``invalid_flight_number`` when there is none, or more than one.
    """
    cleaned = _clean(text, limit=200).upper().strip(" .,!?;:\"'()[]")
    found = set(_FLIGHT_NUMBER.findall(cleaned)) or set(_FLIGHT_WORD.findall(cleaned))
    if not found:
        bare = _BARE_NUMBER.match(cleaned)
        if bare:
            found = {bare.group(1)}
    if len(found) == 1:
        digits = found.pop()
        if digits.isascii():
            return f"AN{digits}"
    raise Invalid("Our flight numbers look like AN204.", reason="invalid_flight_number")


# --------------------------------------------------------------------------- e-mail

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+'\-])"
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
)


def parse_email(text: str) -> str:
    """Return the one e-mail address in the text, lower-cased and validated.

    The local part uses the usual characters (no spaces, no leading/trailing/double dots,
    at most 64 characters), the domain has at least one dot and a TLD of two or more
    letters, and the whole address is at most 254 characters.

    Raises:
        Invalid: ``invalid_email`` when there is no valid address, or more than one.
    """
    cleaned = _clean(text, limit=600)
    found: set[str] = {m.lower() for m in _EMAIL.findall(cleaned)}
    valid = {e for e in found if len(e) <= 254 and len(e.split("@", 1)[0]) <= 64}
    if len(valid) == 1 and len(found) == 1:
        return valid.pop()
    message = "Please give just one e-mail address." if len(valid) > 1 else "That does not look like an e-mail address."
    raise Invalid(message, reason="invalid_email")


# --------------------------------------------------------------------------- last name

_NAME_PREFIX = re.compile(
    r"^(?:(?:my|the|our)\s+)?(?:(?:last|family|sur)\s*-?\s*name|surname|lastname|name)"
    r"(?:\s+(?:is|was|would be|=))?\s*[:=\-]?\s*"
    r"|^(?:it'?s|it is|that'?s|that is|this is|i'?m|i am|i'm|mr\.?|mrs\.?|ms\.?|miss|dr\.?)\s+",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"[\s,;!?]*(?:,?\s*(?:thanks|thank you|thx|please|pls))?[\s.,;!?]*$", re.IGNORECASE)
_NAME_PARTICLES = frozenset(
    {
        "van",
        "der",
        "den",
        "de",
        "del",
        "della",
        "di",
        "da",
        "du",
        "dos",
        "das",
        "do",
        "von",
        "zu",
        "la",
        "le",
        "ter",
        "ten",
        "te",
        "bin",
        "binti",
        "ibn",
        "al",
        "el",
        "y",
        "af",
        "av",
    }
)
_NAME_ALLOWED_PUNCT = frozenset(" '-.")


def _capitalise_part(part: str) -> str:
    """Capitalise one hyphen/apostrophe-free piece; keep deliberate mixed case ("McDonald")."""
    if not part or (part != part.lower() and part != part.upper()):
        return part
    lower = part.lower()
    if lower.startswith("mc") and len(lower) > 2:
        return "Mc" + lower[2:3].upper() + lower[3:]
    return lower[:1].upper() + lower[1:]


def _capitalise_word(word: str) -> str:
    pieces = re.split(r"([\-'])", word)
    out = []
    for i, piece in enumerate(pieces):
        if piece in ("-", "'"):
            out.append(piece)
        elif i >= 2 and pieces[i - 1] == "'" and len(piece) <= 1:
            out.append(piece.lower())  # possessive-like endings: "D'Arcy" vs "Ng'"
        else:
            out.append(_capitalise_part(piece))
    return "".join(out)


def parse_last_name(text: str) -> str:
    """Return the customer's last name, tidied and sensibly title-cased.

    Strips lead-ins ("my last name is", "it's", "surname:"), keeps particles such as
    "van der" in lower case, keeps apostrophes and hyphens ("O'Brien", "Smith-Jones") and
    any script (Müller, Thai). Allowed: letters, spaces, apostrophes, hyphens, dots; 1–60
    characters.

    Raises:
        Invalid: ``invalid_last_name`` (digits, "@", other symbols, empty or too long).
    """
    cleaned = _clean(text, limit=200)
    for _ in range(3):  # "my surname is: it's X" — peel a few lead-ins at most
        peeled = _NAME_PREFIX.sub("", cleaned, count=1).strip()
        if peeled == cleaned:
            break
        cleaned = peeled
    cleaned = _NAME_SUFFIX.sub("", cleaned).strip(" \"'").strip()
    cleaned = _WHITESPACE.sub(" ", cleaned)
    if not cleaned or len(cleaned) > 60:
        raise Invalid("Please type your last name (letters only).", reason="invalid_last_name")
    for ch in cleaned:
        if ch in _NAME_ALLOWED_PUNCT:
            continue
        if not unicodedata.category(ch).startswith(("L", "M")):
            raise Invalid("Please type your last name (letters only).", reason="invalid_last_name")
    if not any(unicodedata.category(ch).startswith("L") for ch in cleaned):
        raise Invalid("Please type your last name (letters only).", reason="invalid_last_name")

    words = cleaned.split(" ")
    result = []
    leading = True  # particles are lower-cased only in the leading run: "van der Berg"
    for i, word in enumerate(words):
        is_last = i == len(words) - 1
        if leading and word.lower() in _NAME_PARTICLES and not is_last:
            result.append(word.lower())
        else:
            leading = False
            result.append(_capitalise_word(word))
    return " ".join(result)


# --------------------------------------------------------------------------- rating

_RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def parse_rating(value: str | float | int) -> int:
    """Return a 1..5 rating from 5, 5.0, "5", "five", "4 stars", "5/5", "4 out of 5" or ⭐⭐⭐⭐.

    Raises:
        Invalid: ``invalid_rating``.
    """
    invalid = Invalid("Please rate from 1 to 5.", reason="invalid_rating")
    if isinstance(value, bool):
        raise invalid
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
            raise invalid
        if 1 <= value <= 5:
            return int(value)
        raise invalid
    cleaned = _clean(value, limit=100).lower()
    stars = cleaned.count("\u2b50") + cleaned.count("\u2605")
    if stars and not re.search(r"\d|\b(?:one|two|three|four|five)\b", cleaned):
        if 1 <= stars <= 5:
            return stars
        raise invalid
    cleaned = re.sub(r"\b(one|two|three|four|five)\b", lambda m: str(_RATING_WORDS[m.group(1)]), cleaned)
    scale = re.search(r"(?<![\d.])(\d+(?:\.0+)?)\s*(?:/|out\s+of|of)\s*(\d+)(?![\d.])", cleaned)
    if scale:
        if _to_int(scale.group(2)) != 5:
            raise invalid
        numbers = [scale.group(1)]
    else:
        numbers = re.findall(r"(?<![\d.\-])(\d+(?:\.\d+)?)(?![\d.])", cleaned)
    if len(set(numbers)) != 1:
        raise invalid
    number = float(numbers[0])
    if number.is_integer() and 1 <= number <= 5:
        return int(number)
    raise invalid


# --------------------------------------------------------------------------- option choice

_ORDINALS: dict[str, int] = {
    "first": 0,
    "1st": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "fourth": 3,
    "4th": 3,
    "fifth": 4,
    "5th": 4,
    "sixth": 5,
    "6th": 5,
    "seventh": 6,
    "7th": 6,
    "eighth": 7,
    "8th": 7,
    "ninth": 8,
    "9th": 8,
    "tenth": 9,
    "10th": 9,
}
_ORDINAL_RE = re.compile(r"\b(" + "|".join(_ORDINALS) + r")\b")
_SECOND_LAST = re.compile(r"\b(?:second|2nd)\s*(?:-|to\s+)?\s*last\b|\bpenultimate\b")
_LAST = re.compile(r"\b(?:last|final|bottom)\b")
_OPTION_FILLER = re.compile(
    r"\b(?:i'?ll|i will|i'?d|i would|i want|i choose|i pick|i take|take|like|choose|pick|want|"
    r"go with|select|book|the|option|options|choice|number|no|flight|please|pls|thanks|"
    r"thank you|ok|okay|yes|let's|lets)\b|[#.,!?:;()\"]"
)


def parse_option(text: str, *, count: int) -> int:
    """Return the 0-based index of the option chosen among ``count`` options.

    "first", "1", "option 1", "the first one" -> 0; "second", "2nd", "two" -> 1;
    "last" -> ``count - 1``; "second to last" -> ``count - 2``. Anything else
    (including "cheapest" or "earliest", which callers handle themselves) is invalid.

    Raises:
        Invalid: ``invalid_option`` (not understood, or outside 1..``count``).
    """
    invalid = Invalid(f"Please choose an option from 1 to {max(count, 1)}.", reason="invalid_option")
    if count < 1:
        raise invalid
    cleaned = _clean(text, limit=200).lower()
    if not cleaned:
        raise invalid

    indexes: set[int] = set()
    if _SECOND_LAST.search(cleaned):
        indexes.add(count - 2)
        cleaned = _SECOND_LAST.sub(" ", cleaned)
    if _LAST.search(cleaned):
        indexes.add(count - 1)
    indexes.update(_ORDINALS[m] for m in _ORDINAL_RE.findall(cleaned))
    if not indexes:
        # A bare number, possibly with filler: "2", "option 2", "number two", "#3".
        tokens = _OPTION_FILLER.sub(" ", _words_to_digits(cleaned)).split()
        if len(tokens) == 1 and tokens[0].isascii() and tokens[0].isdigit():
            number = _to_int(tokens[0])
            if number is not None:
                indexes.add(number - 1)
    if len(indexes) == 1:
        index = indexes.pop()
        if 0 <= index < count:
            return index
    raise invalid
