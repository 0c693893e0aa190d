"""Payment initiation: a payment written, its provider asked for a checkout, under an
Idempotency-Key whose lease lets a retry finish what a crashed attempt started."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.bookings.bookings import get_booking
from seatlock.errors import Conflict, DomainError, InvalidInput, NotFound
from seatlock.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
)
from seatlock.payments.payments import Providers
from seatlock.payments.providers.base import Checkout, PaymentProvider


class Progress(Protocol):
    """The Idempotency-Key an initiation runs under (`idempotency.replays.Lease`)."""

    @property
    def earlier(self) -> uuid.UUID | None:
        """The payment an attempt with the same key made before it died, if any."""
        ...

    async def started(self, resource_id: uuid.UUID) -> None: ...

    async def answer(self, result: Payment) -> None: ...


async def initiate_payment(
    session: AsyncSession,
    providers: Providers,
    principal: Principal,
    booking_id: uuid.UUID,
    method: PaymentMethod,
    return_url: str,
    progress: Progress,
) -> Payment:
    """Two transactions around the provider call. The first writes the payment with its
    key's claim; the second, its provider reference with the key's answer. A crash between
    them leaves a payment that the retry taking over the key finishes, and a provider that
    fails leaves it failed: never a payment `initiated` that nobody will complete."""
    earlier = await _unfinished(session, progress.earlier)
    try:
        booking, provider = await _payable(session, providers, principal, booking_id, method)
    except DomainError:
        if earlier is not None:  # committed with the refusal that ends this key
            earlier.status = PaymentStatus.FAILED
            earlier.failure_reason = "the booking can no longer be paid"
        raise
    payment = earlier or Payment(
        id=uuid.uuid4(),
        booking_id=booking.id,
        event_id=booking.event_id,
        user_id=principal.id,
        method=method,
        provider=provider.name,
        amount_minor=booking.total_minor,
        currency=booking.currency,
        status=PaymentStatus.INITIATED,
    )
    if earlier is None:
        session.add(payment)
        await progress.started(payment.id)
    await session.commit()
    checkout = Checkout(
        payment_id=payment.id,
        booking_id=booking.id,
        amount_minor=booking.total_minor,
        currency=booking.currency,
        description=f"Booking {booking.id}",
        return_url=return_url,
        customer_email=principal.email,
    )
    try:
        initiated = await provider.initiate(checkout)
    except Exception:
        payment.status, payment.failure_reason = PaymentStatus.FAILED, "initiation failed"
        await session.commit()
        raise
    payment.provider_reference = initiated.provider_reference
    payment.checkout_url = initiated.checkout_url
    await progress.answer(payment)
    await session.commit()
    return payment


async def _unfinished(session: AsyncSession, payment_id: uuid.UUID | None) -> Payment | None:
    """The payment an earlier attempt made, if it is still waiting for its provider call."""
    if payment_id is None:
        return None
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.status is not PaymentStatus.INITIATED:
        return None
    return payment if payment.provider_reference is None else None


async def _payable(
    session: AsyncSession,
    providers: Providers,
    principal: Principal,
    booking_id: uuid.UUID,
    method: PaymentMethod,
) -> tuple[Booking, PaymentProvider]:
    booking = await get_booking(session, principal, booking_id)
    if booking.user_id != principal.id:
        raise NotFound("no such booking")
    if booking.status is not BookingStatus.PENDING_PAYMENT:
        raise Conflict(f"the booking is {booking.status.value.replace('_', ' ')}")
    event_status = await session.scalar(select(Event.status).where(Event.id == booking.event_id))
    if event_status is EventStatus.CANCELLED:
        raise Conflict("the event was cancelled")
    provider = providers[method]
    if provider.currencies is not None and booking.currency not in provider.currencies:
        raise InvalidInput(
            f"{method.value} takes {', '.join(sorted(provider.currencies))}; "
            f"the booking is in {booking.currency}"
        )
    return booking, provider
