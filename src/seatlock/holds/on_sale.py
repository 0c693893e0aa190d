"""A per-process, seconds-long cache of what every hold request reads: an event's sale
status, window and hold policy, and the ids of its seats.

Serving these from memory saves two PostgreSQL queries per hold. Staleness is bounded by
the cache's lifetime and harmless for correctness: the booking transaction rechecks the
event and every seat in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.models import Event, EventStatus, Seat

DEFAULT_LIFETIME_SECONDS = 2.0


@dataclass(frozen=True)
class EventFacts:
    id: uuid.UUID
    status: EventStatus
    sale_starts_at: datetime
    sale_ends_at: datetime
    hold_ttl_seconds: int
    max_hold_extensions: int
    max_hold_lifetime_seconds: int
    max_seats_per_booking: int


# Seat ids are remembered for at most this many events; then the memory starts over.
MAX_EVENTS_WITH_SEATS = 1000


@dataclass
class _Entry:
    facts: EventFacts
    loaded_at: float = field(default_factory=time.monotonic)


class OnSaleCache:
    def __init__(self, lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS) -> None:
        self.lifetime = lifetime_seconds
        self._entries: dict[uuid.UUID, _Entry] = {}
        # Seats are never renumbered and a map with taken seats only grows, so a seat id
        # once seen stays valid for holding; the booking transaction checks it anyway.
        self._known_seats: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._loading: dict[uuid.UUID, asyncio.Lock] = {}

    def _fresh(self, event_id: uuid.UUID) -> _Entry | None:
        entry = self._entries.get(event_id)
        if entry is None or time.monotonic() - entry.loaded_at > self.lifetime:
            return None
        return entry

    async def event(self, session: AsyncSession, event_id: uuid.UUID) -> EventFacts | None:
        if entry := self._fresh(event_id):
            return entry.facts
        event = await session.get(Event, event_id)
        if event is None:
            return None
        facts = _facts(event)
        # Only events on sale are kept: they are the hot path, and a newly published event
        # must take holds at once.
        if facts.status is EventStatus.ON_SALE:
            self._entries[event_id] = _Entry(facts)
        return facts

    async def known_seats(
        self, session: AsyncSession, event_id: uuid.UUID, wanted: frozenset[uuid.UUID]
    ) -> frozenset[uuid.UUID]:
        """Those of `wanted` that are seats of the event. The first request of an event
        reads all its seat ids, once for the whole process (others wait for that read);
        after that only ids never seen are looked up, e.g. seats added to a grown map."""
        known = await self._seats_of(session, event_id)
        if unseen := wanted - known:
            known.update(
                await session.scalars(
                    select(Seat.id).where(Seat.event_id == event_id, Seat.id.in_(unseen))
                )
            )
        return wanted & known

    async def _seats_of(self, session: AsyncSession, event_id: uuid.UUID) -> set[uuid.UUID]:
        if (known := self._known_seats.get(event_id)) is not None:
            return known
        async with self._loading.setdefault(event_id, asyncio.Lock()):
            if (known := self._known_seats.get(event_id)) is None:
                if len(self._known_seats) >= MAX_EVENTS_WITH_SEATS:
                    self._known_seats.clear()
                    self._loading.clear()
                known = set(await session.scalars(select(Seat.id).where(Seat.event_id == event_id)))
                self._known_seats[event_id] = known
        return known


def _facts(event: Event) -> EventFacts:
    return EventFacts(
        id=event.id,
        status=event.status,
        sale_starts_at=event.sale_starts_at,
        sale_ends_at=event.sale_ends_at,
        hold_ttl_seconds=event.hold_ttl_seconds,
        max_hold_extensions=event.max_hold_extensions,
        max_hold_lifetime_seconds=event.max_hold_lifetime_seconds,
        max_seats_per_booking=event.max_seats_per_booking,
    )
