"""Script calls of one turn of the event loop, sent to a real Valkey together
(`seatlock.script_batches`): each call gets its own answer or error, whatever the others'."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from seatlock import keys
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.errors import Unavailable
from seatlock.holds.replies import SeatsUnavailable
from seatlock.holds.scripts import load_scripts, register_scripts
from seatlock.holds.store import HoldStore
from seatlock.ops.metrics import REGISTRY, SCRIPT_PIPELINE_CALLS
from seatlock.script_batches import MAX_CALLS, ScriptBatches
from tests.holds.holdstore import POLICY, seats, snapshot_of

EMPTY = snapshot_of({})


@dataclass(frozen=True)
class Batched:
    store: HoldStore
    batches: ScriptBatches

    async def ready(self, *events: uuid.UUID) -> None:
        """Loads each event's cache of taken seats, so that the holds below go straight to
        their script call and all of them are made in one turn of the loop."""
        for event in events:
            await self.store.load_taken(event, EMPTY)


@asynccontextmanager
async def _batched(redis: Redis) -> AsyncIterator[Batched]:
    batches = ScriptBatches(redis, SCRIPT_PIPELINE_CALLS.observe)
    scripts = register_scripts(redis, batches)
    await load_scripts(redis, scripts)
    store = HoldStore(redis, scripts)
    # Redis's clock is read now, for the same reason as `ready`.
    await store.deadline_ms()
    try:
        yield Batched(store, batches)
    finally:
        await batches.aclose()


@pytest.fixture
async def batched(redis: Redis) -> AsyncIterator[Batched]:
    async with _batched(redis) as made:
        yield made


def _pipelines() -> tuple[float, float]:
    """How many pipelines of scripts were sent so far, and how many calls they held."""
    name = "seatlock_redis_script_pipeline_calls"
    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    return count, REGISTRY.get_sample_value(f"{name}_sum") or 0.0


def _sent_since(before: tuple[float, float]) -> tuple[float, float]:
    now = _pipelines()
    return now[0] - before[0], now[1] - before[1]


async def test_the_calls_of_one_turn_go_out_together_each_with_its_own_answer(
    batched: Batched,
) -> None:
    event, wanted = uuid.uuid4(), seats(MAX_CALLS)
    winners = [uuid.uuid4() for _ in wanted]
    losers = [uuid.uuid4() for _ in wanted]
    # Each seat is asked for twice in a row, so each pipeline holds both askers of its
    # seats: Valkey runs a pipeline's calls in order, and the second asker loses.
    asks = [(who[i], wanted[i]) for i in range(MAX_CALLS) for who in (winners, losers)]
    await batched.ready(event)
    before = _pipelines()

    answers = await asyncio.gather(
        *(batched.store.hold(event, who, [seat], POLICY, EMPTY) for who, seat in asks),
        return_exceptions=True,
    )

    assert _sent_since(before) == (2, 2 * MAX_CALLS)
    for (who, seat), answer in zip(asks, answers, strict=True):
        if who in winners:
            assert not isinstance(answer, BaseException), answer
            assert (answer.owner_id, answer.seats) == (who, [seat])
        else:
            assert isinstance(answer, SeatsUnavailable)
            assert answer.members() == {"conflicts": [str(seat)], "reason": "held"}
    held = await batched.store.held_seats(event)
    assert {seat: entry.owner_id for seat, entry in held.items()} == dict(
        zip(wanted, winners, strict=True)
    )


async def test_a_script_error_stays_with_its_call(batched: Batched, redis: Redis) -> None:
    fine, broken, alice = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await batched.ready(fine, broken)
    # A key of the wrong type makes the script fail on the broken event only.
    await redis.set(keys.event_holds(broken), "not a sorted set")
    wanted = seats(3)
    before = _pipelines()

    answers = await asyncio.gather(
        batched.store.hold(fine, alice, wanted[:1], POLICY, EMPTY),
        batched.store.hold(broken, alice, wanted[1:2], POLICY, EMPTY),
        batched.store.hold(fine, alice, wanted[2:], POLICY, EMPTY),
        return_exceptions=True,
    )

    assert _sent_since(before) == (1, 3)
    assert isinstance(answers[1], ResponseError)
    assert "WRONGTYPE" in str(answers[1])
    assert [getattr(a, "seats", None) for a in (answers[0], answers[2])] == [
        wanted[:1],
        wanted[2:],
    ]
    assert set(await batched.store.held_seats(fine)) == {wanted[0], wanted[2]}


async def test_scripts_redis_lost_are_loaded_again(batched: Batched, redis: Redis) -> None:
    event, owners, wanted = uuid.uuid4(), [uuid.uuid4() for _ in range(3)], seats(3)
    await batched.ready(event)
    await redis.script_flush()

    holds = await asyncio.gather(
        *(
            batched.store.hold(event, owner, [seat], POLICY, EMPTY)
            for owner, seat in zip(owners, wanted, strict=True)
        )
    )

    assert [(hold.owner_id, hold.seats) for hold in holds] == [
        (owner, [seat]) for owner, seat in zip(owners, wanted, strict=True)
    ]
    held = await batched.store.held_seats(event)
    assert {seat: entry.owner_id for seat, entry in held.items()} == dict(
        zip(wanted, owners, strict=True)
    )


async def test_a_caller_that_gives_up_before_the_pipeline_leaves_sends_nothing(
    batched: Batched,
) -> None:
    event, owners, wanted = uuid.uuid4(), [uuid.uuid4() for _ in range(3)], seats(3)
    await batched.ready(event)
    before = _pipelines()
    calls = [
        asyncio.create_task(batched.store.hold(event, owner, [seat], POLICY, EMPTY))
        for owner, seat in zip(owners, wanted, strict=True)
    ]
    # One turn: every call is gathered, none is sent yet. Then the second caller gives up.
    await asyncio.sleep(0)
    calls[1].cancel()

    first, second, third = await asyncio.gather(*calls, return_exceptions=True)

    assert isinstance(second, asyncio.CancelledError)
    assert [getattr(h, "seats", None) for h in (first, third)] == [wanted[:1], wanted[2:]]
    assert _sent_since(before) == (1, 2)
    held = await batched.store.held_seats(event)
    assert {seat: entry.owner_id for seat, entry in held.items()} == {
        wanted[0]: owners[0],
        wanted[2]: owners[2],
    }


async def test_every_call_of_a_pipeline_fails_when_redis_stops_answering(
    frozen_valkey: EmbeddedValkey,
) -> None:
    frozen = Redis.from_url(frozen_valkey.url, socket_timeout=0.3, decode_responses=True)
    try:
        async with _batched(frozen) as made:
            event, alice = uuid.uuid4(), uuid.uuid4()
            await made.ready(event)
            assert frozen_valkey.process is not None
            os.kill(frozen_valkey.process.pid, signal.SIGSTOP)
            before = _pipelines()

            answers = await asyncio.gather(
                *(made.store.hold(event, alice, [seat], POLICY, EMPTY) for seat in seats(3)),
                return_exceptions=True,
            )

            assert [type(answer) for answer in answers] == [Unavailable] * 3
            assert _sent_since(before) == (1, 3)
    finally:
        await frozen.aclose()
