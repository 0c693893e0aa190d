"""How a process refreshes its availability snapshot, on real PostgreSQL and Valkey: one
request refreshes a stale snapshot while the others are answered at once from the one
before, for up to STALE_SECONDS; after that, or with no snapshot before, they wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


@dataclass
class Rig:
    cache: AvailabilityCache
    layout: SeatLayout
    log: GatedLog
    redis: Redis

    async def snapshot(self) -> snapshots.Snapshot:
        return await self.cache.snapshot(self.layout)

    async def stale_with_a_refresh_under_way(
        self,
    ) -> tuple[snapshots.Snapshot, asyncio.Task[snapshots.Snapshot]]:
        """The snapshot taken first; then, once the event's version has moved on and that
        snapshot is stale, a refresh waiting on the closed gate."""
        before = await self.snapshot()
        await self.redis.incr(keys.seat_version(self.layout.event_id))
        await asyncio.sleep(snapshots.FRESH_SECONDS)
        self.log.gate.clear()
        reads = self.log.reads
        refresh = asyncio.create_task(self.snapshot())
        while self.log.reads == reads:
            await asyncio.sleep(0)
        return before, refresh


@pytest.fixture
async def rig(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    redis: Redis,
) -> AsyncIterator[Rig]:
    event = await create_event(engine)
    layout = await LayoutCache(sessions, OnSaleCache(sessions)).layout(event.id)
    log = GatedLog(redis)
    cache = AvailabilityCache(store, log, taken_snapshot(sessions))
    yield Rig(cache, layout, log, redis)
    log.gate.set()
    await cache.aclose()


async def test_readers_during_a_refresh_get_the_snapshot_before_at_once(rig: Rig) -> None:
    before, refresh = await rig.stale_with_a_refresh_under_way()

    meanwhile = [await asyncio.wait_for(rig.snapshot(), SETTLE_SECONDS) for _ in range(20)]
    reads_meanwhile = rig.log.reads
    rig.log.gate.set()
    refreshed = await refresh
    after = await rig.snapshot()

    assert {s.version for s in meanwhile} == {before.version}
    assert reads_meanwhile == 1  # the one refresh (the first build had nothing to compare)
    assert before.version is not None
    assert refreshed.version == before.version + 1
    assert after is refreshed


async def test_a_snapshot_older_than_the_stale_limit_is_not_served(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "STALE_SECONDS", snapshots.FRESH_SECONDS + 0.1)
    before, refresh = await rig.stale_with_a_refresh_under_way()
    await asyncio.sleep(0.1)

    waiter = asyncio.create_task(rig.snapshot())
    await asyncio.sleep(SETTLE_SECONDS)
    waited = not waiter.done()
    rig.log.gate.set()

    assert waited
    assert before.version is not None
    assert (await waiter).version == before.version + 1
    assert (await refresh).version == before.version + 1


async def test_a_failed_refresh_fails_its_caller_and_the_next_reader_refreshes_again(
    rig: Rig,
) -> None:
    before, refresh = await rig.stale_with_a_refresh_under_way()
    rig.log.failing = True

    served_stale = await asyncio.wait_for(rig.snapshot(), SETTLE_SECONDS)
    rig.log.gate.set()
    with pytest.raises(ConnectionError):
        await refresh
    rig.log.failing = False
    again = await rig.snapshot()

    assert served_stale is before
    assert before.version is not None
    assert again.version == before.version + 1
