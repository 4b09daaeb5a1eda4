"""The output sanitiser: what a model wrote is cleaned before a customer sees it.

PII is masked, links to hosts outside the allow-list are removed, Markdown and HTML markup is
flattened to plain text, the length is capped on a sentence boundary, and an answer that repeats
the system prompt is refused outright.

Both checks assume a model that obeys an attacker (tests/security/test_injection_corpus.py runs
one): a host is read as a browser reads it (a backslash ends it, like a slash), and the system
prompt is recognised however it is disguised — copied, spelled out letter by letter or hyphenated
(compared on letters and digits only), or base64-encoded (runs are decoded and compared too). The
form note that the prompt carries inside a form counts as part of it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tandem.guard.pii import PiiMasker
from tandem.llm.prompts import FORM_NOTE

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"')\]]+")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_MD_MARKS = re.compile(r"(\*\*|__|`{1,3}|~~|^#{1,6}\s*|^>\s*|^\s*[-*+]\s+)", re.MULTILINE)
_WS = re.compile(r"\s+")
_WORDS = re.compile(r"[a-z]+")
# A run of this many words copied from the system prompt counts as leaking it.
_LEAK_SHINGLE = 8
# ...and so does a run of this many of its letters and digits, whatever separates them.
_LEAK_CHARS = 40
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")


class OutputSanitizer:
    """Cleans model answers; build once per chain."""

    def __init__(
        self, masker: PiiMasker, *, allowed_hosts: Iterable[str], max_chars: int, secret_texts: Iterable[str] = ()
    ) -> None:
        self._masker = masker
        self._allowed = tuple(h.strip().lower() for h in allowed_hosts if h.strip())
        self._max_chars = max_chars
        secrets = [*secret_texts]
        if secrets:
            secrets.append(FORM_NOTE.replace("{form}", " ").replace("{slot}", " "))
        self._shingles = frozenset(s for text in secrets for s in _shingles(text))
        self._windows = frozenset(w for text in secrets for w in _windows(_alnum(text)))

    def _host_allowed(self, url: str) -> bool:
        # Browsers read a backslash as "/" in http(s) URLs: https://evil.example\@ours.example goes to evil.example.
        url = url.replace("\\", "/")
        host = (urlsplit(url if "://" in url else "https://" + url).hostname or "").lower()
        return any(host == h or host.endswith("." + h) for h in self._allowed)

    def leaks_secret(self, text: str) -> bool:
        """True when ``text`` repeats the system prompt: a run of its words or of its letters, also
        inside a base64-encoded run."""
        if not self._shingles and not self._windows:
            return False
        for candidate in (text, *_decoded_runs(text)):
            if not self._shingles.isdisjoint(_shingles(candidate)):
                return True
            if not self._windows.isdisjoint(_windows(_alnum(candidate))):
                return True
        return False

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


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _windows(letters: str) -> set[str]:
    return {letters[i : i + _LEAK_CHARS] for i in range(len(letters) - _LEAK_CHARS + 1)}


def _decoded_runs(text: str) -> list[str]:
    """Base64-looking runs decoded as UTF-8 (a run cut short decodes up to its last whole group)."""
    decoded: list[str] = []
    for run in _BASE64_RUN.findall(text):
        usable = run.rstrip("=")
        usable = usable[: len(usable) - len(usable) % 4]
        try:
            decoded.append(base64.b64decode(usable, validate=True).decode("utf-8", errors="ignore"))
        except (binascii.Error, ValueError):
            continue
    return decoded


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
