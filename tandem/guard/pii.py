"""PII masking with spaCy's rule-based matching (a trained pipeline is used when one is installed).

Masked: e-mail addresses (``[EMAIL]``), URLs with credentials or queries are left to the output
sanitiser, phone numbers (``[PHONE]``), payment card numbers that pass the Luhn check (``[CARD]``)
and passport numbers (``[PASSPORT]``). Booking references (6 letters/digits) and flight numbers
are kept on purpose: they are what the conversation is about and are not personal on their own.
With a trained English pipeline installed, PERSON entities are masked too (``[NAME]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import spacy
from spacy.language import Language
from spacy.matcher import Matcher

# Digits with the separators people type; 9-15 digits is a phone number, 13-19 may be a card.
_NUMBER_RUN = re.compile(r"(?<![\w+])\+?\d(?:[\d\s().\-/]*\d)?(?![\w])")
_PASSPORT = re.compile(r"\b[A-Z]{1,2}\d{6,8}\b")
# "passport number 123456789", "passport no: X1234567"
_PASSPORT_AFTER_WORD = re.compile(r"(?i)(passport\s*(?:number|no\.?|#)?\s*(?:is\s+)?[:\-]?\s*)([A-Z0-9]{6,9})\b")

# Trained pipelines tried in this order; none is required.
_TRAINED_PIPELINES = ("en_core_web_sm", "en_core_web_md")


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


@dataclass(frozen=True, slots=True)
class MaskResult:
    """The masked text and the kinds of PII that were found (for metrics and tests)."""

    text: str
    found: tuple[str, ...]


class PiiMasker:
    """Masks PII in free text. Build once (loading spaCy takes a moment), then call :meth:`mask`."""

    def __init__(self, nlp: Language, *, trained: bool = False) -> None:
        self._nlp = nlp
        self._trained = trained
        self._matcher = Matcher(nlp.vocab)
        self._matcher.add("EMAIL", [[{"LIKE_EMAIL": True}]])

    @classmethod
    def create(cls, *, prefer_trained: bool = True) -> PiiMasker:
        """A masker on a trained English pipeline when installed, else on ``spacy.blank("en")``."""
        if prefer_trained:
            for name in _TRAINED_PIPELINES:
                if spacy.util.is_package(name):
                    # Only the NER is needed; the rest would cost time on every turn.
                    nlp = spacy.load(name, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler"])
                    return cls(nlp, trained=True)
        return cls(spacy.blank("en"))

    def mask(self, text: str) -> MaskResult:
        """Replace every PII span of ``text`` with its placeholder."""
        spans: list[tuple[int, int, str]] = []
        doc = self._nlp(text)
        for _, start, end in self._matcher(doc):
            span = doc[start:end]
            spans.append((span.start_char, span.end_char, "EMAIL"))
        if self._trained:
            spans.extend((ent.start_char, ent.end_char, "NAME") for ent in doc.ents if ent.label_ == "PERSON")
        for match in _NUMBER_RUN.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                spans.append((match.start(), match.end(), "CARD"))
            elif 9 <= len(digits) <= 15:
                spans.append((match.start(), match.end(), "PHONE"))
        for match in _PASSPORT.finditer(text):
            spans.append((match.start(), match.end(), "PASSPORT"))
        for match in _PASSPORT_AFTER_WORD.finditer(text):
            if any(ch.isdigit() for ch in match.group(2)):
                spans.append((match.start(2), match.end(2), "PASSPORT"))
        return _apply(text, spans)


def _apply(text: str, spans: list[tuple[int, int, str]]) -> MaskResult:
    # Earlier and longer spans win where two rules overlap (an e-mail holding digits, ...).
    # Where one span is found by two rules, the more specific label (passport, card) wins.
    priority = {"PASSPORT": 0, "CARD": 1, "EMAIL": 2, "NAME": 3, "PHONE": 4}
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0]), priority.get(s[2], 9)))
    parts: list[str] = []
    found: list[str] = []
    cursor = 0
    for start, end, label in spans:
        if start < cursor:
            continue
        parts.append(text[cursor:start])
        parts.append(f"[{label}]")
        found.append(label)
        cursor = end
    parts.append(text[cursor:])
    return MaskResult("".join(parts), tuple(found))
