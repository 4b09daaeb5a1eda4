"""PII detection that needs no model: regular expressions and rules, shared by every masker.

The guard's :class:`~tandem.guard.pii.PiiMasker` (spaCy-based, for what is sent to a model or
logged) and the audit log (:mod:`tandem.services.audit`, which must not load spaCy) both use
these functions, so a phone or card number is recognised the same way everywhere.

- :func:`pattern_spans`: e-mail addresses, payment cards (Luhn), phone numbers, passport numbers.
- :func:`booking_ref_spans`: booking references (6 letters/digits with at least one of each; the
  NLU's regex), masked where they are not needed (the history sent to a model).
- :func:`name_spans`: a rule-based name recogniser for installs without a trained spaCy pipeline:
  a cue ("my name is", "I'm", "Mr", "Khun", "surname", "booked under", "passenger", ...) followed
  by name-like tokens. Measured in ``benchmarks/security/pii``; tuned for few false positives on
  ordinary airline questions, so it misses names that come without a cue.
- :func:`known_value_spans`: values the conversation already told us (the surname a form
  collected, ...), found case- and accent-insensitively.

A span is ``(start, end, label)`` in character offsets of the text given.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tandem.airports import AIRPORTS

Span = tuple[int, int, str]

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Digits with the separators people type.
_NUMBER_RUN = re.compile(r"(?<![\w+])\+?\(?\d(?:[\d\s().\-/]*\d)?\)?(?![\w])")
_DATE_LIKE = re.compile(r"^\(?\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\)?$|^\(?\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\)?$")
# Short numbers (7-8 digits) are phones only with a phone's shape or a phone word nearby.
_PHONE_CUE = re.compile(
    r"(?i)\b(phone|tel|telephone|mobile|cell|call|text|sms|whatsapp|line id|reach|number|contact|fax|office)\b"
)
_PASSPORT = re.compile(r"\b[A-Z]{1,2}\d{6,8}\b")
# "passport number 123456789", "passport no: X1234567"
_PASSPORT_AFTER_WORD = re.compile(r"(?i)(passport\s*(?:number|no\.?|#)?\s*(?:is\s+)?[:\-]?\s*)([A-Z0-9]{6,9})\b")
# The NLU's booking_ref regex (data/nlu/lookups.yml): six letters/digits, at least one digit and
# one letter (tandem.services.bookings.generate_reference), not a flight number ("AN204x").
BOOKING_REF = re.compile(
    r"(?<![\w@.-])(?![Aa][Nn] ?\d)(?=[A-Za-z0-9]{6}(?![\w@-])(?!\.\w))(?=[A-Za-z]*\d)(?=\d*[A-Za-z])"
    r"[A-Za-z0-9]{6}(?![\w@-])(?!\.\w)"
)


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only digits) passes the Luhn checksum of payment card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _number_label(text: str, match: re.Match[str]) -> str | None:
    raw = match.group()
    digits = re.sub(r"\D", "", raw)
    phone_shaped = raw.startswith(("+", "(")) or "(" in raw
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "CARD"
    if len(digits) == 12 and luhn_valid(digits) and not phone_shaped:
        return "CARD"  # Maestro cards have 12 digits
    if _DATE_LIKE.match(raw.strip()):
        return None
    if 9 <= len(digits) <= 15:
        return "PHONE"
    if 7 <= len(digits) <= 8:
        grouped = bool(re.search(r"\d[\s.\-]\d", raw))
        cue = _PHONE_CUE.search(text, max(0, match.start() - 30), match.start())
        if phone_shaped or (grouped and cue):
            return "PHONE"
    return None


def pattern_spans(text: str) -> list[Span]:
    """E-mail addresses, payment cards, phone numbers and passport numbers in ``text``."""
    spans: list[Span] = [(m.start(), m.end(), "EMAIL") for m in EMAIL.finditer(text)]
    for match in _NUMBER_RUN.finditer(text):
        label = _number_label(text, match)
        if label is not None:
            start, end = match.span()
            raw = match.group()
            # A closing parenthesis the run picked up without an opening one is punctuation.
            if raw.endswith(")") and raw.count("(") < raw.count(")"):
                end -= 1
            spans.append((start, end, label))
    spans.extend((m.start(), m.end(), "PASSPORT") for m in _PASSPORT.finditer(text))
    for match in _PASSPORT_AFTER_WORD.finditer(text):
        if any(ch.isdigit() for ch in match.group(2)):
            spans.append((match.start(2), match.end(2), "PASSPORT"))
    return spans


def booking_ref_spans(text: str) -> list[Span]:
    """Booking references (``[BOOKING_REF]``): six letters/digits holding both."""
    return [(m.start(), m.end(), "BOOKING_REF") for m in BOOKING_REF.finditer(text)]


# --- names ---------------------------------------------------------------------------------

# Cues after which the next tokens are a name even in lower case ("my name is somchai").
_STRONG_CUES = (
    r"my\s+name\s+is",
    r"my\s+name'?s",
    r"name\s+is",
    r"names?\s*[:?]",
    r"(?:sur|last|family|first|given|full|maiden|middle)\s*name\s*(?:is|was|:|\?|-)?",
    r"surname",
    r"booked\s+under(?:\s+the\s+name)?(?:\s+of)?",
    r"(?:it'?s|is|was)\s+under(?:\s+the\s+name)?(?:\s+of)?",
    r"under\s+the\s+name(?:\s+of)?",
    r"in\s+the\s+name\s+of",
    r"calls?\s+me",
    r"passenger\s+name\s*(?:is|:)?",
    r"signed\s*[:,]?",
    r"regards\s*,",
)
# Titles: the name may be in lower case when the title is ("dr hughes", "khun malee"), not when
# only the title is capitalised ("Mr and Mrs fares").
_TITLE_CUES = (r"(?:mr|mrs|ms|miss|mx|dr|mister|madam|khun|sir)\.?",)
# Cues after which only capitalised tokens count ("I'm Somchai", not "I'm travelling").
_WEAK_CUES = (
    r"i\s*am",
    r"i'?m",
    r"this\s+is",
    r"it'?s",
    r"passengers?",
    r"travell?er",
    r"hello|hi|dear|thanks|thank\s+you",
    r"name",  # "under my partner's name Marie Langrová"
)
_CUE = re.compile(
    r"(?i)(?<![\w'])(?:(?P<strong>" + "|".join(_STRONG_CUES) + r")|(?P<title>" + "|".join(_TITLE_CUES) + r")"
    r"|(?P<weak>" + "|".join(_WEAK_CUES) + r"))"
    r"(?![\w'])[ \t]*[:,\-]?[ \t]*"
)
_TOKEN = re.compile(r"[^\W\d_](?:[\w'’\-]*[^\W\d_])?")
_GAP = re.compile(r"[ \t]+|[ \t]*\.[ \t]*(?=[^\W\d_])")  # "Janka M. Szász": an initial's dot
_PARTICLES = frozenset({"van", "der", "den", "de", "da", "di", "du", "la", "le", "von", "bin", "binti", "al", "el"})
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "mister", "madam", "khun", "sir", "prof"})
# Words that follow a cue without being a name. spaCy's stop words (no model needed) plus the
# airline's own vocabulary and the adjectives people use about their name ("my surname is wrong").
_NOT_NAMES = frozenset(
    """
    able afraid airline airport already also alone arriving asking available away back bag baggage bags
    booked booking bookings busy calling cancel cancelled cancellation card change changed check checked
    child children coming confused correct currently customer delayed different disabled domestic done down
    economy email english error fine first flight flights fly flying from frequent friend fully gate glad
    going gold good great happy here hoping how interested international just late leaving looking lost
    member missing new not number ok okay on online only passport pay paying platinum please pregnant
    premium ready refund right same seat silver sorry spelled spelt still stuck sure thai ticket tickets
    tired travelling traveling trying unable unhappy upset using very waiting wife husband son daughter
    mother father wrong incorrect misspelled written correctly incorrectly american british chinese japanese
    korean indian german french russian australian european asian visa mastercard amex member bangkok phuket
    krabi chiang mai samui andaman air business class agent human person bot robot assistant someone
    somebody anyone nobody everybody everyone today tomorrow tonight yesterday morning evening afternoon
    night week month year monday tuesday wednesday thursday friday saturday sunday january february march
    april may june july august september october november december krap krab krub khrap khrub ka kha kah
    """.split()  # noqa: SIM905 (a word list people can read and extend)
)


@functools.cache
def _stops() -> frozenset[str]:
    """spaCy's English stop words (a plain Python set: no model is loaded) and the lists above."""
    from spacy.lang.en.stop_words import STOP_WORDS

    # The places the airline flies to are not names either ("I'm Phuket-bound", "it's Krabi").
    places = {word for airport in AIRPORTS for alias in airport.aliases for word in alias.split()}
    return frozenset(STOP_WORDS) | _NOT_NAMES | _TITLES | frozenset(places)


