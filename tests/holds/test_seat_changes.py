"""Every script that changes seat states records the change in the event's log, with the
event's next version, in the same atomic step (on one server, a cluster and fakeredis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from seatlock import keys
from seatlock.availability.changes import Change, ChangeLog
from seatlock.holds.replies import SeatsUnavailable
from seatlock.holds.store import HoldPolicy, HoldStore
from seatlock.models import SeatState
from tests.holds.holdstore import POLICY, seats, snapshot_of

EMPTY = snapshot_of({})
SHORT = HoldPolicy(ttl_ms=200, max_extensions=0, max_lifetime_ms=200, seat_cap=10)


@pytest.fixture
def store(any_store: HoldStore) -> HoldStore:
    return any_store


async def _log(store: HoldStore, event: uuid.UUID) -> list[Change]:
    return await ChangeLog(store.redis).after(event, None)


def _summary(changes: list[Change]) -> list[tuple[str, str, set[str]]]:
    return [(c.state, c.cause, set(c.seats)) for c in changes]


def _ids(*seat_ids: uuid.UUID) -> set[str]:
    return set(map(str, seat_ids))


async def test_each_change_of_a_seat_is_logged_in_order_with_consecutive_versions(
    store: HoldStore,
) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    s1, s2, s3, s4 = seats(4)

    kept = await store.hold(event, alice, [s1, s2], POLICY, EMPTY)
    dropped = await store.hold(event, bob, [s3], POLICY, EMPTY)
    await store.release(dropped.id, bob)
    await store.complete(kept.id, alice, SeatState.RESERVED, [s1, s2])
    await store.mark_taken(event, SeatState.SOLD, [s1, s2], "payment")
    await store.free_taken(event, [s2], "cancellation")
    await store.hold(event, bob, [s4], SHORT, EMPTY)
    await asyncio.sleep(0.3)
    expired, next_in = await store.sweep_expired(event)

    assert (expired, next_in) == (1, None)
    log = await _log(store, event)
    assert _summary(log) == [
        ("held", "hold", _ids(s1, s2)),
        ("held", "hold", _ids(s3)),
        ("available", "release", _ids(s3)),
        ("reserved", "booking", _ids(s1, s2)),
        ("sold", "payment", _ids(s1, s2)),
        ("available", "cancellation", _ids(s2)),
        ("held", "hold", _ids(s4)),
        ("available", "expiry", _ids(s4)),
    ]
    versions = [c.version for c in log]
    assert versions == list(range(versions[0], versions[0] + len(log)))
    assert await ChangeLog(store.redis).version(event) == versions[-1]


async def test_steps_that_change_nothing_log_nothing(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    s1, s2 = seats(2)
    await store.hold(event, alice, [s1], POLICY, EMPTY)

    with pytest.raises(SeatsUnavailable):
        await store.hold(event, bob, [s1, s2], POLICY, EMPTY)
    held = await store.hold(event, bob, [s2], POLICY, EMPTY)
    await store.extend(held.id, bob)
    await store.claim(held.id, bob)
    await store.unclaim(held.id, bob)
    await store.mark_taken(event, SeatState.SOLD, [], "payment")
    await store.free_taken(event, [uuid.uuid4()], "cancellation")

    assert _summary(await _log(store, event)) == [
        ("held", "hold", _ids(s1)),
        ("held", "hold", _ids(s2)),
    ]


async def test_steps_run_twice_log_their_changes_once(store: HoldStore) -> None:
    # As when redis-py sends a pipeline of them again after its answers were lost.
    event, alice = uuid.uuid4(), uuid.uuid4()
    s1, s2 = seats(2)
    kept = await store.hold(event, alice, [s1, s2], POLICY, EMPTY)

    for _ in range(2):
        await store.complete(kept.id, alice, SeatState.RESERVED, [s1, s2])
    for _ in range(2):
        await store.mark_taken(event, SeatState.SOLD, [s1, s2], "payment")
    for _ in range(2):
        await store.free_taken(event, [s2], "cancellation")

    assert _summary(await _log(store, event)) == [
        ("held", "hold", _ids(s1, s2)),
        ("reserved", "booking", _ids(s1, s2)),
        ("sold", "payment", _ids(s1, s2)),
        ("available", "cancellation", _ids(s2)),
    ]


async def test_an_expired_hold_announces_only_the_seats_it_still_had(store: HoldStore) -> None:
    event, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    s1, s2 = seats(2)
    await store.hold(event, alice, [s1, s2], SHORT, EMPTY)
    await asyncio.sleep(0.3)

    # Holding s1 again expires alice's hold on the way: both seats are announced free
    # before bob's hold, never after it.
    await store.hold(event, bob, [s1], POLICY, EMPTY)
    assert (await store.sweep_expired(event))[0] == 0

    assert _summary(await _log(store, event)) == [
        ("held", "hold", _ids(s1, s2)),
        ("available", "expiry", _ids(s1, s2)),
        ("held", "hold", _ids(s1)),
    ]


async def test_the_sweep_answers_when_the_next_hold_runs_out(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    await store.hold(event, alice, seats(1), POLICY, EMPTY)

    expired, next_in = await store.sweep_expired(event)

    assert expired == 0
    assert next_in is not None
    assert 59 < next_in <= 60


async def test_seat_states_show_the_version_of_the_last_change(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    s1, s2, s3 = seats(3)
    sold = snapshot_of({s2: SeatState.SOLD, s3: SeatState.RESERVED})
    await store.hold(event, alice, [s1], POLICY, sold)

    states = await store.seat_states(event, sold)

    assert states.version == await ChangeLog(store.redis).version(event)
    assert sorted(states.taken) == sorted([(str(s2), "sold"), (str(s3), "reserved")])
    assert states.held == [str(s1)]


async def test_a_reload_of_the_cache_logs_what_postgresql_corrected(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    s1, s2, s3 = seats(3)
    await store.hold(event, alice, [s3], POLICY, snapshot_of({s1: SeatState.RESERVED}))
    # The cache goes stale (as it does after its lifetime) while PostgreSQL sold s2 and
    # freed s1 in writes Redis never saw.
    await store.redis.hset(keys.taken_seats(event), "__ready__", "0")  # type: ignore[misc]

    await store.load_taken(event, snapshot_of({s2: SeatState.SOLD}))

    corrections = _summary(await _log(store, event))[1:]
    assert sorted(corrections, key=lambda c: c[0]) == [
        ("available", "refresh", _ids(s1)),
        ("sold", "refresh", _ids(s2)),
    ]


async def test_a_cache_lost_altogether_asks_clients_to_resync(store: HoldStore) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    await store.hold(event, alice, seats(1), POLICY, EMPTY)
    await store.redis.delete(keys.taken_seats(event))

    await store.load_taken(event, EMPTY)

    assert [c.state for c in await _log(store, event)] == ["held", "resync"]


async def test_a_version_that_starts_over_starts_above_every_earlier_one(
    store: HoldStore,
) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    await store.hold(event, alice, seats(1), POLICY, EMPTY)
    before = await ChangeLog(store.redis).version(event)
    assert before is not None
    # Redis lost the event's log, as after a restart without persistence.
    await store.redis.delete(keys.seat_version(event), keys.seat_changes(event))
    # A restart takes longer than this; the new count starts from the clock.
    await asyncio.sleep(0.01)

    await store.hold(event, alice, seats(1), POLICY, EMPTY)

    after = await ChangeLog(store.redis).version(event)
    assert after is not None
    assert after > before
