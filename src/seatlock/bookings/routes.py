"""/api/bookings: turn a hold into a booking, list and read bookings, cancel them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from seatlock import deps, paging
from seatlock.auth.access import SIGNED_IN
from seatlock.bodies import Body
from seatlock.bookings import bookings, cancellation, tickets
from seatlock.bookings.tickets import BookingOut
from seatlock.holds.store import HOLD_ID_PATTERN
from seatlock.idempotency.replays import IdempotencyKey, Recorder, run_in_transaction
from seatlock.models import Booking


class BookingRequest(Body):
    hold_id: Annotated[str, msgspec.Meta(pattern=HOLD_ID_PATTERN)]


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
    checkout: deps.Checkout,
) -> Response[bytes]:
    """Turns the caller's hold into a booking in one PostgreSQL transaction that takes
    every seat or none: `pending_payment` until paid within the event's payment window
    (`confirmed` at once when free). Requires an Idempotency-Key: a retry gets the first
    answer."""

    async def book(record: Recorder) -> BookingOut:
        return await bookings.create_booking(
            checkout.session, checkout.holds, checkout.caller, data.hold_id, before_commit=record
        )

    return await run_in_transaction(request, checkout.session, checkout.caller.id, data, 201, book)


@get("/my-bookings", roles=SIGNED_IN, operation_id="listMyBookings")
async def my_bookings(
    request: Request[Any, Any, Any],
    own: deps.Own,
    limit: paging.Limit = paging.DEFAULT_LIMIT,
    cursor: paging.Cursor = None,
) -> paging.Page[BookingOut]:
    """The caller's bookings, newest first, each as its ticket page shows it."""
    after = paging.decode_cursor(cursor, paging.TimeAndId)
    found, total = await tickets.user_tickets(own.session, own.caller.id, limit, after)
    return paging.keyset(request, found, limit, total, _created, _answer)


def _created(found: tuple[Booking, BookingOut]) -> tuple[datetime, uuid.UUID]:
    return found[0].created_at, found[0].id


def _answer(found: tuple[Booking, BookingOut]) -> BookingOut:
    return found[1]


@get("/{booking_id:uuid}", roles=SIGNED_IN)
async def get_booking(booking_id: FromPath[uuid.UUID], own: deps.Own) -> BookingOut:
    """One of the caller's bookings with its event, seats, prices and payments (404 for
    anybody else's)."""
    return await tickets.ticket(own.session, own.caller, booking_id)


@delete("/{booking_id:uuid}", roles=SIGNED_IN, status_code=200, problems=(409, 422))
async def cancel_booking(booking_id: FromPath[uuid.UUID], checkout: deps.Checkout) -> BookingOut:
    """Cancels one of the caller's bookings before the cancellation cutoff: its seats
    are available again and a paid booking is refunded."""
    session, caller = checkout.session, checkout.caller
    cutoff = timedelta(hours=checkout.settings.cancellation_cutoff_hours)
    holds, providers = checkout.holds, checkout.providers
    await cancellation.cancel_booking(session, holds, providers, caller, booking_id, cutoff)
    return await tickets.ticket(session, caller, booking_id)


bookings_router = Router(
    "/api/bookings",
    route_handlers=[create_booking, my_bookings, get_booking, cancel_booking],
    tags=["bookings"],
)
