"""What a ticket page shows of a booking: its event, its seats with their prices, and the
payments made for it.

One statement reads a whole page of bookings: the seats and payments of each come
aggregated as JSON by correlated subqueries, so a page costs one round trip however many
bookings it holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, Text, any_, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from seatlock.auth.tokens import Principal
from seatlock.errors import NotFound
from seatlock.models import (
    Booking,
    BookingStatus,
    Event,
    Payment,
    PaymentMethod,
    PaymentStatus,
    PriceCategory,
    Seat,
)


class BookedEvent(msgspec.Struct):
    id: uuid.UUID
    title: str
    venue: str
    starts_at: datetime


class BookedSeat(msgspec.Struct):
    id: uuid.UUID
    section: str
    row: str
    number: int
    price_category: str
    # The category's price in minor units of the booking's currency.
    price_minor: int


class BookedPayment(msgspec.Struct):
    id: uuid.UUID
    provider: str
    method: PaymentMethod
    status: PaymentStatus
    amount_minor: int
    currency: str
    created_at: datetime


class BookingOut(msgspec.Struct):
    id: uuid.UUID
    status: BookingStatus
    event: BookedEvent
    seats: list[BookedSeat]
    total_minor: int
    currency: str
    payment_deadline: datetime
    created_at: datetime
    # Oldest first; empty until a payment is initiated.
    payments: list[BookedPayment]


def _json_list(
    element: ColumnElement[Any], *order: InstrumentedAttribute[Any]
) -> ColumnElement[str]:
    """The rows' `element`s as one JSON array in `order` (`[]` when there are none), as
    text that msgspec decodes straight into the answer's types."""
    return func.coalesce(cast(func.json_agg(aggregate_order_by(element, *order)), Text), "[]")


def _seats() -> ColumnElement[str]:
    line = func.json_build_object(
        "id", Seat.id,
        "section", Seat.section,
        "row", Seat.row,
        "number", Seat.number,
        "price_category", PriceCategory.name,
        "price_minor", PriceCategory.price_minor,
    )  # fmt: skip
    return (
        select(_json_list(line, Seat.section, Seat.row, Seat.number))
        .join(PriceCategory, Seat.price_category_id == PriceCategory.id)
        .where(Seat.event_id == Booking.event_id, Seat.id == any_(Booking.seat_ids))
        .scalar_subquery()
    )


def _payments() -> ColumnElement[str]:
    line = func.json_build_object(
        "id", Payment.id,
        "provider", Payment.provider,
        "method", Payment.method,
        "status", Payment.status,
        "amount_minor", Payment.amount_minor,
        "currency", Payment.currency,
        "created_at", Payment.created_at,
    )  # fmt: skip
    return (
        select(_json_list(line, Payment.created_at, Payment.id))
        .where(Payment.event_id == Booking.event_id, Payment.booking_id == Booking.id)
        .scalar_subquery()
    )


def described() -> Select[tuple[Booking, str, str, datetime, str, str]]:
    """Bookings with what their ticket page shows; callers add the WHERE, ORDER and LIMIT."""
    return select(Booking, Event.title, Event.venue, Event.starts_at, _seats(), _payments()).join(
        Event, Event.id == Booking.event_id
    )


async def tickets(
    session: AsyncSession, statement: Select[tuple[Booking, str, str, datetime, str, str]]
) -> list[tuple[Booking, BookingOut]]:
    """The bookings `statement` (made from `described`) selects, each with its answer."""
    found = []
    for booking, title, venue, starts_at, seats, payments in await session.execute(statement):
        answer = BookingOut(
            id=booking.id,
            status=booking.status,
            event=BookedEvent(booking.event_id, title, venue, starts_at),
            seats=msgspec.json.decode(seats, type=list[BookedSeat]),
            total_minor=booking.total_minor,
            currency=booking.currency,
            payment_deadline=booking.payment_deadline,
            created_at=booking.created_at,
            payments=msgspec.json.decode(payments, type=list[BookedPayment]),
        )
        found.append((booking, answer))
    return found


async def ticket(session: AsyncSession, principal: Principal, booking_id: uuid.UUID) -> BookingOut:
    """One booking the caller may see (NotFound for anybody else's)."""
    found = await tickets(session, described().where(Booking.id == booking_id))
    if not found or not principal.may_see(found[0][0].user_id):
        raise NotFound("no such booking")
    return found[0][1]


async def user_tickets(
    session: AsyncSession,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> tuple[list[tuple[Booking, BookingOut]], int]:
    """A user's bookings newest first, after the (created_at, id) `after`: `limit` of them
    and one more when more follow; with how many bookings the user has."""
    wanted = described().where(Booking.user_id == user_id)
    if after is not None:
        wanted = wanted.where(tuple_(Booking.created_at, Booking.id) < after)
    newest = wanted.order_by(Booking.created_at.desc(), Booking.id.desc()).limit(limit + 1)
    found = await tickets(session, newest)
    total = await session.scalar(
        select(func.count()).select_from(Booking).where(Booking.user_id == user_id)
    )
    return found, total or 0
