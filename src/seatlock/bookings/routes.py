"""/api/bookings: turn a hold into a booking, list and read bookings, cancel them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from seatlock import deps
from seatlock.auth.access import SIGNED_IN
from seatlock.bodies import Body, Offset, OffsetPage
from seatlock.bookings import bookings, cancellation
from seatlock.idempotency.replays import IdempotencyKey, Recorder, run_in_transaction
from seatlock.models import Booking, BookingStatus


class BookingRequest(Body):
    hold_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class BookingOut(msgspec.Struct):
    id: uuid.UUID
    event_id: uuid.UUID
    seats: list[uuid.UUID]
    status: BookingStatus
    total_minor: int
    currency: str
    payment_deadline: datetime
    created_at: datetime


def booking_out(booking: Booking) -> BookingOut:
    return BookingOut(
        id=booking.id,
        event_id=booking.event_id,
        seats=booking.seat_ids,
        status=booking.status,
        total_minor=booking.total_minor,
        currency=booking.currency,
        payment_deadline=booking.payment_deadline,
        created_at=booking.created_at,
    )


@post(
    "/",
    roles=SIGNED_IN,
    status_code=201,
    operation_id="bookHold",
    problems=(404, 409, 410),
    responses={201: ResponseSpec(BookingOut, description="The booking, pending payment")},
)
async def create_booking(
    data: JSONBody[BookingRequest],
    idempotency_key: IdempotencyKey,
    request: Request[Any, Any, Any],
    principal: deps.Caller,
    db_session: deps.DbSession,
    holds: deps.Holds,
) -> Response[bytes]:
    """Turns the caller's hold into a booking in one PostgreSQL transaction that takes
    every seat or none: `pending_payment` until paid within the event's payment window
    (`confirmed` at once when free). Requires an Idempotency-Key: a retry gets the first
    answer."""

    async def book(record: Recorder) -> BookingOut:
        async def answer(booking: Booking) -> None:
            await record(booking_out(booking))

        booking = await bookings.create_booking(
            db_session, holds, principal, data.hold_id, before_commit=answer
        )
        return booking_out(booking)

    return await run_in_transaction(request, db_session, principal.id, data, 201, book)


@get("/my-bookings", roles=SIGNED_IN, operation_id="listMyBookings")
async def my_bookings(
    principal: deps.Caller,
    db_session: deps.DbSession,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> OffsetPage[BookingOut]:
    """The caller's bookings, newest first; paged by offset."""
    rows, total = await bookings.list_bookings(db_session, principal.id, limit, offset)
    return OffsetPage([booking_out(b) for b in rows], total, limit, offset)


@get("/{booking_id:uuid}", roles=SIGNED_IN)
async def get_booking(
    booking_id: FromPath[uuid.UUID], principal: deps.Caller, db_session: deps.DbSession
) -> BookingOut:
    """One of the caller's bookings (404 for anybody else's)."""
    return booking_out(await bookings.get_booking(db_session, principal, booking_id))


@delete("/{booking_id:uuid}", roles=SIGNED_IN, status_code=200, problems=(409, 422))
async def cancel_booking(
    booking_id: FromPath[uuid.UUID],
    principal: deps.Caller,
    db_session: deps.DbSession,
    holds: deps.Holds,
    providers: deps.Providers,
    settings: deps.Settings,
) -> BookingOut:
    """Cancels one of the caller's bookings before the cancellation cutoff: its seats
    are available again and a paid booking is refunded."""
    cutoff = timedelta(hours=settings.cancellation_cutoff_hours)
    booking = await cancellation.cancel_booking(
        db_session, holds, providers, principal, booking_id, cutoff
    )
    return booking_out(booking)


bookings_router = Router(
    "/api/bookings",
    route_handlers=[create_booking, my_bookings, get_booking, cancel_booking],
    tags=["bookings"],
)
