"""Input guard and PII masking: what runs before a customer's text is logged or leaves the process."""

from tandem.guard.input import GuardResult, InputGuard
from tandem.guard.pii import PiiMasker, luhn_valid

__all__ = ["GuardResult", "InputGuard", "PiiMasker", "luhn_valid"]
