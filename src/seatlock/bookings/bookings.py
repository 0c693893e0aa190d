"""Bookings: a hold becomes a booking in one PostgreSQL transaction that rechecks every seat.

The conditional write of `BOOK_SEATS` is what prevents a double sale; the Redis hold
before it only keeps buyers from colliding.

The transaction is short: the key's claim (see `idempotency.replays`), one read that locks
the seats and learns everything the booking needs, one statement that writes the booking
and takes its seats, the stored answer, the commit. SQL text, since these run on every
booking: SQLAlchemy's statement building and ORM machinery cost a booking more CPU than
PostgreSQL's work.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.bookings.tickets import BookedEvent, BookedSeat, BookingOut
from seatlock.errors import Conflict, DomainError, InvalidInput, NotFound, SeatConflict
from seatlock.holds.store import HoldStore
from seatlock.models import Booking, BookingStatus, EventStatus, SeatState
from seatlock.ops.metrics import BOOKINGS, HOLDS_CONVERTED
from seatlock.ops.request_log import record
from seatlock.redis_client import best_effort

LIVE = (BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED)

# What the caller writes in the booking's own transaction before it commits (the stored
# answer of its Idempotency-Key).
BeforeCommit = Callable[[BookingOut], Awaitable[None]]


# The seats that are still free (the recheck, as in the write below), locked in id order
# (two bookings wanting overlapping seats then queue instead of deadlocking) and answered in
# the ticket page's order, with their prices, their event and PostgreSQL's transaction
# time, which the booking's `created_at` and deadline carry. A seat another transaction
# takes while this one waits for its lock drops out. Seats that are not free are not
# locked: a booking refused waits on nobody's payment.
LOCK_SEATS = text(
    """
    SELECT locked.* FROM (
        SELECT s.id, s.section, s.row, s.number, p.name AS price_category, p.price_minor,
               p.currency, e.status::text AS event_status, e.max_seats_per_booking,
               e.payment_window_seconds, e.title, e.venue, e.starts_at, now() AS now
        FROM seats s
        JOIN price_categories p ON p.id = s.price_category_id
        JOIN events e ON e.id = s.event_id
        WHERE s.event_id = :event AND s.id = ANY(:ids) AND (s.state = 'available')
        ORDER BY s.id
        FOR UPDATE OF s
    ) AS locked
    ORDER BY locked.section, locked.row, locked.number
    """
)
# What a refusal reports once the locking read missed seats: the event's status and seat
# limit, and the state of each seat asked for. Read without locks, on refusals only.
REFUSAL_FACTS = text(
    """
    SELECT e.status::text AS event_status, e.max_seats_per_booking, s.id, s.state::text AS state
    FROM events e
    LEFT JOIN seats s ON s.event_id = e.id AND s.id = ANY(:ids)
    WHERE e.id = :event
    """
)
# The booking row and the conditional write of its seats, in one statement (the seats'
# foreign key is checked at its end, when the booking exists).
BOOK_SEATS = text(
    """
    WITH booking AS (
        INSERT INTO bookings (id, event_id, user_id, hold_id, seat_ids, status, total_minor,
                              currency, payment_deadline)
        VALUES (:booking, :event, :user, :hold, :ids, CAST(:status AS booking_status), :total,
                :currency, now() + CAST(:window AS integer) * interval '1 second')
    )
    UPDATE seats AS s SET state = CAST(:seat_state AS seat_state), booking_id = :booking
    WHERE s.event_id = :event AND s.id = ANY(:ids) AND (s.state = 'available')
    RETURNING s.id
    """
)


class SeatsTaken(SeatConflict):
    slug = "seats-taken"
    title = "Some seats were taken by someone else"

    def __init__(
        self,
        detail: str,
        conflicts: Sequence[uuid.UUID],
        states: dict[uuid.UUID, SeatState] | None = None,
    ) -> None:
        super().__init__(detail, conflicts)
        # What PostgreSQL says of the conflicting seats it has, for Redis's cache.
        self.states = states or {}


class RecheckFailed(RuntimeError):
    """The seat write took fewer seats than the locking read found free. The seats are
    locked, so only a broken recheck gets here; nothing of the booking may commit."""


def _event_refusal(event_status: str, max_seats: int, asked: int) -> DomainError | None:
    """Refuses an event that is off sale and a booking over the event's seat limit."""
    if event_status != EventStatus.ON_SALE:
        return Conflict("the event is no longer on sale")
    if asked > max_seats:
        return InvalidInput(f"at most {max_seats} seats per booking")
    return None


def _terms(seats: Sequence[Any], asked: int) -> tuple[int, int, str]:
    """The event's payment window and the seats' total price and currency, from the
    locking read of every seat asked for; refuses seats priced in more than one currency."""
    first = seats[0]
    if refusal := _event_refusal(first.event_status, first.max_seats_per_booking, asked):
        raise refusal
    if len({seat.currency for seat in seats}) != 1:
        raise InvalidInput("the seats of one booking must be priced in one currency")
    return first.payment_window_seconds, sum(seat.price_minor for seat in seats), first.currency


