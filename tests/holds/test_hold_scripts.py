"""Each hold script, directly against a real Valkey server."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import cast

import pytest
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

from seatlock import keys
from seatlock.errors import Conflict, Gone, NotFound, Unavailable
from seatlock.holds.replies import SeatsUnavailable
from seatlock.holds.store import HoldPolicy, HoldStore, event_of_hold
from seatlock.models import SeatState
from seatlock.redis_client import best_effort, hash_field
from tests.holds.holdstore import POLICY, seats, snapshot_of

EMPTY = snapshot_of({})


@pytest.fixture
def store(any_store: HoldStore) -> HoldStore:
    return any_store


async def test_a_hold_takes_all_seats_or_none(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    s1, s2, s3 = seats(3)
    await store.hold(event, alice, [s1, s2], POLICY, EMPTY)

    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, bob, [s2, s3], POLICY, EMPTY)

    assert refused.value.members() == {"conflicts": [str(s2)], "reason": "held"}
    held = await store.held_seats(event)
    assert set(held) == {s1, s2}
    assert {h.owner_id for h in held.values()} == {alice}


async def test_a_hold_expires_on_its_own(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    seat = seats(1)
    short = HoldPolicy(ttl_ms=150, max_extensions=1, max_lifetime_ms=150, seat_cap=10)
    first = await store.hold(event, alice, seat, short, EMPTY)
    await asyncio.sleep(0.3)

    assert await store.held_seats(event) == {}
    with pytest.raises(Gone):
        await store.claim(first.id, alice)
    second = await store.hold(event, bob, seat, POLICY, EMPTY)
    assert second.seats == seat


async def test_extensions_slide_the_expiry_up_to_their_limit(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    hold = await store.hold(event, alice, seats(2), POLICY, EMPTY)
    assert hold.extensions_left == 2

    once = await store.extend(hold.id, alice)
    twice = await store.extend(hold.id, alice)

    assert once.expires_at >= hold.expires_at
    assert (once.extensions_left, twice.extensions_left) == (1, 0)
    with pytest.raises(Conflict):
        await store.extend(hold.id, alice)


async def test_an_early_extension_adds_a_whole_ttl_to_the_expiry(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    policy = HoldPolicy(ttl_ms=60_000, max_extensions=3, max_lifetime_ms=600_000, seat_cap=10)
    hold = await store.hold(event, alice, seats(1), policy, EMPTY)

    # Extended at once, twice: each extension counts from the expiry, not from now, so
    # none of it is wasted.
    once = await store.extend(hold.id, alice)
    twice = await store.extend(hold.id, alice)

    created_ms = round(hold.expires_at.timestamp() * 1000)
    assert round(once.expires_at.timestamp() * 1000) == created_ms + 60_000
    assert round(twice.expires_at.timestamp() * 1000) == created_ms + 120_000
    assert (await store.get(hold.id, alice)).expires_at == twice.expires_at


async def test_an_extension_never_passes_the_absolute_lifetime(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    capped = HoldPolicy(ttl_ms=60_000, max_extensions=5, max_lifetime_ms=60_005, seat_cap=10)
    hold = await store.hold(event, alice, seats(1), capped, EMPTY)
    await asyncio.sleep(0.02)

    extended = await store.extend(hold.id, alice)

    created_ms = round(hold.expires_at.timestamp() * 1000) - 60_000
    assert round(extended.expires_at.timestamp() * 1000) == created_ms + 60_005
    with pytest.raises(Conflict):
        await store.extend(hold.id, alice)


async def test_only_the_owner_can_see_extend_release_or_claim(store: HoldStore) -> None:
    event, alice, mallory = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    hold = await store.hold(event, alice, seats(2), POLICY, EMPTY)

    for attempt in (store.get, store.extend, store.release, store.claim):
        with pytest.raises(NotFound):
            await attempt(hold.id, mallory)
    assert (await store.get(hold.id, alice)).seats == hold.seats


async def test_release_frees_every_seat(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    wanted = seats(3)
    hold = await store.hold(event, alice, wanted, POLICY, EMPTY)

    released = await store.release(hold.id, alice)

    assert released == wanted
    assert await store.held_seats(event) == {}
    assert (await store.hold(event, bob, wanted, POLICY, EMPTY)).seats == wanted
    with pytest.raises(Gone):
        await store.release(hold.id, alice)


async def test_the_owner_cap_counts_every_live_hold_of_the_event(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    cap4 = HoldPolicy(ttl_ms=60_000, max_extensions=1, max_lifetime_ms=60_000, seat_cap=4)
    first = await store.hold(event, alice, seats(3), cap4, EMPTY)
    extra = seats(2)

    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, alice, extra, cap4, EMPTY)
    assert refused.value.members() == {"conflicts": [str(s) for s in extra], "reason": "limit"}

    await store.release(first.id, alice)
    assert (await store.hold(event, alice, extra, cap4, EMPTY)).seats == extra
    # Another event has its own cap.
    assert await store.hold(uuid.uuid4(), alice, seats(4), cap4, EMPTY)


async def test_claim_marks_the_hold_converting_once(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    hold = await store.hold(event, alice, seats(2), POLICY, EMPTY)

    claimed_event, claimed_seats = await store.claim(hold.id, alice)

    assert (claimed_event, claimed_seats) == (event, hold.seats)
    with pytest.raises(Conflict):
        await store.claim(hold.id, alice)
    with pytest.raises(Conflict):
        await store.extend(hold.id, alice)
    await store.unclaim(hold.id, alice)
    assert (await store.claim(hold.id, alice))[1] == hold.seats


async def test_a_claim_whose_request_died_lapses_after_its_lease(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    hold = await store.hold(event, alice, seats(2), POLICY, EMPTY)
    store.claim_lease_ms = 200
    await store.claim(hold.id, alice)  # ... and the booking request is killed here
    with pytest.raises(Conflict):
        await store.claim(hold.id, alice)

    await asyncio.sleep(0.3)

    assert (await store.claim(hold.id, alice))[1] == hold.seats
    await asyncio.sleep(0.3)
    assert (await store.extend(hold.id, alice)).state == "held"


async def test_scripts_run_past_their_callers_deadline_do_nothing(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    hold = await store.hold(event, alice, seats(1), POLICY, EMPTY)
    # As if Redis had been frozen for a minute while the callers gave up.
    store.deadline_budget_ms = -60_000

    with pytest.raises(Unavailable):
        await store.hold(event, alice, seats(1), POLICY, EMPTY)
    with pytest.raises(Unavailable):
        await store.claim(hold.id, alice)
    with pytest.raises(Unavailable):
        await store.extend(hold.id, alice)

    assert await store.redis.zcard(keys.event_holds(event)) == 1
    assert await hash_field(store.redis, keys.hold(event, hold.id), "state") == "held"


async def test_a_write_redis_missed_is_reloaded_from_postgresql_once_redis_answers(
    store: HoldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    sold = seats(1)
    await store.hold(event, alice, seats(1), POLICY, EMPTY)  # the cache is loaded: nothing taken

    async def redis_down(*args: object, **kwargs: object) -> None:
        raise RedisConnectionError("Redis is down")

    with monkeypatch.context() as patched:
        patched.setattr(
            store, "scripts", replace(store.scripts, mark_taken=cast(AsyncScript, redis_down))
        )
        await best_effort(store.mark_taken(event, SeatState.SOLD, sold, "payment"))
    assert store.stale_events == {event}
    await store.repair_stale(snapshot_of({sold[0]: SeatState.SOLD}))

    # PostgreSQL sold the seat while Redis could not be told; the reloaded cache knows.
    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, alice, sold, POLICY, EMPTY)
    assert refused.value.reason == "sold"
    assert store.stale_events == set()


async def test_complete_records_the_seats_and_drops_the_hold(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    wanted = seats(2)
    hold = await store.hold(event, alice, wanted, POLICY, EMPTY)
    await store.claim(hold.id, alice)

    await store.complete(hold.id, alice, SeatState.RESERVED, wanted)

    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, bob, wanted, POLICY, EMPTY)
    assert refused.value.reason == "reserved"
    with pytest.raises(NotFound):
        await store.get(hold.id, alice)

    await store.free_taken(event, wanted, "cancellation")
    assert (await store.hold(event, bob, wanted, POLICY, EMPTY)).seats == wanted


async def test_sold_outranks_other_reasons(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    held, sold = seats(1), seats(1)
    await store.hold(event, alice, held, POLICY, snapshot_of({sold[0]: SeatState.SOLD}))

    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, bob, held + sold, POLICY, EMPTY)

    assert refused.value.members() == {"conflicts": [str(held[0]), str(sold[0])], "reason": "sold"}


async def test_the_taken_cache_is_rebuilt_from_postgresql_after_flushall(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    s1, s2 = seats(2)
    truth = {s1: SeatState.SOLD}
    snapshot = snapshot_of(truth)
    with pytest.raises(SeatsUnavailable):
        await store.hold(event, alice, [s1], POLICY, snapshot)

    await store.redis.flushall()
    truth[s2] = SeatState.RESERVED
    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, alice, [s2], POLICY, snapshot_of(truth))

    assert refused.value.members() == {"conflicts": [str(s2)], "reason": "reserved"}


async def test_a_stale_snapshot_is_not_loaded(store: HoldStore) -> None:
    event = uuid.uuid4()
    seat = seats(1)
    changed_meanwhile = False

    async def racing_snapshot(event_id: uuid.UUID) -> dict[uuid.UUID, SeatState]:
        # A booking commits and is recorded while this snapshot is being read.
        nonlocal changed_meanwhile
        if not changed_meanwhile:
            changed_meanwhile = True
            await store.mark_taken(event_id, SeatState.RESERVED, seat, "refresh")
            return {}
        return {seat[0]: SeatState.RESERVED}

    with pytest.raises(SeatsUnavailable) as refused:
        await store.hold(event, uuid.uuid4(), seat, POLICY, racing_snapshot)

    assert refused.value.reason == "reserved"
    assert await hash_field(store.redis, keys.taken_seats(event), str(seat[0])) == "reserved"


async def test_live_holds_are_listed_with_owner_seats_and_expiry(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    short = HoldPolicy(ttl_ms=100, max_extensions=0, max_lifetime_ms=100, seat_cap=10)
    await store.hold(event, alice, seats(1), short, EMPTY)
    kept = await store.hold(event, bob, seats(2), POLICY, EMPTY)
    await asyncio.sleep(0.2)

    now, total, holds = await store.live_holds(event, limit=10)

    assert total == 1
    assert [(h.id, h.owner_id, h.seats) for h in holds] == [(kept.id, bob, kept.seats)]
    assert holds[0].expires_at > now


async def test_hold_ids_are_random_and_name_their_event(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    ids = {(await store.hold(event, alice, seats(1), POLICY, EMPTY)).id for _ in range(5)}

    assert len(ids) == 5
    assert {event_of_hold(i) for i in ids} == {event}
    for forged in ("nonsense", f"{event.hex}.short", f"{event.hex}"):
        with pytest.raises(NotFound):
            event_of_hold(forged)


async def test_an_owners_set_expires_with_its_longest_hold(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    await store.hold(event, alice, seats(1), POLICY, EMPTY)

    ttl = await store.redis.pttl(keys.owner_holds(event, alice))

    assert 0 < ttl <= POLICY.max_lifetime_ms
