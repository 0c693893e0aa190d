"""How a process refreshes its availability snapshot, on real PostgreSQL and Valkey: one
request refreshes a stale snapshot while the others are answered at once from the one
before, for up to STALE_SECONDS; after that, or with no snapshot before, they wait."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock import keys
from seatlock.availability import snapshot as snapshots
from seatlock.availability.changes import ChangeLog
from seatlock.availability.layout import LayoutCache, SeatLayout
from seatlock.availability.snapshot import AvailabilityCache
from seatlock.holds.on_sale import OnSaleCache
from seatlock.holds.placement import taken_snapshot
from seatlock.holds.store import HoldStore
from tests.factories import create_event

# Long enough for a waiter that should not wait to have been answered.
SETTLE_SECONDS = 0.05


class GatedLog(ChangeLog):
    """Version reads that wait while `gate` is closed, fail while `failing` is set, and
    are counted."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False
        self.reads = 0

    async def version(self, event_id: uuid.UUID) -> int | None:
        self.reads += 1
        await self.gate.wait()
        if self.failing:
            raise ConnectionError("Redis went away")
        return await super().version(event_id)


async def _setup(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    redis: Redis,
) -> tuple[AvailabilityCache, SeatLayout, GatedLog]:
    event = await create_event(engine)
    layout = await LayoutCache(sessions, OnSaleCache(sessions)).layout(event.id)
    log = GatedLog(redis)
    return AvailabilityCache(store, log, taken_snapshot(sessions)), layout, log


async def _a_change_then_a_refresh_under_way(
    cache: AvailabilityCache, layout: SeatLayout, log: GatedLog, redis: Redis
) -> asyncio.Task[snapshots.Snapshot]:
    """Moves the event's version on, lets the snapshot go stale, and starts a refresh that
    waits on the closed gate."""
    await redis.incr(keys.seat_version(layout.event_id))
    await asyncio.sleep(snapshots.FRESH_SECONDS)
    log.gate.clear()
    reads = log.reads
    refresh = asyncio.create_task(cache.snapshot(layout))
    while log.reads == reads:
        await asyncio.sleep(0)
    return refresh


async def test_readers_during_a_refresh_get_the_snapshot_before_at_once(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    redis: Redis,
) -> None:
    cache, layout, log = await _setup(engine, sessions, store, redis)
    before = await cache.snapshot(layout)
    refresh = await _a_change_then_a_refresh_under_way(cache, layout, log, redis)

    meanwhile = [await asyncio.wait_for(cache.snapshot(layout), SETTLE_SECONDS) for _ in range(20)]
    reads_meanwhile = log.reads
    log.gate.set()
    refreshed = await refresh
    after = await cache.snapshot(layout)

    assert {s.version for s in meanwhile} == {before.version}
    assert reads_meanwhile == 1  # the one refresh (the first build had nothing to compare)
    assert before.version is not None
    assert refreshed.version == before.version + 1
    assert after is refreshed
    await cache.aclose()


async def test_a_snapshot_older_than_the_stale_limit_is_not_served(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "STALE_SECONDS", snapshots.FRESH_SECONDS + 0.1)
    cache, layout, log = await _setup(engine, sessions, store, redis)
    before = await cache.snapshot(layout)
    refresh = await _a_change_then_a_refresh_under_way(cache, layout, log, redis)
    await asyncio.sleep(0.1)

    waiter = asyncio.create_task(cache.snapshot(layout))
    await asyncio.sleep(SETTLE_SECONDS)
    waited = not waiter.done()
    log.gate.set()

    assert waited
    assert before.version is not None
    assert (await waiter).version == before.version + 1
    assert (await refresh).version == before.version + 1
    await cache.aclose()


async def test_a_failed_refresh_fails_its_caller_and_the_next_reader_refreshes_again(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    redis: Redis,
) -> None:
    cache, layout, log = await _setup(engine, sessions, store, redis)
    before = await cache.snapshot(layout)
    refresh = await _a_change_then_a_refresh_under_way(cache, layout, log, redis)
    log.failing = True

    served_stale = await asyncio.wait_for(cache.snapshot(layout), SETTLE_SECONDS)
    log.gate.set()
    with pytest.raises(ConnectionError):
        await refresh
    log.failing = False
    again = await cache.snapshot(layout)

    assert served_stale is before
    assert before.version is not None
    assert again.version == before.version + 1
    await cache.aclose()