async def _refusal(
    session: AsyncSession, event_id: uuid.UUID, ids: list[uuid.UUID], free: set[uuid.UUID]
) -> DomainError:
    """Why a booking whose locking read missed seats is refused: its event, its size, or
    the seats taken (with their states, for Redis's cache)."""
    facts = (await session.execute(REFUSAL_FACTS, {"event": event_id, "ids": ids})).all()
    if not facts:
        return Conflict("the event is no longer on sale")
    first = facts[0]
    if refusal := _event_refusal(first.event_status, first.max_seats_per_booking, len(ids)):
        return refusal
    taken: dict[uuid.UUID, SeatState] = {
        f.id: SeatState(f.state)
        for f in facts
        if f.id is not None and f.id not in free and f.state != SeatState.AVAILABLE
    }
    missing = [seat for seat in ids if seat not in free]
    return SeatsTaken("some seats were sold or reserved meanwhile", missing, taken)


async def book_claimed_hold(
    session: AsyncSession,
    principal: Principal,
    hold_id: str,
    event_id: uuid.UUID,
    seat_ids: Sequence[uuid.UUID],
) -> BookingOut:
    """The booking's writes, for a hold already claimed in Redis, in the session's open
    transaction (uncommitted), and its answer. A refusal is raised before anything is
    written."""
    ids = list(seat_ids)
    seats = (await session.execute(LOCK_SEATS, {"event": event_id, "ids": ids})).all()
    if len(seats) != len(ids):
        raise await _refusal(session, event_id, ids, {seat.id for seat in seats})
    window, total, currency = _terms(seats, len(ids))
    status = BookingStatus.CONFIRMED if total == 0 else BookingStatus.PENDING_PAYMENT
    booking_id = uuid.uuid4()
    taken = await session.scalars(
        BOOK_SEATS,
        {
            "booking": booking_id,
            "event": event_id,
            "user": principal.id,
            "hold": hold_id,
            "ids": ids,
            "status": status.value,
            "total": total,
            "currency": currency,
            "window": window,
            "seat_state": (SeatState.SOLD if total == 0 else SeatState.RESERVED).value,
        },
    )
    if len(set(taken)) != len(ids):
        raise RecheckFailed(f"the write took {len(set(taken))} of {len(ids)} locked free seats")
    first = seats[0]
    return BookingOut(
        id=booking_id,
        status=status,
        event=BookedEvent(event_id, first.title, first.venue, first.starts_at),
        seats=[
            BookedSeat(s.id, s.section, s.row, s.number, s.price_category, s.price_minor)
            for s in seats
        ],
        total_minor=total,
        currency=currency,
        payment_deadline=first.now + timedelta(seconds=window),
        created_at=first.now,
        payments=[],
    )


async def create_booking(
    session: AsyncSession,
    store: HoldStore,
    principal: Principal,
    hold_id: str,
    before_commit: BeforeCommit | None = None,
) -> BookingOut:
    """Turn the caller's hold into a booking: claim it in Redis, write the booking and its
    seats with its answer, let the caller add its own writes, commit, then drop the hold
    from Redis. A refusal leaves the transaction to the caller (to keep the refusal with
    the key's claim) and sees to the hold in `after_transaction`: Redis is not asked while
    the transaction holds seat locks."""
    event_id, seat_ids = await store.claim(hold_id, principal.id)
    try:
        answer = await book_claimed_hold(session, principal, hold_id, event_id, seat_ids)
        if before_commit:
            await before_commit(answer)
        await session.commit()
    except SeatsTaken as taken:
        taken.after_transaction = partial(
            _forget_hold, store, principal, hold_id, event_id, taken.states
        )
        raise
    except DomainError as refusal:
        refusal.after_transaction = partial(_give_back, store, principal, hold_id)
        raise
    except BaseException:
        try:
            await session.rollback()
        finally:
            await _give_back(store, principal, hold_id)
        raise
    _created(answer, hold_id)
    state = SeatState.SOLD if answer.status is BookingStatus.CONFIRMED else SeatState.RESERVED
    await best_effort(store.complete(hold_id, principal.id, state, seat_ids))
    return answer


async def _give_back(store: HoldStore, principal: Principal, hold_id: str) -> None:
    """The claimed hold back to its owner, to book again or let go."""
    await best_effort(store.unclaim(hold_id, principal.id))


def _created(booking: BookingOut, hold_id: str) -> None:
    """Counts and logs a booking just committed: its hold converted, and a free booking
    confirmed at once."""
    HOLDS_CONVERTED.inc()
    BOOKINGS.labels("created").inc()
    if booking.status is BookingStatus.CONFIRMED:
        BOOKINGS.labels("confirmed").inc()
    record(
        "booking created",
        booking_id=str(booking.id),
        hold_id=hold_id,
        booking_status=booking.status.value,
    )


async def _forget_hold(
    store: HoldStore,
    principal: Principal,
    hold_id: str,
    event_id: uuid.UUID,
    states: dict[uuid.UUID, SeatState],
) -> None:
    """A hold over seats PostgreSQL had already given away is worthless: drop it, and teach
    the Redis cache what PostgreSQL knows about those seats."""
    await best_effort(store.release(hold_id, principal.id))
    for seat_id, state in states.items():
        await best_effort(store.mark_taken(event_id, state, [seat_id], "refresh"))


async def get_booking(
    session: AsyncSession, principal: Principal, booking_id: uuid.UUID
) -> Booking:
    booking = await session.get(Booking, booking_id)
    if booking is None or not principal.may_see(booking.user_id):
        raise NotFound("no such booking")
    return booking
