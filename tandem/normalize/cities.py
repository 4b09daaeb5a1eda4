"""Airports: a city, airport name, alias or IATA code (typos tolerated), and the route a
sentence names ("from A to B").

The alias table is a constant built once from :data:`tandem.airports.AIRPORTS` (no I/O).
"""

from __future__ import annotations

import difflib
import re
import unicodedata

from tandem.airports import AIRPORTS
from tandem.errors import Invalid

from ._text import _clean

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
