"""The hold expiry sweep: a hold that runs out frees its seats, and the change reaches
the stream of changes within about a second of its TTL, without waiting for a buyer to
touch the event.

Holds are indexed by expiry per event, so a sweep of an event costs O(holds expired). A
process sweeps the events on sale (read from PostgreSQL every few seconds) when their next
hold is due, and looks again at least every few seconds for holds placed meanwhile by
other processes; a hold this process placed makes its event due when it runs out. Any
number of processes may sweep at once: expiring a hold is one atomic script that frees
and records its seats exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.holds.store import HoldStore
from seatlock.models import Event, EventStatus
from seatlock.redis_client import Breaker

logger = logging.getLogger("seatlock")

TICK_SECONDS = 0.5
# How often the list of events on sale is read again.
EVENTS_READ_EVERY_SECONDS = 5.0
# An event with no hold due is looked at again after this long at most: a hold placed by
# another process in between expires no sooner than its TTL, so looking again a second
# before the shortest TTL keeps every expiry within a tick of its time.
LONGEST_LOOK_SECONDS = 5.0


@dataclass
class ExpirySchedule:
    """When each event on sale is next due for a sweep, on this process's monotonic clock."""

    due: dict[uuid.UUID, float] = field(default_factory=dict)
    # The longest this process waits before looking at an event again.
    look_again: dict[uuid.UUID, float] = field(default_factory=dict)
    events_read_at: float = -EVENTS_READ_EVERY_SECONDS

    def set_events(self, events: dict[uuid.UUID, int], now: float) -> None:
        """`events` maps each event on sale to its hold TTL in seconds."""
        self.look_again = {
            event_id: min(LONGEST_LOOK_SECONDS, max(TICK_SECONDS, ttl - 1.0))
            for event_id, ttl in events.items()
        }
        self.due = {event_id: self.due.get(event_id, now) for event_id in events}

    def note_placed(self, placed: dict[uuid.UUID, float]) -> None:
        """Holds this process placed: their events are due when the first runs out."""
        for event_id, runs_out in placed.items():
            self.due[event_id] = min(self.due.get(event_id, runs_out), runs_out)
        placed.clear()

    def due_now(self, now: float) -> list[uuid.UUID]:
        return [event_id for event_id, at in self.due.items() if at <= now]

    def swept(self, event_id: uuid.UUID, next_in: float | None, now: float) -> None:
        longest = self.look_again.get(event_id, LONGEST_LOOK_SECONDS)
        self.due[event_id] = now + (longest if next_in is None else min(next_in, longest))


async def _events_on_sale(sessions: async_sessionmaker[AsyncSession]) -> dict[uuid.UUID, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(Event.id, Event.hold_ttl_seconds).where(Event.status == EventStatus.ON_SALE)
        )
        return {event_id: ttl for event_id, ttl in rows.tuples()}


async def sweep_due(
    sessions: async_sessionmaker[AsyncSession], store: HoldStore, schedule: ExpirySchedule
) -> int:
    """One tick: sweeps every event that is due; answers the number of holds expired."""
    now = time.monotonic()
    if now - schedule.events_read_at >= EVENTS_READ_EVERY_SECONDS:
        # Marked read first, so that an unreachable PostgreSQL is asked again only later.
        schedule.events_read_at = now
        schedule.set_events(await _events_on_sale(sessions), now)
    schedule.note_placed(store.placed)
    expired = 0
    for event_id in schedule.due_now(now):
        count, next_in = await store.sweep_expired(event_id)
        expired += count
        schedule.swept(event_id, next_in, time.monotonic())
    return expired


async def sweep_holds_until(
    stop: asyncio.Event,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    breaker: Breaker,
) -> None:
    """Until `stop`, a tick every half second. The breaker keeps a frozen Redis from holding
    the loop up; a PostgreSQL outage only delays the next read of the events on sale."""
    schedule = ExpirySchedule()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_SECONDS)
        try:
            await breaker.attempt(lambda: sweep_due(sessions, store, schedule), 0)
        except Exception as exc:
            # The loop must outlive any one failure (PostgreSQL down, say).
            logger.warning("hold expiry sweep failed, retrying: %r", exc)
