"""What every parser shares: the input cap, the cleaning of hostile text, number words.

Private to :mod:`tandem.normalize`; each ``parse_*`` cleans its input with :func:`_clean`
before any real work, so that the work stays bounded and only ``Invalid`` escapes.
"""

from __future__ import annotations

import re
import unicodedata

#: Inputs are cut to this many characters before any parsing (bounds the work).
MAX_INPUT_CHARS = 500

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
