"""Input guard and PII masking: what runs before a customer's text is logged or leaves the process.

The names are imported lazily: :mod:`tandem.guard.patterns` (regular expressions only) is used
by the audit log, which must not load spaCy for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tandem.guard.input import GuardResult, InputGuard
    from tandem.guard.pii import PiiMasker, luhn_valid

__all__ = ["GuardResult", "InputGuard", "PiiMasker", "luhn_valid"]


def __getattr__(name: str) -> Any:
    if name in ("GuardResult", "InputGuard"):
        from tandem.guard import input as module
    elif name in ("PiiMasker", "luhn_valid"):
        from tandem.guard import pii as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'tandem.guard' has no attribute {name!r}")
    return getattr(module, name)
