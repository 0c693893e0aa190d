"""The rebuild of an event's reserved/sold cache from PostgreSQL, against a real Valkey:
once per process however many holds of a burst find the cache missing."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from seatlock.holds.store import HoldStore
from seatlock.models import SeatState
from tests.holds.holdstore import POLICY, seats

BURST = 30


class SnapshotFailed(Exception):
    """PostgreSQL's read of the seat states failed."""


class CountedSnapshot:
    """PostgreSQL's reserved and sold seats, slow enough for a burst to find the rebuild
    under way; counts its reads, and fails them while `failing`."""

    def __init__(self, taken: dict[uuid.UUID, SeatState]) -> None:
        self.taken, self.reads, self.failing = taken, 0, False

    async def __call__(self, event_id: uuid.UUID) -> dict[uuid.UUID, SeatState]:
        self.reads += 1
        await asyncio.sleep(0.05)
        if self.failing:
            raise SnapshotFailed(event_id)
        return dict(self.taken)


async def test_a_burst_of_holds_rebuilds_the_cache_once(store: HoldStore) -> None:
    event = uuid.uuid4()
    sold, *free = seats(BURST + 1)
    snapshot = CountedSnapshot({sold: SeatState.SOLD})

    holds = await asyncio.gather(
        *(store.hold(event, uuid.uuid4(), [seat], POLICY, snapshot) for seat in free)
    )

    assert snapshot.reads == 1
    assert sorted(h.seats[0] for h in holds) == sorted(free)
    states = await store.seat_states(event, snapshot)
    assert states.taken == [(str(sold), "sold")]
    assert snapshot.reads == 1


async def test_a_failed_rebuild_fails_every_waiting_hold_and_the_next_one_retries(
    store: HoldStore,
) -> None:
    event = uuid.uuid4()
    wanted = seats(5)
    snapshot = CountedSnapshot({})
    snapshot.failing = True

    outcomes = await asyncio.gather(
        *(store.hold(event, uuid.uuid4(), [seat], POLICY, snapshot) for seat in wanted),
        return_exceptions=True,
    )

    assert snapshot.reads == 1
    assert all(isinstance(o, SnapshotFailed) for o in outcomes), outcomes
    assert await store.held_seats(event) == {}
    snapshot.failing = False
    hold = await store.hold(event, uuid.uuid4(), wanted[:1], POLICY, snapshot)
    assert hold.seats == wanted[:1]
    assert snapshot.reads == 2


@pytest.mark.parametrize("waiters", [1, 3])
async def test_a_cancelled_waiter_leaves_the_rebuild_to_the_others(
    store: HoldStore, waiters: int
) -> None:
    event = uuid.uuid4()
    wanted = seats(waiters + 1)
    snapshot = CountedSnapshot({})
    first = asyncio.create_task(store.hold(event, uuid.uuid4(), wanted[:1], POLICY, snapshot))
    others = [
        asyncio.create_task(store.hold(event, uuid.uuid4(), [seat], POLICY, snapshot))
        for seat in wanted[1:]
    ]
    await asyncio.sleep(0.01)
    first.cancel()

    holds = await asyncio.gather(*others)

    assert first.cancelled()
    assert [h.seats[0] for h in holds] == wanted[1:]
    assert snapshot.reads == 1
