"""The expiry sweep: unpaid bookings past their payment deadline give their seats back,
and idempotency records past their 24 hours are deleted.

Any number of service processes may sweep at once: each locks the bookings it expires with
FOR UPDATE SKIP LOCKED, so no two take the same booking, and each batch is one
transaction, so a crash in the middle frees no seat by halves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.bookings.seats import free_seats
from seatlock.holds.store import HoldStore
from seatlock.idempotency import records
from seatlock.models import Booking, BookingStatus
from seatlock.ops.metrics import BOOKINGS
from seatlock.redis_client import best_effort

logger = logging.getLogger("seatlock")

BATCH = 200


async def expire_due_bookings(session: AsyncSession, store: HoldStore) -> int:
    """Expire one batch of overdue bookings; returns how many were expired."""
    due = list(
        await session.scalars(
            select(Booking)
            .where(
                Booking.status == BookingStatus.PENDING_PAYMENT,
                # PostgreSQL's clock decides payment windows, whichever host sweeps.
                Booking.payment_deadline < func.now(),
            )
            .order_by(Booking.payment_deadline)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    freed: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for booking in due:
        booking.status = BookingStatus.EXPIRED
        freed[booking.event_id] += await free_seats(session, booking)
    await session.commit()
    BOOKINGS.labels("expired").inc(len(due))
    for booking in due:
        logger.info("booking expired", extra={"booking_id": str(booking.id)})
    for event_id, seats in freed.items():
        if seats:
            await best_effort(store.free_taken(event_id, seats, "booking_expiry"))
    return len(due)


async def sweep_until(
    stop: asyncio.Event,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    interval: float,
) -> None:
    """Sweep every `interval` seconds until `stop` is set. A sweep under way is finished,
    never cancelled, so that shutting down leaves no query and no connection half done."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            async with sessions() as session:
                while await expire_due_bookings(session, store) == BATCH:
                    pass
                # Idempotency records past their 24 hours go in the same rounds.
                await records.purge_expired(session)
        except Exception:
            # A database hiccup must not end the sweeping: log it and try again next round.
            logger.exception("the booking expiry sweep failed; retrying")
