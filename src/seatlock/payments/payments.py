"""Payments: verified exactly once, refunded when a seat cannot be delivered (initiation
is in `initiation`). No lock, Redis or PostgreSQL, is held while a provider is called."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.bookings.seats import take_seats
from seatlock.errors import Conflict, InvalidInput, NotFound
from seatlock.holds.store import HoldStore
from seatlock.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    ProviderNotification,
    SeatState,
)
from seatlock.ops.metrics import BOOKINGS, LATE_PAYMENTS, PAYMENTS, REFUNDS
from seatlock.ops.request_log import record
from seatlock.payments.providers.base import InvalidCallback, Outcome, PaymentProvider
from seatlock.redis_client import Breaker

logger = logging.getLogger("seatlock")

Providers = Mapping[PaymentMethod, PaymentProvider]


class AmountMismatch(InvalidInput):
    slug = "amount-mismatch"
    title = "The paid amount does not match the booking"


async def get_payment(
    session: AsyncSession, principal: Principal, payment_id: uuid.UUID
) -> Payment:
    payment = await session.get(Payment, payment_id)
    if payment is None or not principal.may_see(payment.user_id):
        raise NotFound("no such payment")
    return payment


def _provider_of(providers: Providers, payment: Payment) -> PaymentProvider:
    return providers[payment.method]


async def verify_payment(
    session: AsyncSession,
    store: HoldStore,
    breaker: Breaker,
    providers: Providers,
    principal: Principal,
    payment_id: uuid.UUID,
    callback: Mapping[str, str],
) -> Payment:
    payment = await get_payment(session, principal, payment_id)
    if payment.provider_reference is None:
        raise Conflict("the payment was never initiated with its provider")
    # Ends the read transaction: nothing is held while the provider answers.
    await session.commit()
    outcome = await _provider_of(providers, payment).verify(payment.provider_reference, callback)
    return await settle(session, store, breaker, providers, payment.id, outcome)


async def receive_webhook(
    session: AsyncSession,
    store: HoldStore,
    breaker: Breaker,
    providers: Providers,
    provider_name: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> None:
    provider = next((p for p in providers.values() if p.name == provider_name), None)
    if provider is None:
        raise NotFound("no such payment provider")
    outcome = await provider.parse_webhook(raw_body, headers)
    if outcome.provider_event_id is None:
        raise InvalidCallback("the notification carries no id")
    payment_id = await session.scalar(
        select(Payment.id).where(
            Payment.provider == provider_name,
            Payment.provider_reference == outcome.provider_reference,
        )
    )
    if payment_id is None:
        raise InvalidCallback("the notification names no payment of ours")
    notice = (provider_name, outcome.provider_event_id)
    await settle(session, store, breaker, providers, payment_id, outcome, notification=notice)


async def _first_notice(session: AsyncSession, notification: tuple[str, str]) -> bool:
    """Record a provider's notification in the settling transaction, so that it counts as
    handled exactly when its effect is committed. False for a replay."""
    provider_name, notification_id = notification
    recorded = await session.scalar(
        insert(ProviderNotification)
        .values(provider=provider_name, notification_id=notification_id)
        .on_conflict_do_nothing()
        .returning(ProviderNotification.notification_id)
    )
    return recorded is not None


async def settle(
    session: AsyncSession,
    store: HoldStore,
    breaker: Breaker,
    providers: Providers,
    payment_id: uuid.UUID,
    outcome: Outcome,
    notification: tuple[str, str] | None = None,
) -> Payment:
    """Apply a provider's outcome to a payment exactly once, however often it arrives.
    `notification` is the provider and its notification id when the outcome came as a
    webhook."""
    payment = await session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    assert payment is not None
    if outcome.provider_reference != payment.provider_reference:
        await session.rollback()
        raise InvalidCallback("the outcome is for another payment")
    replay = notification is not None and not await _first_notice(session, notification)
    # A failed attempt is not final: the buyer may try another card on the same checkout.
    open_statuses = (PaymentStatus.INITIATED, PaymentStatus.FAILED)
    if replay or payment.status not in open_statuses or outcome.status == "pending":
        await session.commit()  # settled before, or nothing to settle: release the lock
        return payment
    if outcome.status == "failed":
        payment.status = PaymentStatus.FAILED
        await session.commit()
        _settled(payment, "failed")
        return payment
    if (outcome.amount_minor, outcome.currency) != (payment.amount_minor, payment.currency):
        payment.status, payment.failure_reason = PaymentStatus.REFUND_REQUIRED, "amount mismatch"
        await session.commit()
        _settled(payment, "amount_mismatch")
        await refund(session, providers, payment)
        raise AmountMismatch(
            f"paid {outcome.amount_minor} {outcome.currency}, "
            f"the booking costs {payment.amount_minor} {payment.currency}"
        )
    sold = await _confirm(session, payment)
    await session.commit()
    _settled(payment, "succeeded" if sold else "undeliverable")
    if sold:
        # Redis only mirrors the sale (its cache is rebuilt from PostgreSQL when stale): the
        # breaker spares the buyer the Redis timeout while Redis is down or frozen.
        _, mirrored = await breaker.attempt(
            lambda: store.mark_taken(payment.event_id, SeatState.SOLD, sold, "payment"), None
        )
        if not mirrored:
            # Redis's cache of sold seats is dropped once Redis answers again.
            store.stale_events.add(payment.event_id)
    else:
        await refund(session, providers, payment)
    return payment


def _settled(payment: Payment, outcome: str) -> None:
    """Counts and logs a payment settled (after its commit); a success confirms its booking."""
    PAYMENTS.labels(payment.provider, outcome).inc()
    if outcome == "succeeded":
        BOOKINGS.labels("confirmed").inc()
    record(
        "payment settled",
        payment_id=str(payment.id),
        booking_id=str(payment.booking_id),
        outcome=outcome,
    )


async def _confirm(session: AsyncSession, payment: Payment) -> list[uuid.UUID]:
    """Sell the booking's seats to a succeeded payment; returns them, or [] when the payment
    must be refunded instead (the booking or its event was cancelled, the booking paid
    already, or its seats are gone)."""
    booking = await session.get(
        Booking, payment.booking_id, with_for_update=True, populate_existing=True
    )
    assert booking is not None
    seats: list[uuid.UUID] = []
    event_status = await session.scalar(select(Event.status).where(Event.id == booking.event_id))
    # Nothing more is sold for a cancelled event: its payments are refunded.
    on = event_status is not EventStatus.CANCELLED
    if on and booking.status is BookingStatus.PENDING_PAYMENT:
        seats = await take_seats(session, booking, SeatState.RESERVED, SeatState.SOLD)
    elif on and booking.status is BookingStatus.EXPIRED:
        # A late payment: the same seats, if every one of them is still free.
        savepoint = await session.begin_nested()
        seats = await take_seats(session, booking, SeatState.AVAILABLE, SeatState.SOLD)
        if len(seats) != len(booking.seat_ids):
            await savepoint.rollback()
            seats = []
        # Counted before the commit that follows: a late payment is rare and a failed
        # commit rarer.
        LATE_PAYMENTS.labels("confirmed" if seats else "refunded").inc()
    if seats:
        booking.status = BookingStatus.CONFIRMED
        payment.status = PaymentStatus.SUCCEEDED
    else:
        payment.status = PaymentStatus.REFUND_REQUIRED
        payment.failure_reason = (
            f"booking {booking.status.value}; seats not available" if on else "event cancelled"
        )
    return seats


async def refund(session: AsyncSession, providers: Providers, payment: Payment) -> None:
    """Ask the provider to refund a payment marked refund_required. A provider that cannot
    be reached leaves it marked, for a retry or an operator."""
    assert payment.provider_reference is not None
    try:
        reference = await _provider_of(providers, payment).refund(
            payment.provider_reference, payment.amount_minor, payment.currency
        )
    except Exception:
        REFUNDS.labels(payment.provider, "failed").inc()
        logger.exception("refund of payment %s failed; it stays refund_required", payment.id)
        return
    payment.status, payment.refund_reference = PaymentStatus.REFUNDED, reference
    await session.commit()
    REFUNDS.labels(payment.provider, "refunded").inc()


async def refund_cancelled(session: AsyncSession, providers: Providers, booking: Booking) -> None:
    """After a confirmed booking was cancelled: refund what was paid for it."""
    paid = await session.scalars(
        select(Payment).where(
            Payment.booking_id == booking.id, Payment.status == PaymentStatus.SUCCEEDED
        )
    )
    for payment in list(paid):
        payment.status = PaymentStatus.REFUND_REQUIRED
        payment.failure_reason = "booking cancelled"
        await session.commit()
        await refund(session, providers, payment)