def _is_name_token(token: str, *, strong: bool, stops: frozenset[str]) -> bool:
    lowered = token.casefold().replace("’", "'")
    if lowered in stops or lowered.split("'")[0] in stops or len(lowered) < 2:
        return False
    if strong:
        return True
    # Capitalised, and not an -ing/-ed word ("I'm Travelling"): names rarely end so.
    return token[0].isupper() and not (len(lowered) > 5 and lowered.endswith(("ing", "ed")))


def name_spans(text: str) -> list[Span]:
    """Names that follow a cue (``[NAME]``); at most four tokens (particles like "van der" included)."""
    stops = _stops()
    spans: list[Span] = []
    for cue in _CUE.finditer(text):
        title = cue.group("title")
        strong = cue.group("strong") is not None or (title is not None and title.islower())
        position = cue.end()
        start = end = particle = -1
        count = 0
        while count < 4:
            token = _TOKEN.match(text, position)
            if token is None:
                break
            word = token.group()
            initial = len(word) == 1 and word.isupper() and start >= 0  # "Janka M. Szász"
            if (word.casefold() in _PARTICLES and count < 3) or initial:
                # "van der Berg", "Ravil G Yefimov": kept only when a name token follows.
                if start < 0 and particle < 0:
                    particle = token.start()
            elif not _is_name_token(word, strong=strong, stops=stops):
                break
            else:
                if start < 0:
                    start = particle if particle >= 0 else token.start()
                end = token.end()
            count += 1
            gap = _GAP.match(text, token.end())
            if gap is None:
                break
            position = gap.end()
        if start >= 0:
            spans.append((start, end, "NAME"))
    return spans


