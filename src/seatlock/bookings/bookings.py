"""Bookings: a hold becomes a booking in one PostgreSQL transaction that rechecks every seat.

The conditional UPDATE in `_take_seats` is what prevents a double sale: it takes only seats
that are still available, and the transaction rolls back unless it took all of them. The
Redis hold before it only keeps buyers from colliding.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.errors import Conflict, Forbidden, InvalidInput, NotFound, SeatConflict
from seatlock.holds.store import HoldStore
from seatlock.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    PriceCategory,
    Role,
    Seat,
    SeatState,
)
from seatlock.redis_client import REDIS_DOWN

logger = logging.getLogger("seatlock")

LIVE = (BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED)


class SeatsTaken(SeatConflict):
    slug = "seats-taken"
    title = "Some seats were taken by someone else"


def seats_available() -> ColumnElement[bool]:
    """The recheck of the booking transaction: only seats PostgreSQL still has free."""
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
    )
    return list(moved)


async def _price(
    session: AsyncSession, event_id: uuid.UUID, seat_ids: Sequence[uuid.UUID]
) -> tuple[int, str]:
    rows = await session.execute(
        select(func.sum(PriceCategory.price_minor), PriceCategory.currency)
        .join(Seat, Seat.price_category_id == PriceCategory.id)
        .where(Seat.event_id == event_id, Seat.id.in_(seat_ids))
        .group_by(PriceCategory.currency)
    )
    totals = list(rows)
    if len(totals) != 1:
        raise InvalidInput("the seats of one booking must be priced in one currency")
    total, currency = totals[0]
    return int(total), currency


async def book_claimed_hold(
    session: AsyncSession,
    principal: Principal,
    hold_id: str,
    event_id: uuid.UUID,
    seat_ids: Sequence[uuid.UUID],
) -> Booking:
    """The booking transaction, for a hold already claimed in Redis. Raises SeatsTaken."""
    event = await session.get(Event, event_id)
    if event is None or event.status is not EventStatus.ON_SALE:
        raise Conflict("the event is no longer on sale")
    if len(seat_ids) > event.max_seats_per_booking:
        raise InvalidInput(f"at most {event.max_seats_per_booking} seats per booking")
    total, currency = await _price(session, event_id, seat_ids)
    free = total == 0
    booking = Booking(
        id=uuid.uuid4(),
        event_id=event_id,
        user_id=principal.id,
        hold_id=hold_id,
        seat_ids=list(seat_ids),
        status=BookingStatus.CONFIRMED if free else BookingStatus.PENDING_PAYMENT,
        total_minor=total,
        currency=currency,
        payment_deadline=datetime.now(UTC) + timedelta(seconds=event.payment_window_seconds),
    )
    session.add(booking)
    await session.flush()
    taken = set(
        await take_seats(
            session, booking, SeatState.AVAILABLE, SeatState.SOLD if free else SeatState.RESERVED
        )
    )
    if missing := [s for s in seat_ids if s not in taken]:
        await session.rollback()
        raise SeatsTaken("some seats were sold or reserved meanwhile", missing)
    await session.commit()
    return booking


async def create_booking(
    session: AsyncSession, store: HoldStore, principal: Principal, hold_id: str
) -> Booking:
    event_id, seat_ids = await store.claim(hold_id, principal.id)
    try:
        booking = await book_claimed_hold(session, principal, hold_id, event_id, seat_ids)
    except SeatsTaken as taken:
        await _forget_hold(session, store, principal, hold_id, event_id, taken.conflicts)
        raise
    except BaseException:
        await best_effort(store.unclaim(hold_id, principal.id))
        raise
    state = SeatState.SOLD if booking.status is BookingStatus.CONFIRMED else SeatState.RESERVED
    await best_effort(store.complete(hold_id, principal.id, state, seat_ids))
    return booking


async def _forget_hold(
    session: AsyncSession,
    store: HoldStore,
    principal: Principal,
    hold_id: str,
    event_id: uuid.UUID,
    conflicts: Sequence[uuid.UUID],
) -> None:
    """A hold over seats PostgreSQL had already given away is worthless: drop it, and teach
    the Redis cache what PostgreSQL knows about those seats."""
    states = await session.execute(select(Seat.id, Seat.state).where(Seat.id.in_(conflicts)))
    await best_effort(store.release(hold_id, principal.id))
    for seat_id, state in states:
        if state is not SeatState.AVAILABLE:
            await best_effort(store.mark_taken(event_id, state, [seat_id]))


async def best_effort(step: Awaitable[object]) -> None:
    """Run a Redis step that follows a PostgreSQL commit. If Redis is down the cache is
    rebuilt from PostgreSQL later, so the commit stands."""
    try:
        await step
    except REDIS_DOWN:
        logger.warning("Redis unreachable after a booking change; its cache will be rebuilt")


async def get_booking(
    session: AsyncSession, principal: Principal, booking_id: uuid.UUID
) -> Booking:
    booking = await session.get(Booking, booking_id)
    if booking is None or not principal.may_see(booking.user_id):
        raise NotFound("no such booking")
    return booking


async def list_bookings(
    session: AsyncSession, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Booking], int]:
    total = await session.scalar(
        select(func.count()).select_from(Booking).where(Booking.user_id == user_id)
    )
    rows = await session.scalars(
        select(Booking)
        .where(Booking.user_id == user_id)
        .order_by(Booking.created_at.desc(), Booking.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total or 0


async def free_seats(session: AsyncSession, booking: Booking) -> list[uuid.UUID]:
    freed = await session.scalars(
        update(Seat)
        .where(Seat.event_id == booking.event_id, Seat.booking_id == booking.id)
        .values(state=SeatState.AVAILABLE, booking_id=None)
        .returning(Seat.id)
    )
    return list(freed)


async def cancel_booking(
    session: AsyncSession, principal: Principal, booking_id: uuid.UUID, cutoff: timedelta
) -> tuple[Booking, list[uuid.UUID]]:
    """Cancel a live booking and free its seats; returns the booking and the freed seats.

    A pending booking can always be cancelled by its owner; a confirmed one only until the
    cutoff before the event starts, except by an admin. Refunds follow the commit.
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
    return booking, freed
