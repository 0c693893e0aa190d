"""Script calls that redis-py sends a second time, against a real Valkey: when a connection
breaks after Redis ran a call but before its answer arrived, redis-py (`Retry(NoBackoff(),
1)`, as the service connects) sends the call once more, a pipeline's calls all together.
The hold, claim, extension and release scripts recognise their own first run and answer as
it did."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from seatlock import keys
from seatlock.errors import Gone
from seatlock.holds.best_available import Layout, Wanted, hold_best
from seatlock.holds.replies import Hold
from seatlock.holds.scripts import load_scripts, register_scripts
from seatlock.holds.store import HoldStore
from seatlock.ops.metrics import SCRIPT_PIPELINE_CALLS
from seatlock.redis_client import connect_redis, hash_field, hash_fields, ping
from seatlock.script_batches import ScriptBatches
from seatlock.settings import Settings
from tests.holds.holdstore import POLICY, seats, snapshot_of

EMPTY = snapshot_of({})


class LosesAnAnswer:
    """A TCP relay between a Redis client and Valkey. Armed, it drops the next answer that
    Valkey sends and closes both connections, as a network that broke once Redis had run
    the call; every other byte goes through. With `late_by`, the connection that follows a
    drop reaches Valkey that many seconds late, so the call sent again runs past its
    caller's deadline."""

    def __init__(self, redis_url: str) -> None:
        target = urlsplit(redis_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 6379)
        self.armed = False
        self.dropped = 0
        self.late_by = 0.0
        self.held_up = 0  # connections that reached Valkey late_by seconds late
        self._hold_up_next = 0.0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        """Stops listening and ends the connections still relayed."""
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self._relays.add(this)
        hold_up, self._hold_up_next = self._hold_up_next, 0.0
        if hold_up:
            self.held_up += 1
            await asyncio.sleep(hold_up)
        valkey, to_valkey = await asyncio.open_connection(*self._target)

        async def requests() -> None:
            while data := await client.read(65536):
                to_valkey.write(data)
                await to_valkey.drain()

        async def answers() -> None:
            while data := await valkey.read(65536):
                if self.armed:
                    self.armed = False
                    self.dropped += 1
                    self._hold_up_next = self.late_by
                    return
                to_client.write(data)
                await to_client.drain()

        # Whichever side ends first (the client closed, or an answer dropped) ends both.
        directions = [asyncio.create_task(requests()), asyncio.create_task(answers())]
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            for writer in (to_client, to_valkey):
                writer.close()
            await asyncio.gather(*directions, return_exceptions=True)
            self._relays.discard(this)


@pytest.fixture
async def relay(settings: Settings) -> AsyncIterator[LosesAnAnswer]:
    made = LosesAnAnswer(settings.redis_url)
    yield made
    await made.close()


@pytest.fixture
async def relayed(relay: LosesAnAnswer, settings: Settings) -> AsyncIterator[Redis]:
    """The service's own Redis client (its retry included), through the relay."""
    through = msgspec.structs.replace(settings, redis_url=await relay.start())
    made = connect_redis(through)
    assert isinstance(made, Redis)
    # The connection's greeting goes through before any answer is dropped.
    await ping(made)
    yield made
    await made.aclose()


async def _store(client: Redis, batches: ScriptBatches | None = None) -> HoldStore:
    scripts = register_scripts(client, batches)
    await load_scripts(client, scripts)
    store = HoldStore(client, scripts)
    await store.deadline_ms()
    return store


async def _holds_of_event(redis: Redis, event: uuid.UUID) -> dict[str, str]:
    """Every live hold of the event, by id: its seats."""
    ids = await redis.zrange(keys.event_holds(event), 0, -1)
    return {i: await hash_field(redis, keys.hold_seats(event), i) or "" for i in ids}


def arm(relay: LosesAnAnswer, store: HoldStore, late: bool) -> None:
    """Arms the relay; `late`: the call sent again reaches Valkey past its caller's
    deadline (a budget of 300 ms, a second late; below the client's 2 s socket timeout,
    which the resent call's connection waits within)."""
    relay.armed = True
    if late:
        store.deadline_budget_ms = 300
        relay.late_by = 1.0


async def _two_seats(relayed: Redis) -> tuple[HoldStore, uuid.UUID, uuid.UUID, list[uuid.UUID]]:
    """A store through the relay, an event whose cache of taken seats is loaded, an owner
    and two seats."""
    store = await _store(relayed)
    event = uuid.uuid4()
    await store.load_taken(event, EMPTY)
    return store, event, uuid.uuid4(), seats(2)


@pytest.mark.parametrize("late", [False, True], ids=["in time", "past its deadline"])
async def test_a_hold_sent_again_gets_the_hold_its_first_run_placed(
    relayed: Redis, relay: LosesAnAnswer, redis: Redis, late: bool
) -> None:
    store, event, owner, wanted = await _two_seats(relayed)
    arm(relay, store, late)

    hold = await store.hold(event, owner, wanted, POLICY, EMPTY)

    assert (relay.dropped, relay.held_up) == (1, int(late))
    assert hold.seats == wanted
    assert hold.extensions_left == POLICY.max_extensions
    assert await _holds_of_event(redis, event) == {hold.id: ",".join(map(str, wanted))}
    expires_ms = int(await hash_field(redis, keys.hold(event, hold.id), "expires") or 0)
    assert int(hold.expires_at.timestamp() * 1000) == expires_ms
    held = await hash_fields(redis, keys.held_seats(event))
    assert held == {str(seat): hold.id for seat in wanted}


