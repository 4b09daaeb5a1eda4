"""The input guard: normalisation, length and character limits, known prompt-injection patterns.

The guard never calls a model: it is cheap, deterministic and runs on every fallback turn before
anything is logged or sent. Injection patterns are deliberately broad; a false positive costs a
polite refusal on one turn, a false negative is contained anyway (the model has no write tools and
its output is validated), so this is a first line, not the only one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tandem.guard.pii import PiiMasker

GuardReason = Literal["empty", "too_long", "no_text", "injection"]

_INJECTION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(ignore|disregard|forget|override|bypass|skip)\b.{0,40}\b(instructions?|rules|prompts?|guidelines|"
        r"directions|polic(y|ies)|everything (above|before))\b",
        r"\b(print|show|reveal|repeat|display|output|tell me|give me|what is|what's|what are|leak|dump|copy)\b"
        r".{0,30}\b(system|initial|hidden|original|secret|developer)\s*(prompt|message|instructions?|rules)\b",
        r"\byour (prompt|instructions|system message)\b",
        r"\b(you are|you're) now\b",
        r"\b(act|behave) as (an?|the|my)\b",
        r"\bpretend (to be|you are)\b",
        r"\b(developer|dan|god|admin|debug|jailbreak) mode\b",
        r"\bjailbreak\b",
        r"\bnew (instructions|rules|persona)\b",
        r"(^|\n)\s*(system|assistant|developer)\s*:",
        r"<\|?(im_start|im_end|system|endoftext)\|?>",
        r"\[/?(inst|sys)\]",
        r"\bdo anything now\b",
    )
)
# Zero-width and bidi-control characters are format characters (Cf) and can hide text.
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class GuardResult:
    """What the guard made of one user turn.

    ``text`` is the normalised turn (kept in the process only), ``masked`` the same with PII
    masked (the only form that may be logged or sent to a model), ``reason`` why it was refused
    (None when ``ok``), ``pii`` the kinds of PII found.
    """

    text: str
    masked: str
    ok: bool
    reason: GuardReason | None = None
    pii: tuple[str, ...] = ()

    @property
    def injection(self) -> bool:
        """True when the turn looks like a prompt-injection attempt."""
        return self.reason == "injection"


def normalise(text: str) -> str:
    """NFKC, control and format characters removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    kept = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in text
        if unicodedata.category(ch) not in ("Cf", "Co", "Cs", "Cn")
    )
    return _WHITESPACE.sub(" ", kept).strip()


def looks_like_injection(text: str) -> bool:
    """True when ``text`` matches one of the known prompt-injection patterns."""
    return any(p.search(text) for p in _INJECTION_PATTERNS)


class InputGuard:
    """Checks one user turn; build once with a :class:`PiiMasker`."""

    def __init__(self, masker: PiiMasker, *, max_chars: int = 500) -> None:
        self._masker = masker
        self._max_chars = max_chars

    @property
    def masker(self) -> PiiMasker:
        """The PII masker (also used for the conversation history and the output)."""
        return self._masker

    def check(self, raw: str, *, known: Iterable[tuple[str, str]] = ()) -> GuardResult:
        """Normalise, limit, look for injection and mask PII.

        ``known``: (kind, value) pairs the conversation already holds (the surname a form
        collected, ...), masked wherever they appear, whatever the case or accents.
        """
        known = tuple(known)
        text = normalise(raw)
        if not text:
            return GuardResult(text="", masked="", ok=False, reason="empty")
        if len(text) > self._max_chars:
            # Masked from the part we keep: a huge turn is never sent or logged in full.
            clipped = self._masker.mask(text[: self._max_chars], known=known)
            return GuardResult(text=text, masked=clipped.text, ok=False, reason="too_long", pii=clipped.found)
        masked = self._masker.mask(text, known=known)
        if not any(ch.isalnum() for ch in text):
            return GuardResult(text=text, masked=masked.text, ok=False, reason="no_text", pii=masked.found)
        if looks_like_injection(text):
            return GuardResult(text=text, masked=masked.text, ok=False, reason="injection", pii=masked.found)
        return GuardResult(text=text, masked=masked.text, ok=True, pii=masked.found)
