"""A per-process, seconds-long cache of what every hold request reads: an event's sale
status, window and hold policy, and the ids of its seats.

Serving these from memory saves two PostgreSQL queries per hold. Staleness is bounded by
the cache's lifetime and harmless for correctness: the booking transaction rechecks the
event and every seat in PostgreSQL.
"""

from __future__ import annotations

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


@dataclass
class _Entry:
    facts: EventFacts
    seat_ids: frozenset[uuid.UUID] | None = None
    loaded_at: float = field(default_factory=time.monotonic)


class Catalog:
    def __init__(self, lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS) -> None:
        self.lifetime = lifetime_seconds
        self._entries: dict[uuid.UUID, _Entry] = {}

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

    async def seat_ids(
        self, session: AsyncSession, event_id: uuid.UUID, wanted: frozenset[uuid.UUID]
    ) -> frozenset[uuid.UUID]:
        """The event's seat ids; read again when `wanted` names a seat not known yet, since
        a seat map may have grown since the last read."""
        entry = self._fresh(event_id)
        if entry is not None and entry.seat_ids is not None and wanted <= entry.seat_ids:
            return entry.seat_ids
        ids = frozenset(await session.scalars(select(Seat.id).where(Seat.event_id == event_id)))
        if entry is not None:
            entry.seat_ids = ids
        return ids


def _facts(event: Event) -> EventFacts:
    return EventFacts(
        id=event.id, status=event.status, sale_starts_at=event.sale_starts_at,
        sale_ends_at=event.sale_ends_at, hold_ttl_seconds=event.hold_ttl_seconds,
        max_hold_extensions=event.max_hold_extensions,
        max_hold_lifetime_seconds=event.max_hold_lifetime_seconds,
        max_seats_per_booking=event.max_seats_per_booking,
    )  # fmt: skip
