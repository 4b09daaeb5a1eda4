"""The business rules of the airline and its brand: what a team adopting the project re-configures.

:class:`BusinessSettings` are the rules the services apply (time zone, currency, holds, limits,
refund approval); :class:`BrandSettings` are the names and identifiers customers see (the brand,
its flight-number prefix, its support contacts), so that re-branding changes configuration and
data (domain.yml, knowledge/, the seed), not code.
"""

from __future__ import annotations

import re
from decimal import Decimal

from pydantic import Field, field_validator

from tandem.settings.base import SettingsPart


class BusinessSettings(SettingsPart):
    """The rules the services apply."""

    # The airline's local time zone decides what "today" means for customers.
    timezone: str = Field(default="Asia/Bangkok", alias="AIRLINE_TIMEZONE")
    currency: str = Field(default="THB", alias="CURRENCY")
    schedule_days: int = Field(default=180, ge=7, le=400, alias="SCHEDULE_DAYS")
    search_max_options: int = Field(default=3, ge=1, le=10, alias="SEARCH_MAX_OPTIONS")
    max_passengers: int = Field(default=9, ge=1, le=9, alias="MAX_PASSENGERS")
    # Refunds above this amount (in CURRENCY) need an agent's approval.
    refund_approval_threshold: Decimal = Field(default=Decimal("20000"), ge=0, alias="REFUND_APPROVAL_THRESHOLD")
    payment_link_base: str = Field(default="https://pay.andaman-air.example/checkout/", alias="PAYMENT_LINK_BASE")
    hold_minutes: int = Field(default=30, ge=5, le=1440, alias="BOOKING_HOLD_MINUTES")
    # Unpaid holds block seats for everyone else (issue 10, finding 2). Open holds (held, not
    # expired) per conversation / e-mail / client key (the gateway's), and the share of what a
    # cabin has left to sell (seats left + seats held) that unpaid holds may take together.
    booking_max_holds_per_conversation: int = Field(default=3, ge=1, alias="BOOKING_MAX_HOLDS_PER_CONVERSATION")
    booking_max_holds_per_email: int = Field(default=3, ge=1, alias="BOOKING_MAX_HOLDS_PER_EMAIL")
    booking_max_holds_per_client: int = Field(default=5, ge=1, alias="BOOKING_MAX_HOLDS_PER_CLIENT")
    booking_max_held_share: float = Field(default=0.5, gt=0, le=1, alias="BOOKING_MAX_HELD_SHARE")
    # Failed booking lookups (reference + last name), counted in the database across conversations
    # (finding 3): at the maximum within LOOKUP_LOCKOUT_MINUTES the reference / client / conversation
    # is locked until its oldest failure in the window is that old.
    lookup_max_failures_per_reference: int = Field(default=3, ge=1, alias="LOOKUP_MAX_FAILURES_PER_REFERENCE")
    lookup_max_failures_per_conversation: int = Field(default=5, ge=1, alias="LOOKUP_MAX_FAILURES_PER_CONVERSATION")
    lookup_max_failures_per_client: int = Field(default=10, ge=1, alias="LOOKUP_MAX_FAILURES_PER_CLIENT")
    lookup_lockout_minutes: int = Field(default=15, ge=1, le=1440, alias="LOOKUP_LOCKOUT_MINUTES")
    # New handoff tickets per hour (finding 6); a conversation has at most one open handoff anyway.
    handoff_limit_per_client: int = Field(default=3, ge=1, alias="HANDOFF_LIMIT_PER_CLIENT")
    handoff_limit_per_conversation: int = Field(default=3, ge=1, alias="HANDOFF_LIMIT_PER_CONVERSATION")
    # `python -m tandem.cli seed` adds the public demo customers and bookings only when asked
    # (`seed --demo` or this): their references and names are published in the README.
    seed_demo_data: bool = Field(default=False, alias="SEED_DEMO_DATA")

    password_reset_ttl_minutes: int = Field(default=30, ge=5, le=1440, alias="PASSWORD_RESET_TTL_MINUTES")
    password_reset_limit_per_email: int = Field(default=3, ge=1, alias="PASSWORD_RESET_LIMIT_PER_EMAIL")
    password_reset_limit_per_conversation: int = Field(default=5, ge=1, alias="PASSWORD_RESET_LIMIT_PER_CONVERSATION")
    password_reset_window_seconds: int = Field(default=3600, ge=60, alias="PASSWORD_RESET_WINDOW_SECONDS")


class BrandSettings(SettingsPart):
    """The brand customers see: its name, its flight numbers' prefix, its support contacts."""

    name: str = Field(default="Andaman Air", min_length=1, max_length=80, alias="BRAND_NAME")
    # One line about the brand for the model's instructions ("You are the assistant of <name>, <description>").
    description: str = Field(default="an airline based in Bangkok", max_length=200, alias="BRAND_DESCRIPTION")
    # Flight numbers are this prefix (the IATA designator) and 2-4 digits: AN204.
    flight_prefix: str = Field(default="AN", alias="FLIGHT_NUMBER_PREFIX")
    # Where a customer can reach people when the bot cannot help (empty: not mentioned).
    support_email: str = Field(default="support@andaman-air.example", alias="SUPPORT_EMAIL")
    support_phone: str = Field(default="", alias="SUPPORT_PHONE")
    support_url: str = Field(default="https://www.andaman-air.example/help", alias="SUPPORT_URL")

    @field_validator("flight_prefix")
    @classmethod
    def _designator(cls, value: str) -> str:
        value = value.strip().upper()
        # IATA airline designators: two characters, letters or digits, at least one letter.
        if not re.fullmatch(r"[A-Z0-9]{2}", value) or value.isdigit():
            raise ValueError("FLIGHT_NUMBER_PREFIX must be a two-character airline designator such as AN")
        return value

    def contacts(self) -> str:
        """The support contacts as one phrase ("support@x.example, +66 2 000 0000 or https://x/help")."""
        parts = [p for p in (self.support_email, self.support_phone, self.support_url) if p]
        if len(parts) <= 1:
            return "".join(parts)
        return ", ".join(parts[:-1]) + " or " + parts[-1]
