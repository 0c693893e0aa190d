"""The end-of-run check, straight from PostgreSQL: nothing oversold, nobody charged for a
seat they did not get. Read-only; works against any Seatlock database."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Booking, BookingStatus, Payment, PaymentStatus, Seat, SeatState

LIVE = (BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED)
SEAT_STATE_OF = {
    BookingStatus.PENDING_PAYMENT: SeatState.RESERVED,
    BookingStatus.CONFIRMED: SeatState.SOLD,
}
# Enough examples to diagnose a failure without flooding the report.
MAX_EXAMPLES = 10


@dataclass
class Verdict:
    passed: bool
    seats: int
    sold_seats: int
    reserved_seats: int
    confirmed_bookings: int
    succeeded_payments: int
    violations: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def check(engine: AsyncEngine, event_id: uuid.UUID, capacity: int) -> Verdict:
    async with engine.connect() as conn:
        bookings = {
            b.id: b
            for b in await conn.execute(
                select(Booking.id, Booking.status, Booking.seat_ids).where(
                    Booking.event_id == event_id
                )
            )
        }
        seats = {
            s.id: s
            for s in await conn.execute(
                select(Seat.id, Seat.state, Seat.booking_id).where(Seat.event_id == event_id)
            )
        }
        payments = list(
            await conn.execute(
                select(Payment.id, Payment.booking_id, Payment.status).where(
                    Payment.event_id == event_id
                )
            )
        )
    problems: list[str] = []

    live_seats = Counter(seat for b in bookings.values() if b.status in LIVE for seat in b.seat_ids)
    problems += [f"seat {s} is in {n} live bookings" for s, n in live_seats.items() if n > 1]

    for seat in seats.values():
        booking = bookings.get(seat.booking_id) if seat.booking_id else None
        if seat.state is SeatState.AVAILABLE:
            continue
        if booking is None or seat.id not in booking.seat_ids:
            problems.append(f"{seat.state.value} seat {seat.id} belongs to no booking holding it")
        elif SEAT_STATE_OF.get(booking.status) is not seat.state:
            problems.append(
                f"{seat.state.value} seat {seat.id} belongs to a {booking.status.value} booking"
            )

    for booking in bookings.values():
        if booking.status not in LIVE:
            continue
        problems += [
            f"seat {seat_id} of {booking.status.value} booking {booking.id} is not its"
            for seat_id in booking.seat_ids
            if seat_id not in seats or seats[seat_id].booking_id != booking.id
        ]

    sold = sum(1 for s in seats.values() if s.state is SeatState.SOLD)
    if sold > capacity or len(seats) > capacity:
        problems.append(f"{sold} seats sold of {len(seats)} seats, capacity {capacity}")

    succeeded = [p for p in payments if p.status is PaymentStatus.SUCCEEDED]
    paid_twice = [b for b, n in Counter(p.booking_id for p in succeeded).items() if n > 1]
    problems += [f"booking {b} was paid by more than one payment" for b in paid_twice]
    for payment in succeeded:
        booking = bookings.get(payment.booking_id)
        if booking is None or booking.status is not BookingStatus.CONFIRMED:
            problems.append(f"payment {payment.id} succeeded but its booking is not confirmed")
            continue
        for seat_id in booking.seat_ids:
            got = seats.get(seat_id)
            if got is None or got.state is not SeatState.SOLD or got.booking_id != booking.id:
                problems.append(f"payment {payment.id} paid for seat {seat_id} it did not get")

    return Verdict(
        passed=not problems,
        seats=len(seats),
        sold_seats=sold,
        reserved_seats=sum(1 for s in seats.values() if s.state is SeatState.RESERVED),
        confirmed_bookings=sum(1 for b in bookings.values() if b.status is BookingStatus.CONFIRMED),
        succeeded_payments=len(succeeded),
        violations=problems[:MAX_EXAMPLES],
    )
