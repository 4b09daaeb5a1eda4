"""Numbers a customer says in words: how many passengers, a 1..5 rating, which option of a list."""

from __future__ import annotations

import math
import re

from tandem.errors import Invalid

from ._text import _clean, _to_int, _words_to_digits

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
