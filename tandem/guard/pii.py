"""PII masking: spaCy's rule-based matching plus the model-free rules of :mod:`tandem.guard.patterns`.

Masked: e-mail addresses (``[EMAIL]``), phone numbers (``[PHONE]``), payment card numbers that
pass the Luhn check (``[CARD]``), passport numbers (``[PASSPORT]``) and names (``[NAME]``): by a
rule-based recogniser that needs no trained pipeline ("my name is …", "Mr …", "surname …"), by
spaCy's NER when a trained English pipeline is installed, and wherever a value the conversation
already holds appears (the surname a form collected: ``known``). URLs with credentials or
queries are left to the output sanitiser.

Booking references (6 letters/digits) are kept in the customer's current turn by default: a
reference alone opens nothing, and the retrieval and the NLU see the same text. They are masked
(``booking_refs=True``) in the history sent to a model, where they would sit next to the
surname that opens the booking, and wherever the conversation's own reference is ``known``.
"""

from __future__ import annotations

from collections.abc import Iterable

import spacy
from spacy.language import Language
from spacy.matcher import Matcher

from tandem.guard.patterns import (
    MaskResult,
    Span,
    apply_spans,
    booking_ref_spans,
    known_value_spans,
    luhn_valid,
    name_spans,
    pattern_spans,
)

__all__ = ["MaskResult", "PiiMasker", "luhn_valid"]

# Trained pipelines tried in this order; none is required.
_TRAINED_PIPELINES = ("en_core_web_sm", "en_core_web_md")


class PiiMasker:
    """Masks PII in free text. Build once (loading spaCy takes a moment), then call :meth:`mask`."""

    def __init__(self, nlp: Language, *, trained: bool = False, rule_names: bool = True) -> None:
        self._nlp = nlp
        self._trained = trained
        self._rule_names = rule_names
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

    @property
    def trained(self) -> bool:
        """True when a trained pipeline's NER finds names too (else only the rules do)."""
        return self._trained

    def spans(self, text: str, *, known: Iterable[tuple[str, str]] = (), booking_refs: bool = False) -> list[Span]:
        """Every PII span of ``text`` as ``(start, end, label)`` (overlapping spans possible)."""
        spans: list[Span] = []
        doc = self._nlp(text)
        for _, start, end in self._matcher(doc):
            span = doc[start:end]
            spans.append((span.start_char, span.end_char, "EMAIL"))
        if self._trained:
            spans.extend((ent.start_char, ent.end_char, "NAME") for ent in doc.ents if ent.label_ == "PERSON")
        spans.extend(pattern_spans(text))
        if self._rule_names:
            spans.extend(name_spans(text))
        spans.extend(known_value_spans(text, known))
        if booking_refs:
            spans.extend(booking_ref_spans(text))
        return spans

    def mask(self, text: str, *, known: Iterable[tuple[str, str]] = (), booking_refs: bool = False) -> MaskResult:
        """Replace every PII span of ``text`` with its placeholder.

        ``known``: (kind, value) pairs the conversation holds (``("last_name", "Müller")``), masked
        case- and accent-insensitively; ``booking_refs``: mask every booking reference too.
        """
        return apply_spans(text, self.spans(text, known=known, booking_refs=booking_refs))