async def test_best_available_sent_again_holds_one_window(
    relayed: Redis, relay: LosesAnAnswer, redis: Redis
) -> None:
    store = await _store(relayed)
    event, owner = uuid.uuid4(), uuid.uuid4()
    row = [uuid.uuid4() for _ in range(8)]
    layout = Layout(["standard"], [("A", ";".join(f"{n},{s},1" for n, s in enumerate(row, 1)))])

    async def layout_of(event_id: uuid.UUID) -> Layout:
        return layout

    await store.load_taken(event, EMPTY)
    await hold_best(store, event, uuid.uuid4(), POLICY, Wanted(1, None, None), (EMPTY, layout_of))
    relay.armed = True

    hold = await hold_best(store, event, owner, POLICY, Wanted(3, None, None), (EMPTY, layout_of))

    assert relay.dropped == 1
    assert len(hold.seats) == 3
    live = await _holds_of_event(redis, event)
    assert len(live) == 2
    assert live[hold.id] == ",".join(map(str, hold.seats))
    owned = await redis.zrange(keys.owner_holds(event, owner), 0, -1)
    assert owned == [hold.id]
    held = await hash_fields(redis, keys.held_seats(event))
    assert sorted(seat for seat, by in held.items() if by == hold.id) == sorted(
        map(str, hold.seats)
    )


async def _held(relayed: Redis) -> tuple[HoldStore, Hold]:
    """A store through the relay and a hold of two seats, placed before any answer is lost."""
    store, event, owner, wanted = await _two_seats(relayed)
    return store, await store.hold(event, owner, wanted, POLICY, EMPTY)


@pytest.mark.parametrize("late", [False, True], ids=["in time", "past its deadline"])
async def test_a_claim_sent_again_is_still_the_callers(
    relayed: Redis, relay: LosesAnAnswer, redis: Redis, late: bool
) -> None:
    store, hold = await _held(relayed)
    arm(relay, store, late)

    claimed = await store.claim(hold.id, hold.owner_id)

    assert (relay.dropped, relay.held_up) == (1, int(late))
    assert claimed == (hold.event_id, hold.seats)
    assert await hash_field(redis, keys.hold(hold.event_id, hold.id), "state") == "converting"


# The first extension, and the last one the policy allows.
@pytest.mark.parametrize("used_before", [0, POLICY.max_extensions - 1], ids=["first", "last"])
async def test_an_extension_sent_again_uses_one_extension(
    relayed: Redis, relay: LosesAnAnswer, redis: Redis, used_before: int
) -> None:
    store, hold = await _held(relayed)
    for _ in range(used_before):
        await store.extend(hold.id, hold.owner_id)
    relay.armed = True

    extended = await store.extend(hold.id, hold.owner_id)

    assert relay.dropped == 1
    assert extended.extensions_left == POLICY.max_extensions - used_before - 1
    used = await hash_field(redis, keys.hold(hold.event_id, hold.id), "extensions")
    assert used == str(used_before + 1)
    assert extended.expires_at > hold.expires_at


async def test_a_release_sent_again_answers_with_the_seats_it_freed(
    relayed: Redis, relay: LosesAnAnswer, redis: Redis
) -> None:
    store, hold = await _held(relayed)
    relay.armed = True

    freed = await store.release(hold.id, hold.owner_id)

    assert relay.dropped == 1
    assert freed == hold.seats
    assert await _holds_of_event(redis, hold.event_id) == {}
    assert await hash_fields(redis, keys.held_seats(hold.event_id)) == {}
    changes = await redis.xrange(keys.seat_changes(hold.event_id))
    assert [fields["cause"] for _, fields in changes] == ["hold", "release"]


async def test_a_release_by_another_call_is_still_gone(relayed: Redis) -> None:
    store, hold = await _held(relayed)
    await store.release(hold.id, hold.owner_id)

    with pytest.raises(Gone):
        await store.release(hold.id, hold.owner_id)


async def test_a_pipeline_sent_again_places_each_hold_once(
    relayed: Redis, relay: LosesAnAnswer, redis: Redis
) -> None:
    batches = ScriptBatches(relayed, SCRIPT_PIPELINE_CALLS.observe)
    store = await _store(relayed, batches)
    event, owners, wanted = uuid.uuid4(), [uuid.uuid4() for _ in range(3)], seats(3)
    await store.load_taken(event, EMPTY)
    relay.armed = True

    holds = await asyncio.gather(
        *(store.hold(event, o, [s], POLICY, EMPTY) for o, s in zip(owners, wanted, strict=True))
    )
    await batches.aclose()

    assert relay.dropped == 1
    assert [h.seats for h in holds] == [[s] for s in wanted]
    assert await _holds_of_event(redis, event) == {h.id: str(h.seats[0]) for h in holds}


async def test_a_release_without_a_token_of_its_call_is_refused(redis: Redis) -> None:
    # An empty token would match any release's tombstone and answer for it.
    store, hold = await _held(redis)
    release_keys = HoldStore.release_keys(hold.event_id, hold.owner_id, hold.id)

    for token in ([], [""]):
        with pytest.raises(ResponseError, match="a token of the call is required"):
            await store.scripts.release(
                keys=release_keys, args=[hold.id, str(hold.owner_id), "", *token]
            )

    assert await _holds_of_event(redis, hold.event_id) == {hold.id: ",".join(map(str, hold.seats))}