# --- values the conversation already holds -------------------------------------------------

# Slots (and NLU entities) whose values identify a person or a booking, and their placeholders.
KNOWN_LABELS: dict[str, str] = {
    "last_name": "NAME",
    "first_name": "NAME",
    "name": "NAME",
    "email": "EMAIL",
    "booking_ref": "BOOKING_REF",
    "phone": "PHONE",
}
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> str:
    """Case- and accent-insensitive form: ``"Müller"`` → ``"muller"``."""
    return "".join(_fold_char(ch) for ch in text)


def _folded_with_offsets(text: str) -> tuple[str, list[int]]:
    chars: list[str] = []
    offsets: list[int] = []
    for index, ch in enumerate(text):
        for folded in _fold_char(ch):
            chars.append(folded)
            offsets.append(index)
    return "".join(chars), offsets


def _variants(value: str) -> set[str]:
    base = fold(value.strip())
    variants = {base, fold(value.strip().translate(_GERMAN))}
    # "Mueller" given, "Müller" typed: the transliteration the other way round.
    variants.add(base.replace("ae", "a").replace("oe", "o").replace("ue", "u"))
    return {v for v in variants if len(v) >= 2}


def known_value_spans(text: str, known: Iterable[tuple[str, str]]) -> list[Span]:
    """Every occurrence of the known values in ``text`` (case, accents and ä/ae spellings ignored)."""
    pairs = [(kind, value) for kind, value in known if isinstance(value, str) and value.strip()]
    if not pairs:
        return []
    folded, offsets = _folded_with_offsets(text)
    spans: list[Span] = []
    for kind, value in pairs:
        label = KNOWN_LABELS.get(kind, "PII")
        for variant in _variants(value):
            pattern = r"\s+".join(re.escape(part) for part in variant.split())
            for match in re.finditer(rf"(?<!\w){pattern}(?!\w)", folded):
                spans.append((offsets[match.start()], offsets[match.end() - 1] + 1, label))
    return spans


# --- applying spans ------------------------------------------------------------------------

_PRIORITY = {"PASSPORT": 0, "CARD": 1, "EMAIL": 2, "BOOKING_REF": 3, "NAME": 4, "PHONE": 5}


@dataclass(frozen=True, slots=True)
class MaskResult:
    """The masked text and the kinds of PII that were found (for metrics and tests)."""

    text: str
    found: tuple[str, ...]


def resolve(spans: Iterable[Span]) -> list[Span]:
    """The spans that are masked, in order, without overlaps: earlier and longer spans win; where
    one span is found by two rules, the more specific label (passport, card) wins."""
    kept: list[Span] = []
    cursor = 0
    for start, end, label in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]), _PRIORITY.get(s[2], 9))):
        if start >= cursor and end > start:
            kept.append((start, end, label))
            cursor = end
    return kept


def apply_spans(text: str, spans: Iterable[Span], replace: Callable[[str, str], str] | None = None) -> MaskResult:
    """Replace the spans (``replace(label, value)``, default ``[LABEL]``); overlaps :func:`resolve`d."""
    parts: list[str] = []
    found: list[str] = []
    cursor = 0
    for start, end, label in resolve(spans):
        parts.append(text[cursor:start])
        parts.append(replace(label, text[start:end]) if replace else f"[{label}]")
        found.append(label)
        cursor = end
    parts.append(text[cursor:])
    return MaskResult("".join(parts), tuple(found))


def mask_patterns(text: str, replace: Callable[[str, str], str] | None = None) -> MaskResult:
    """E-mails, cards, phones and passports masked without spaCy (the audit log uses this)."""
    return apply_spans(text, pattern_spans(text), replace)
