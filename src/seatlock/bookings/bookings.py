"""Bookings: a hold becomes a booking in one PostgreSQL transaction that rechecks every seat.

The conditional write of `seats.take_seats` is what prevents a double sale; the Redis hold
before it only keeps buyers from colliding.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.bookings.seats import take_seats
from seatlock.bookings.tickets import BookingOut, described, tickets
from seatlock.errors import Conflict, InvalidInput, NotFound, SeatConflict
from seatlock.holds.store import HoldStore
from seatlock.models import (
    Booking,
    BookingStatus,
    Event,
    EventStatus,
    PriceCategory,
    Seat,
    SeatState,
)
from seatlock.ops.metrics import BOOKINGS, HOLDS_CONVERTED
from seatlock.ops.request_log import record
from seatlock.redis_client import best_effort

LIVE = (BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED)

# What the caller writes in the booking's own transaction before it commits (the stored
# answer of its Idempotency-Key).
BeforeCommit = Callable[[BookingOut], Awaitable[None]]


class SeatsTaken(SeatConflict):
    slug = "seats-taken"
    title = "Some seats were taken by someone else"


async def _terms(
    session: AsyncSession, event_id: uuid.UUID, seat_ids: Sequence[uuid.UUID]
) -> tuple[int, int, str]:
    """The event's payment window and the seats' total price and currency, in one read;
    refuses an event that is off sale and a booking over the event's seat limit."""
    rows = (
        await session.execute(
            select(
                Event.status,
                Event.max_seats_per_booking,
                Event.payment_window_seconds,
                func.sum(PriceCategory.price_minor),
                PriceCategory.currency,
            )
            .join(Seat, Seat.event_id == Event.id)
            .join(PriceCategory, Seat.price_category_id == PriceCategory.id)
            .where(Event.id == event_id, Seat.event_id == event_id, Seat.id.in_(seat_ids))
            .group_by(Event.id, PriceCategory.currency)
        )
    ).all()
    if not rows or rows[0][0] is not EventStatus.ON_SALE:
        raise Conflict("the event is no longer on sale")
    if len(seat_ids) > rows[0][1]:
        raise InvalidInput(f"at most {rows[0][1]} seats per booking")
    if len(rows) != 1:
        raise InvalidInput("the seats of one booking must be priced in one currency")
    _, _, window, total, currency = rows[0]
    return window, int(total), currency


async def book_claimed_hold(
    session: AsyncSession,
    principal: Principal,
    hold_id: str,
    event_id: uuid.UUID,
    seat_ids: Sequence[uuid.UUID],
) -> Booking:
    """The booking's writes, for a hold already claimed in Redis, in the session's open
    transaction (uncommitted). Raises SeatsTaken."""
    window, total, currency = await _terms(session, event_id, seat_ids)
    free = total == 0
    booking = await session.scalar(
        insert(Booking)
        .values(
            id=uuid.uuid4(),
            event_id=event_id,
            user_id=principal.id,
            hold_id=hold_id,
            seat_ids=list(seat_ids),
            status=BookingStatus.CONFIRMED if free else BookingStatus.PENDING_PAYMENT,
            total_minor=total,
            currency=currency,
            # PostgreSQL's clock, the one the expiry sweep compares it with.
            payment_deadline=func.now() + timedelta(seconds=window),
        )
        .returning(Booking)
    )
    assert booking is not None
    taken = set(
        await take_seats(
            session, booking, SeatState.AVAILABLE, SeatState.SOLD if free else SeatState.RESERVED
        )
    )
    if missing := [s for s in seat_ids if s not in taken]:
        raise SeatsTaken("some seats were sold or reserved meanwhile", missing)
    return booking


async def create_booking(
    session: AsyncSession,
    store: HoldStore,
    principal: Principal,
    hold_id: str,
    before_commit: BeforeCommit | None = None,
) -> BookingOut:
    """Turn the caller's hold into a booking: claim it in Redis, write the booking and its
    seats, read its answer, let the caller add its own writes, commit, then drop the hold
    from Redis."""
    event_id, seat_ids = await store.claim(hold_id, principal.id)
    try:
        async with session.begin_nested():
            booking = await book_claimed_hold(session, principal, hold_id, event_id, seat_ids)
        # Read in the booking's transaction: the answer stored with its Idempotency-Key
        # commits with it.
        [(_, answer)] = await tickets(session, described().where(Booking.id == booking.id))
        if before_commit:
            await before_commit(answer)
        await session.commit()
    except SeatsTaken as taken:
        await _forget_hold(session, store, principal, hold_id, event_id, taken.conflicts)
        raise
    except BaseException:
        await best_effort(store.unclaim(hold_id, principal.id))
        raise
    _created(booking)
    state = SeatState.SOLD if booking.status is BookingStatus.CONFIRMED else SeatState.RESERVED
    await best_effort(store.complete(hold_id, principal.id, state, seat_ids))
    return answer


def _created(booking: Booking) -> None:
    """Counts and logs a booking just committed: its hold converted, and a free booking
    confirmed at once."""
    HOLDS_CONVERTED.inc()
    BOOKINGS.labels("created").inc()
    if booking.status is BookingStatus.CONFIRMED:
        BOOKINGS.labels("confirmed").inc()
    record(
        "booking created",
        booking_id=str(booking.id),
        hold_id=booking.hold_id,
        booking_status=booking.status.value,
    )


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
    states = await session.execute(
        select(Seat.id, Seat.state).where(Seat.event_id == event_id, Seat.id.in_(conflicts))
    )
    await best_effort(store.release(hold_id, principal.id))
    for seat_id, state in states:
        if state is not SeatState.AVAILABLE:
            await best_effort(store.mark_taken(event_id, state, [seat_id], "refresh"))


async def get_booking(
    session: AsyncSession, principal: Principal, booking_id: uuid.UUID
) -> Booking:
    booking = await session.get(Booking, booking_id)
    if booking is None or not principal.may_see(booking.user_id):
        raise NotFound("no such booking")
    return booking
