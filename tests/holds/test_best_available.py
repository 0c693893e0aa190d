"""Best available: the best_available script choosing and holding adjacent seats, on one
Valkey server, a three-node cluster and fakeredis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from seatlock import keys
from seatlock.errors import InvalidInput, Unavailable
from seatlock.holds import best_available
from seatlock.holds.best_available import Layout, Wanted, hold_best
from seatlock.holds.replies import Hold, SeatsUnavailable
from seatlock.holds.store import HoldStore
from seatlock.models import SeatState
from seatlock.redis_client import hash_field, hash_fields
from tests.holds.holdstore import POLICY, snapshot_of


@pytest.fixture
def store(any_store: HoldStore) -> HoldStore:
    return any_store


class Plan:
    """An event drawn as rows: 'o' a free seat, 'x' a sold one, ' ' an aisle."""

    def __init__(self, *rows: str, section: str = "A", category: str = "standard") -> None:
        self.seat_at: dict[tuple[int, int], uuid.UUID] = {}
        self.sold: dict[uuid.UUID, SeatState] = {}
        records = []
        for row, picture in enumerate(rows, start=1):
            entries = []
            for number, mark in enumerate(picture, start=1):
                if mark == " ":
                    continue
                seat = uuid.uuid4()
                self.seat_at[(row, number)] = seat
                if mark == "x":
                    self.sold[seat] = SeatState.SOLD
                entries.append(f"{number},{seat},1")
            records.append((section, ";".join(entries)))
        self.layout = Layout([category], records)
        self.where = {seat: place for place, seat in self.seat_at.items()}

    async def hold(
        self, store: HoldStore, event: uuid.UUID, quantity: int, **filters: str
    ) -> list[tuple[int, int]]:
        hold = await self.hold_for(store, event, uuid.uuid4(), quantity, **filters)
        return [self.where[seat] for seat in hold.seats]

    async def hold_for(
        self, store: HoldStore, event: uuid.UUID, owner: uuid.UUID, quantity: int, **filters: str
    ) -> Hold:
        async def layout(event_id: uuid.UUID) -> Layout:
            return self.layout

        wanted = Wanted(quantity, filters.get("section"), filters.get("category"))
        sources = (snapshot_of(self.sold), layout)
        return await hold_best(store, event, owner, POLICY, wanted, sources)


async def test_picks_adjacent_free_seats_in_one_row(store: HoldStore) -> None:
    plan = Plan("xoxoox")

    assert await plan.hold(store, uuid.uuid4(), 2) == [(1, 4), (1, 5)]


async def test_avoids_leaving_a_single_empty_seat(store: HoldStore) -> None:
    plan = Plan("xooo", "oo")

    # Row 1's only windows strand a seat; row 2 fits exactly.
    assert await plan.hold(store, uuid.uuid4(), 2) == [(2, 1), (2, 2)]


async def test_takes_a_window_that_strands_a_seat_when_nothing_better_is_in_reach(
    store: HoldStore,
) -> None:
    plan = Plan("ooo")

    assert await plan.hold(store, uuid.uuid4(), 2) == [(1, 1), (1, 2)]


async def test_an_aisle_breaks_adjacency(store: HoldStore) -> None:
    plan = Plan("oo oo")

    with pytest.raises(SeatsUnavailable) as refused:
        await plan.hold(store, uuid.uuid4(), 3)

    assert refused.value.reason == "unavailable"


async def test_front_rows_come_first(store: HoldStore) -> None:
    plan = Plan("xxxx", "oooo", "oooo")
    event = uuid.uuid4()

    first = await plan.hold(store, event, 2)
    second = await plan.hold(store, event, 2)
    third = await plan.hold(store, event, 2)

    assert (first, second, third) == ([(2, 1), (2, 2)], [(2, 3), (2, 4)], [(3, 1), (3, 2)])


async def test_concurrent_buyers_get_distinct_seats_until_none_are_left(store: HoldStore) -> None:
    plan = Plan(*["oooooooooo"] * 6)
    event = uuid.uuid4()
    await plan.hold(store, event, 2)  # loads the caches once

    results = await asyncio.gather(
        *(plan.hold(store, event, 2) for _ in range(40)), return_exceptions=True
    )

    held = [seat for r in results if isinstance(r, list) for seat in r]
    refused = [r for r in results if isinstance(r, SeatsUnavailable)]
    assert (len(held), len(set(held)), len(refused)) == (58, 58, 11)


async def test_full_rows_leave_the_open_set_and_come_back_on_release(store: HoldStore) -> None:
    plan = Plan("oo", "oo", "oo")
    event = uuid.uuid4()
    owner = uuid.uuid4()
    first = await plan.hold_for(store, event, owner, 2)
    await plan.hold(store, event, 2)
    await plan.hold(store, event, 2)  # row 1 and 2 are looked at, found full, and dropped
    open_rows = keys.open_rows(event)

    assert await store.redis.zrange(open_rows, 0, -1) == ["3"]
    await store.release(first.id, owner)
    assert await store.redis.zrange(open_rows, 0, -1) == ["1", "3"]
    assert await plan.hold(store, event, 2) == [(1, 1), (1, 2)]


async def test_a_full_row_reopens_when_its_hold_runs_out(store: HoldStore) -> None:
    plan = Plan("oo", "oo")
    event = uuid.uuid4()
    hold = await plan.hold_for(store, event, uuid.uuid4(), 2)
    await plan.hold(store, event, 2)
    with pytest.raises(SeatsUnavailable):
        await plan.hold(store, event, 2)
    # What the TTL does when it runs out, without waiting for it.
    await store.redis.zadd(keys.event_holds(event), {hold.id: 1})
    await store.redis.zadd(keys.reopen_rows(event), {"1": 1})

    assert await plan.hold(store, event, 2) == [(1, 1), (1, 2)]


async def test_seats_freed_in_postgresql_reopen_their_row(store: HoldStore) -> None:
    plan = Plan("xx", "oo")
    event = uuid.uuid4()
    await plan.hold(store, event, 2)
    with pytest.raises(SeatsUnavailable):
        await plan.hold(store, event, 2)

    await store.free_taken(event, [plan.seat_at[(1, 1)], plan.seat_at[(1, 2)]], "cancellation")

    assert await plan.hold(store, event, 2) == [(1, 1), (1, 2)]


async def test_sections_and_categories_filter_and_unknown_ones_are_named(
    store: HoldStore,
) -> None:
    plan = Plan("oo", "oo", section="B", category="balcony")
    event = uuid.uuid4()

    assert await plan.hold(store, event, 2, section="B", category="balcony") == [(1, 1), (1, 2)]
    for bad in ({"section": "Z"}, {"category": "stalls"}):
        with pytest.raises(InvalidInput) as refused:
            await plan.hold(store, event, 2, **bad)
        assert refused.value.field == next(iter(bad))


async def test_the_owner_seat_cap_applies(store: HoldStore) -> None:
    plan = Plan("oooooooooooo")
    owner = uuid.uuid4()

    with pytest.raises(SeatsUnavailable) as refused:
        await plan.hold_for(store, uuid.uuid4(), owner, POLICY.seat_cap + 1)

    assert refused.value.reason == "limit"


async def test_a_request_past_its_deadline_holds_nothing(store: HoldStore) -> None:
    plan = Plan("oo")
    event = uuid.uuid4()
    await plan.hold(store, event, 1)
    store.deadline_budget_ms = -60_000  # the caller gave up a minute ago

    with pytest.raises(Unavailable):
        await plan.hold(store, event, 1)

    assert len(await hash_fields(store.redis, keys.held_seats(event))) == 1


async def test_a_changed_seat_map_is_reloaded(store: HoldStore) -> None:
    before, after = Plan("x"), Plan("x", "oo")
    event = uuid.uuid4()
    with pytest.raises(SeatsUnavailable):
        await before.hold(store, event, 2)

    await store.forget_layout(event)

    assert await after.hold(store, event, 2) == [(2, 1), (2, 2)]


async def test_a_large_layout_is_loaded_in_chunks(
    store: HoldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(best_available, "ROWS_PER_CHUNK", 2)
    plan = Plan("xx", "xx", "xx", "xx", "oo")
    event = uuid.uuid4()

    assert await plan.hold(store, event, 2) == [(5, 1), (5, 2)]
    assert await hash_field(store.redis, keys.layout(event), "__rows__") == "5"
    assert await hash_field(store.redis, keys.layout(event), "range:A") == "1,5"
