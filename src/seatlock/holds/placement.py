"""Buyers' hold requests: the PostgreSQL checks around the Redis hold layer.

PostgreSQL says which event is on sale, which seats exist and which are taken; the hold
layer then decides atomically which buyer gets the seats for the next few minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.errors import Conflict, InvalidInput, NotFound, UnknownSeats
from seatlock.holds import best_available
from seatlock.holds.on_sale import EventFacts, OnSaleCache
from seatlock.holds.replies import Hold
from seatlock.holds.store import HoldPolicy, HoldStore, TakenSnapshot
from seatlock.models import EventStatus, Seat, SeatState


class NotOnSale(Conflict):
    slug = "not-on-sale"
    title = "The event is not on sale"


def policy_of(event: EventFacts) -> HoldPolicy:
    return HoldPolicy(
        ttl_ms=event.hold_ttl_seconds * 1000,
        max_extensions=event.max_hold_extensions,
        max_lifetime_ms=event.max_hold_lifetime_seconds * 1000,
        seat_cap=event.max_seats_per_booking,
    )


async def event_on_sale(on_sale: OnSaleCache, event_id: uuid.UUID) -> EventFacts:
    event = await on_sale.event(event_id)
    if event is None or event.status is EventStatus.DRAFT:
        raise NotFound("no such event")
    now = datetime.now(UTC)
    if event.status is not EventStatus.ON_SALE:
        raise NotOnSale(f"the event is {event.status.value.replace('_', ' ')}")
    if not event.sale_starts_at <= now < event.sale_ends_at:
        raise NotOnSale("the event's sale window is not open")
    return event


def taken_snapshot(sessions: async_sessionmaker[AsyncSession]) -> TakenSnapshot:
    """PostgreSQL's reserved and sold seats of an event, read in a session of its own only
    when the Redis cache of them must be rebuilt."""

    async def snapshot(event_id: uuid.UUID) -> dict[uuid.UUID, SeatState]:
        async with sessions() as session:
            rows = await session.execute(
                select(Seat.id, Seat.state).where(
                    Seat.event_id == event_id, Seat.state != SeatState.AVAILABLE
                )
            )
            return {seat_id: state for seat_id, state in rows}

    return snapshot


class TooManySeats(InvalidInput):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} seats can be held for this event")
        self.limit = limit

    def members(self) -> dict[str, Any]:
        return {"limit": self.limit}


def _check_count(event: EventFacts, count: int) -> None:
    if count > event.max_seats_per_booking:
        raise TooManySeats(event.max_seats_per_booking)


async def hold_chosen_seats(
    store: HoldStore,
    on_sale: OnSaleCache,
    event: EventFacts,
    owner_id: uuid.UUID,
    seat_ids: Sequence[uuid.UUID],
) -> Hold:
    wanted = frozenset(seat_ids)
    if len(wanted) != len(seat_ids):
        raise InvalidInput("a seat is listed twice")
    _check_count(event, len(seat_ids))
    known = await on_sale.known_seats(event.id, wanted)
    if unknown := [s for s in seat_ids if s not in known]:
        raise UnknownSeats("some seats are not seats of this event", unknown)
    snapshot = taken_snapshot(on_sale.sessions)
    return await store.hold(event.id, owner_id, seat_ids, policy_of(event), snapshot)


async def hold_best_available(
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    event: EventFacts,
    owner_id: uuid.UUID,
    quantity: int,
    category: str | None,
    section: str | None,
) -> Hold:
    _check_count(event, quantity)
    sources = (taken_snapshot(sessions), best_available.layout_source(sessions))
    wanted = best_available.Wanted(quantity, section, category)
    return await best_available.hold_best(
        store, event.id, owner_id, policy_of(event), wanted, sources
    )
