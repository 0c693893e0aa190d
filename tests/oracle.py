"""The check every booking test ends with, straight from PostgreSQL: no seat is sold twice."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Booking, BookingStatus, Seat, SeatState

SEAT_STATE_OF = {
    BookingStatus.PENDING_PAYMENT: SeatState.RESERVED,
    BookingStatus.CONFIRMED: SeatState.SOLD,
}


async def double_sold_seats(engine: AsyncEngine, event_id: uuid.UUID) -> list[uuid.UUID]:
    """Seats that belong to more than one live booking."""
    async with engine.connect() as conn:
        live = await conn.execute(
            select(Booking.seat_ids).where(
                Booking.event_id == event_id, Booking.status.in_(SEAT_STATE_OF)
            )
        )
        counts = Counter(seat for (seat_ids,) in live for seat in seat_ids)
    return [seat for seat, count in counts.items() if count > 1]


async def assert_consistent(engine: AsyncEngine, event_id: uuid.UUID) -> int:
    """No seat in two live bookings, and every seat's state matches its booking's.
    Returns the number of seats taken by live bookings."""
    assert await double_sold_seats(engine, event_id) == []
    async with engine.connect() as conn:
        bookings = {
            b.id: b
            for b in await conn.execute(
                select(Booking.id, Booking.status, Booking.seat_ids).where(
                    Booking.event_id == event_id
                )
            )
        }
        seats = list(
            await conn.execute(
                select(Seat.id, Seat.state, Seat.booking_id).where(Seat.event_id == event_id)
            )
        )
    owner_of = {
        seat: booking.id
        for booking in bookings.values()
        if booking.status in SEAT_STATE_OF
        for seat in booking.seat_ids
    }
    for seat in seats:
        if seat.id in owner_of:
            booking = bookings[owner_of[seat.id]]
            assert seat.booking_id == booking.id, seat
            assert seat.state is SEAT_STATE_OF[booking.status], seat
        else:
            assert seat.state is SeatState.AVAILABLE, seat
    return len(owner_of)
