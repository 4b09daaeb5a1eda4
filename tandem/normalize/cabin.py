"""The cabin: economy or business (the airline has no first class)."""

from __future__ import annotations

import difflib
import re
from typing import Literal

from tandem.errors import Invalid

from ._text import _clean

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
        raise Invalid("There is no first class on our flights; we offer economy and business.", reason="no_first_class")
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
