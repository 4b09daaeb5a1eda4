"""Who the customer is: the e-mail address and the last name."""

from __future__ import annotations

import re
import unicodedata

from tandem.errors import Invalid

from ._text import _WHITESPACE, _clean

# --------------------------------------------------------------------------- e-mail

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+'\-])"
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
    r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
)


def parse_email(text: str) -> str:
    """Return the one e-mail address in the text, lower-cased and validated.

    The local part uses the usual characters (no spaces, no leading/trailing/double dots,
    at most 64 characters), the domain has at least one dot and a TLD of two or more
    letters, and the whole address is at most 254 characters.

    Raises:
        Invalid: ``invalid_email`` when there is no valid address, or more than one.
    """
    cleaned = _clean(text, limit=600)
    found: set[str] = {m.lower() for m in _EMAIL.findall(cleaned)}
    valid = {e for e in found if len(e) <= 254 and len(e.split("@", 1)[0]) <= 64}
    if len(valid) == 1 and len(found) == 1:
        return valid.pop()
    message = "Please give just one e-mail address." if len(valid) > 1 else "That does not look like an e-mail address."
    raise Invalid(message, reason="invalid_email")


# --------------------------------------------------------------------------- last name

_NAME_PREFIX = re.compile(
    r"^(?:(?:my|the|our)\s+)?(?:(?:last|family|sur)\s*-?\s*name|surname|lastname|name)"
    r"(?:\s+(?:is|was|would be|=))?\s*[:=\-]?\s*"
    r"|^(?:it'?s|it is|that'?s|that is|this is|i'?m|i am|i'm|mr\.?|mrs\.?|ms\.?|miss|dr\.?)\s+",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"[\s,;!?]*(?:,?\s*(?:thanks|thank you|thx|please|pls))?[\s.,;!?]*$", re.IGNORECASE)
_NAME_PARTICLES = frozenset(
    {
        "van",
        "der",
        "den",
        "de",
        "del",
        "della",
        "di",
        "da",
        "du",
        "dos",
        "das",
        "do",
        "von",
        "zu",
        "la",
        "le",
        "ter",
        "ten",
        "te",
        "bin",
        "binti",
        "ibn",
        "al",
        "el",
        "y",
        "af",
        "av",
    }
)
_NAME_ALLOWED_PUNCT = frozenset(" '-.")


def _capitalise_part(part: str) -> str:
    """Capitalise one hyphen/apostrophe-free piece; keep deliberate mixed case ("McDonald")."""
    if not part or (part != part.lower() and part != part.upper()):
        return part
    lower = part.lower()
    if lower.startswith("mc") and len(lower) > 2:
        return "Mc" + lower[2:3].upper() + lower[3:]
    return lower[:1].upper() + lower[1:]


def _capitalise_word(word: str) -> str:
    pieces = re.split(r"([\-'])", word)
    out = []
    for i, piece in enumerate(pieces):
        if piece in ("-", "'"):
            out.append(piece)
        elif i >= 2 and pieces[i - 1] == "'" and len(piece) <= 1:
            out.append(piece.lower())  # possessive-like endings: "D'Arcy" vs "Ng'"
        else:
            out.append(_capitalise_part(piece))
    return "".join(out)


def parse_last_name(text: str) -> str:
    """Return the customer's last name, tidied and sensibly title-cased.

    Strips lead-ins ("my last name is", "it's", "surname:"), keeps particles such as
    "van der" in lower case, keeps apostrophes and hyphens ("O'Brien", "Smith-Jones") and
    any script (Müller, Thai). Allowed: letters, spaces, apostrophes, hyphens, dots; 1–60
    characters.

    Raises:
        Invalid: ``invalid_last_name`` (digits, "@", other symbols, empty or too long).
    """
    cleaned = _clean(text, limit=200)
    for _ in range(3):  # "my surname is: it's X" — peel a few lead-ins at most
        peeled = _NAME_PREFIX.sub("", cleaned, count=1).strip()
        if peeled == cleaned:
            break
        cleaned = peeled
    cleaned = _NAME_SUFFIX.sub("", cleaned).strip(" \"'").strip()
    cleaned = _WHITESPACE.sub(" ", cleaned)
    if not cleaned or len(cleaned) > 60:
        raise Invalid("Please type your last name (letters only).", reason="invalid_last_name")
    for ch in cleaned:
        if ch in _NAME_ALLOWED_PUNCT:
            continue
        if not unicodedata.category(ch).startswith(("L", "M")):
            raise Invalid("Please type your last name (letters only).", reason="invalid_last_name")
    if not any(unicodedata.category(ch).startswith("L") for ch in cleaned):
        raise Invalid("Please type your last name (letters only).", reason="invalid_last_name")

    words = cleaned.split(" ")
    result = []
    leading = True  # particles are lower-cased only in the leading run: "van der Berg"
    for i, word in enumerate(words):
        is_last = i == len(words) - 1
        if leading and word.lower() in _NAME_PARTICLES and not is_last:
            result.append(word.lower())
        else:
            leading = False
            result.append(_capitalise_word(word))
    return " ".join(result)
