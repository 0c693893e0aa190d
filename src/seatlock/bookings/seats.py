"""The seat-state writes of a booking's later life: payments, cancellations and the expiry
sweep. (A booking's first write is its own, `bookings.BOOK_SEATS`.)

The conditional UPDATE in `take_seats` is what keeps a payment from selling a seat twice:
it moves only seats that are in the expected state, and its callers roll back unless it
moved all of them. Both writes leave the session's Seat objects as they were (no caller
holds any): SQLAlchemy would otherwise evaluate each WHERE against the session's objects.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.models import Booking, Seat, SeatState


def seats_available() -> ColumnElement[bool]:
    """The recheck of a late payment's write: only seats PostgreSQL still has free."""
    return Seat.state == SeatState.AVAILABLE


async def take_seats(
    session: AsyncSession, booking: Booking, from_state: SeatState, to_state: SeatState
) -> list[uuid.UUID]:
    """Move the booking's seats that are in `from_state` to `to_state`, in one conditional
    write; returns the seats it moved. Free seats are taken whoever asked for them before,
    reserved ones only when they are this booking's."""
    condition = (
        seats_available()
        if from_state is SeatState.AVAILABLE
        else (Seat.state == from_state) & (Seat.booking_id == booking.id)
    )
    # Locking the rows in id order first: two transactions wanting overlapping seats then
    # queue behind each other instead of deadlocking.
    locked = (
        select(Seat.id)
        .where(Seat.event_id == booking.event_id, Seat.id.in_(booking.seat_ids), condition)
        .order_by(Seat.id)
        .with_for_update()
    )
    moved = await session.scalars(
        update(Seat)
        .where(Seat.id.in_(locked.scalar_subquery()), condition)
        .values(state=to_state, booking_id=booking.id)
        .returning(Seat.id)
        .execution_options(synchronize_session=False)
    )
    return list(moved)


async def free_seats(session: AsyncSession, booking: Booking) -> list[uuid.UUID]:
    freed = await session.scalars(
        update(Seat)
        .where(Seat.event_id == booking.event_id, Seat.booking_id == booking.id)
        .values(state=SeatState.AVAILABLE, booking_id=None)
        .returning(Seat.id)
        .execution_options(synchronize_session=False)
    )
    return list(freed)
