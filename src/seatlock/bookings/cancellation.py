"""Cancelling a booking: its seats are freed at once, and what was paid for it refunded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.bookings.bookings import LIVE, get_booking
from seatlock.bookings.seats import free_seats
from seatlock.errors import Conflict, Forbidden
from seatlock.holds.store import HoldStore
from seatlock.models import Booking, BookingStatus, Event, Role
from seatlock.ops.metrics import BOOKINGS
from seatlock.ops.request_log import record
from seatlock.payments.payments import Providers, refund_cancelled
from seatlock.redis_client import best_effort


async def cancel_booking(
    session: AsyncSession,
    store: HoldStore,
    providers: Providers,
    principal: Principal,
    booking_id: uuid.UUID,
    cutoff: timedelta,
) -> Booking:
    """Cancel a live booking, free its seats and refund what was paid for it.

    A pending booking can always be cancelled by its owner; a confirmed one only until the
    cutoff before the event starts, except by an admin. The Redis cache and the refunds
    follow the commit.
    """
    booking = await get_booking(session, principal, booking_id)
    await session.refresh(booking, with_for_update=True)
    if booking.status not in LIVE:
        raise Conflict(f"the booking is already {booking.status.value}")
    event = await session.get(Event, booking.event_id)
    assert event is not None
    too_late = datetime.now(UTC) > event.starts_at - cutoff
    if booking.status is BookingStatus.CONFIRMED and too_late and principal.role is not Role.ADMIN:
        raise Forbidden("confirmed bookings of this event can no longer be cancelled")
    booking.status = BookingStatus.CANCELLED
    freed = await free_seats(session, booking)
    await session.commit()
    BOOKINGS.labels("cancelled").inc()
    record("booking cancelled", booking_id=str(booking.id))
    if freed:
        await best_effort(store.free_taken(booking.event_id, freed, "cancellation"))
    await refund_cancelled(session, providers, booking)
    return booking
