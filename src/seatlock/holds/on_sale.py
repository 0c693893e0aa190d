"""A per-process, seconds-long cache of what every hold request reads: an event's sale
status, window and hold policy, and the ids of its seats.

Serving these from memory keeps a chosen-seat hold free of PostgreSQL: the cache opens a
session only when it must read. Staleness is bounded by the cache's lifetime and harmless
for correctness: the booking transaction rechecks the event and every seat in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.models import Event, EventQueue, EventStatus, Seat
from seatlock.queue.rules import QueueRules, rules_of
from seatlock.single_flight import SingleFlight

DEFAULT_LIFETIME_SECONDS = 2.0
# An event's seat ids as one value, sorted as PostgreSQL compares uuids (bytewise), so that
# a large map is read without a Python object per seat left behind in the allocator.
SORTED_SEAT_IDS = text(
    "SELECT string_agg(uuid_send(id), ''::bytea ORDER BY id) FROM seats WHERE event_id = :event_id"
)
# Seat ids are remembered for at most this many events; then the memory starts over.
MAX_EVENTS_WITH_SEATS = 1000


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
    seat_map_version: int
    # The event's waiting room when it is on: holds then need a queue pass.
    queue: QueueRules | None = None


@dataclass
class _Entry:
    facts: EventFacts
    loaded_at: float = field(default_factory=time.monotonic)


class SeatIds:
    """An event's seat ids as one sorted buffer of 16-byte values: 16 bytes a seat, where a
    set of UUID objects costs about a hundred, so a worker's memory stays flat however many
    large events it has served."""

    def __init__(self, sorted_ids: bytes) -> None:
        self._sorted = sorted_ids
        # Seats added to a grown map after the buffer was read.
        self._added: set[uuid.UUID] = set()

    def __len__(self) -> int:
        return len(self._sorted) // 16

    def __getitem__(self, index: int) -> bytes:
        return self._sorted[index * 16 : index * 16 + 16]

    def __contains__(self, seat_id: object) -> bool:
        if not isinstance(seat_id, uuid.UUID):
            return False
        wanted = seat_id.bytes
        index = bisect.bisect_left(self, wanted)
        return (index < len(self) and self[index] == wanted) or seat_id in self._added

    def add(self, seat_ids: Iterable[uuid.UUID]) -> None:
        self._added.update(seat_ids)


class OnSaleCache:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.lifetime = lifetime_seconds
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._refreshing: SingleFlight[uuid.UUID, EventFacts | None] = SingleFlight()
        # Seats are never renumbered and a map with taken seats only grows, so a seat id
        # once seen stays valid for holding; the booking transaction checks it anyway.
        self._known_seats: dict[uuid.UUID, SeatIds] = {}
        self._loading: SingleFlight[uuid.UUID, SeatIds] = SingleFlight()

    async def event(self, event_id: uuid.UUID) -> EventFacts | None:
        """The event's facts. An entry past its lifetime is refreshed by one request (single
        flight) while the others keep answering from it."""
        entry = self._entries.get(event_id)
        if entry is not None and time.monotonic() - entry.loaded_at <= self.lifetime:
            return entry.facts
        refresh = self._refreshing.start(event_id, partial(self._load, event_id))
        if entry is not None:
            return entry.facts
        return await asyncio.shield(refresh)

    async def aclose(self) -> None:
        """Waits for the refreshes and seat reads still reading (a stale reader does not
        wait for its own refresh), so that none holds a connection of an engine about to be
        disposed."""
        await self._refreshing.wait()
        await self._loading.wait()

    def forget(self, event_id: uuid.UUID) -> None:
        """Drops the event's facts, so that this process's next request reads them anew."""
        self._entries.pop(event_id, None)

    async def _load(self, event_id: uuid.UUID) -> EventFacts | None:
        async with self.sessions() as session:
            found = await session.execute(
                select(Event, EventQueue)
                .outerjoin(EventQueue, EventQueue.event_id == Event.id)
                .where(Event.id == event_id)
            )
            row = found.tuples().one_or_none()
        if row is None:
            self._entries.pop(event_id, None)
            return None
        facts = _facts(*row)
        # Only events on sale are kept: they are the hot path, and a newly published event
        # must take holds at once.
        if facts.status is EventStatus.ON_SALE:
            self._entries[event_id] = _Entry(facts)
        else:
            self._entries.pop(event_id, None)
        return facts

    async def known_seats(
        self, event_id: uuid.UUID, wanted: frozenset[uuid.UUID]
    ) -> frozenset[uuid.UUID]:
        """Those of `wanted` that are seats of the event. The first request of an event
        reads all its seat ids, once for the whole process (others wait for that read);
        after that only ids never seen are looked up, e.g. seats added to a grown map."""
        known = await self._seats_of(event_id)
        if unseen := frozenset(s for s in wanted if s not in known):
            async with self.sessions() as session:
                found = await session.scalars(
                    select(Seat.id).where(Seat.event_id == event_id, Seat.id.in_(unseen))
                )
                known.add(found)
        return frozenset(s for s in wanted if s in known)

    async def _seats_of(self, event_id: uuid.UUID) -> SeatIds:
        """The event's seat ids, read by one request of a burst for all of them (with a
        lock instead, the last of 128 holds on a new event waited seconds)."""
        if (known := self._known_seats.get(event_id)) is not None:
            return known
        return await self._loading.join(event_id, partial(self._load_seats, event_id))

    async def _load_seats(self, event_id: uuid.UUID) -> SeatIds:
        async with self.sessions() as session:
            ids = await session.scalar(SORTED_SEAT_IDS, {"event_id": event_id})
        if len(self._known_seats) >= MAX_EVENTS_WITH_SEATS:
            self._known_seats.clear()
        known = self._known_seats[event_id] = SeatIds(ids or b"")
        return known


def _facts(event: Event, room: EventQueue | None) -> EventFacts:
    return EventFacts(
        id=event.id,
        status=event.status,
        sale_starts_at=event.sale_starts_at,
        sale_ends_at=event.sale_ends_at,
        hold_ttl_seconds=event.hold_ttl_seconds,
        max_hold_extensions=event.max_hold_extensions,
        max_hold_lifetime_seconds=event.max_hold_lifetime_seconds,
        max_seats_per_booking=event.max_seats_per_booking,
        seat_map_version=event.seat_map_version,
        queue=rules_of(event, room),
    )
