"""The check every booking test ends with, straight from PostgreSQL: no seat is sold twice."""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Booking
from seatlock.testing.oracle import LIVE, check

# Tests check consistency, not an event's size.
UNBOUNDED = 10**9


async def double_sold_seats(engine: AsyncEngine, event_id: uuid.UUID) -> list[uuid.UUID]:
    """Seats that belong to more than one live booking."""
    async with engine.connect() as conn:
        live = await conn.execute(
            select(Booking.seat_ids).where(Booking.event_id == event_id, Booking.status.in_(LIVE))
        )
        counts = Counter(seat for (seat_ids,) in live for seat in seat_ids)
    return [seat for seat, count in counts.items() if count > 1]


async def assert_consistent(engine: AsyncEngine, event_id: uuid.UUID) -> int:
    """The benchmark's oracle, which every booking test ends with: no seat in two live
    bookings, every seat's state matching its booking's, every live booking owning its
    seats, every succeeded payment's seats sold to it. Returns the seats of live bookings."""
    verdict = await check(engine, event_id, capacity=UNBOUNDED)
    assert verdict.passed, verdict.violations
    return verdict.sold_seats + verdict.reserved_seats
