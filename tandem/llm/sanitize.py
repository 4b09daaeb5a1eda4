"""The output sanitiser: what a model wrote is cleaned before a customer sees it.

PII is masked, links to hosts outside the allow-list are removed, Markdown and HTML markup is
flattened to plain text, the length is capped on a sentence boundary, and an answer that repeats
the system prompt is refused outright.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tandem.guard.pii import PiiMasker

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"')\]]+")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_MD_MARKS = re.compile(r"(\*\*|__|`{1,3}|~~|^#{1,6}\s*|^>\s*|^\s*[-*+]\s+)", re.MULTILINE)
_WS = re.compile(r"\s+")
_WORDS = re.compile(r"[a-z]+")
# A run of this many words copied from the system prompt counts as leaking it.
_LEAK_SHINGLE = 8


class OutputSanitizer:
    """Cleans model answers; build once per chain."""

    def __init__(
        self, masker: PiiMasker, *, allowed_hosts: Iterable[str], max_chars: int, secret_texts: Iterable[str] = ()
    ) -> None:
        self._masker = masker
        self._allowed = tuple(h.strip().lower() for h in allowed_hosts if h.strip())
        self._max_chars = max_chars
        self._shingles = frozenset(s for text in secret_texts for s in _shingles(text))

    def _host_allowed(self, url: str) -> bool:
        host = (urlsplit(url if "://" in url else "https://" + url).hostname or "").lower()
        return any(host == h or host.endswith("." + h) for h in self._allowed)

    def leaks_secret(self, text: str) -> bool:
        """True when ``text`` repeats a run of words of the system prompt."""
        return bool(self._shingles) and not self._shingles.isdisjoint(_shingles(text))

    def clean(self, text: str) -> str:
        """Plain, masked, allow-listed and length-capped text ('' when nothing usable is left)."""
        if self.leaks_secret(text):
            return ""

        def link(match: re.Match[str]) -> str:
            label, url = match.group(1), match.group(2)
            return f"{label} ({url})" if url and self._host_allowed(url) else label

        text = _MD_LINK.sub(link, text)
        text = _HTML_TAG.sub(" ", text)
        text = _URL.sub(lambda m: m.group() if self._host_allowed(m.group()) else "", text)
        text = _MD_MARKS.sub("", text)
        text = self._masker.mask(text).text
        text = _WS.sub(" ", text).strip()
        text = re.sub(r"\s+([.,;:!?])", r"\1", text)
        return _cap(text, self._max_chars)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + _LEAK_SHINGLE]) for i in range(len(words) - _LEAK_SHINGLE + 1)}


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    # Keep whole sentences when that keeps most of the answer; else cut on a word.
    if end >= limit // 2:
        return cut[: end + 1]
    return cut.rsplit(" ", 1)[0].rstrip(",;:") + "…"
