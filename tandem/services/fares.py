"""Fare rules and the cancellation quote: what cancelling a booking now would refund.

The whole cancellation policy is :data:`FARE_RULES` (change it there) and :func:`quote`:

=========================  ===================================  ======================
situation                  refund                               fee
=========================  ===================================  ======================
booking ``held`` (unpaid)  0, nothing was paid                  none
flight cancelled by us     100 % of the amount paid             none
business, any time before  100 % minus the fee                  1,000 THB per passenger
departure
economy, >= 7 days before  75 %                                 none
economy, 1-7 days before   50 %                                 none
economy, < 24 h before     0 %                                  none
after departure            not cancellable: ``Conflict(reason="departed")``
already cancelled          ``Conflict(reason="already_cancelled")``
cancellation pending       ``Conflict(reason="cancellation_pending")``
=========================  ===================================  ======================

Times are measured against the scheduled departure. A refund above
``settings.refund_approval_threshold`` needs an agent's approval (``needs_approval``); what that
means for the booking is :func:`tandem.services.bookings.cancel_booking`'s business. Nothing here
reads or writes the database: the caller passes the booking and its flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from tandem.db.models import Booking, Flight
from tandem.errors import Conflict
from tandem.services.common import to_local
from tandem.settings import BusinessSettings

CENT = Decimal("0.01")


@dataclass(frozen=True)
class FareRule:
    """Refund share and per-passenger fee when cancelling at least ``min_notice`` before departure."""

    cabin: str
    min_notice: timedelta
    refund_share: Decimal
    fee_per_passenger: Decimal
    code: str


# Ordered: the first rule of the cabin whose notice is met applies.
FARE_RULES: tuple[FareRule, ...] = (
    FareRule("business", timedelta(0), Decimal("1"), Decimal("1000"), "business_fee"),
    FareRule("economy", timedelta(days=7), Decimal("0.75"), Decimal("0"), "economy_7d_plus"),
    FareRule("economy", timedelta(days=1), Decimal("0.50"), Decimal("0"), "economy_1_to_7d"),
    FareRule("economy", timedelta(0), Decimal("0"), Decimal("0"), "economy_under_24h"),
)


@dataclass(frozen=True)
class CancellationQuote:
    reference: str
    booking_status: str
    flight_number: str
    cabin: str
    passengers: int
    departure_local: datetime
    total_amount: Decimal
    refund_amount: Decimal
    fee: Decimal
    currency: str
    rule: str
    needs_approval: bool


def quote(booking: Booking, flight: Flight, *, settings: BusinessSettings, now: datetime) -> CancellationQuote:
    """What cancelling ``booking`` (on ``flight``) at ``now`` would refund, under :data:`FARE_RULES`.

    Raises ``Conflict`` with reason ``already_cancelled``, ``cancellation_pending`` or ``departed``.
    """
    if booking.status == "cancelled":
        raise Conflict("the booking is already cancelled", reason="already_cancelled")
    if booking.status == "cancellation_pending":
        raise Conflict("a cancellation is already waiting for approval", reason="cancellation_pending")
    if flight.status != "cancelled" and now >= flight.departure_at:
        raise Conflict("the flight has already departed", reason="departed")

    fee = Decimal("0")
    if booking.status == "held":
        refund, rule = Decimal("0"), "held_unpaid"
    elif flight.status == "cancelled":
        refund, rule = booking.total_amount, "flight_cancelled"
    else:
        notice = flight.departure_at - now
        fare_rule = next(r for r in FARE_RULES if r.cabin == booking.cabin and notice >= r.min_notice)
        fee = fare_rule.fee_per_passenger * booking.passengers
        refund = max(Decimal("0"), booking.total_amount * fare_rule.refund_share - fee)
        rule = fare_rule.code
    refund = refund.quantize(CENT, rounding=ROUND_HALF_UP)
    return CancellationQuote(
        reference=booking.reference,
        booking_status=booking.status,
        flight_number=flight.flight_number,
        cabin=booking.cabin,
        passengers=booking.passengers,
        departure_local=to_local(flight.departure_at, settings.timezone),
        total_amount=booking.total_amount,
        refund_amount=refund,
        fee=fee.quantize(CENT),
        currency=booking.currency,
        rule=rule,
        needs_approval=refund > settings.refund_approval_threshold,
    )
