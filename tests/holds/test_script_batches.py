"""Script calls of one turn of the event loop, sent to a real Valkey together
(`seatlock.script_batches`): each call gets its own answer or error, whatever the others'."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
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


async def _batched(redis: Redis) -> AsyncIterator[Batched]:
    batches = ScriptBatches(redis, SCRIPT_PIPELINE_CALLS.observe)
    scripts = register_scripts(redis, batches)
    await load_scripts(redis, scripts)
    store = HoldStore(redis, scripts)
    # Read Redis's clock now, so that the holds below go straight to their script call and
    # all of them are made in one turn of the loop (the tests load each event's cache of
    # taken seats first, for the same reason).
    await store.deadline_ms()
    yield Batched(store, batches)
    await batches.aclose()


@pytest.fixture
async def batched(redis: Redis) -> AsyncIterator[Batched]:
    async for made in _batched(redis):
        yield made


def _pipelines() -> tuple[float, float]:
    """How many pipelines of scripts were sent, and how many calls they held."""
    name = "seatlock_redis_script_pipeline_calls"
    count = REGISTRY.get_sample_value(f"{name}_count") or 0.0
    return count, REGISTRY.get_sample_value(f"{name}_sum") or 0.0


async def test_the_calls_of_one_turn_go_out_together_each_with_its_own_answer(
    batched: Batched,
) -> None:
    event, owners = uuid.uuid4(), [uuid.uuid4() for _ in range(2 * MAX_CALLS)]
    wanted = seats(MAX_CALLS)
    # The first half each hold a seat of their own; the second half want the same seats,
    # later in the same pipelines: Valkey runs the calls in order, so each of them loses.
    asks = [[seat] for seat in wanted] * 2
    await batched.store.load_taken(event, EMPTY)
    sent_before, calls_before = _pipelines()

    store = batched.store
    answers = await asyncio.gather(
        *(store.hold(event, o, a, POLICY, EMPTY) for o, a in zip(owners, asks, strict=True)),
        return_exceptions=True,
    )

    sent, calls = _pipelines()
    assert (sent - sent_before, calls - calls_before) == (2, 2 * MAX_CALLS)
    winners, losers = answers[:MAX_CALLS], answers[MAX_CALLS:]
    for owner, seat, hold in zip(owners[:MAX_CALLS], wanted, winners, strict=True):
        assert not isinstance(hold, BaseException), hold
        assert (hold.owner_id, hold.seats) == (owner, [seat])
    for seat, refusal in zip(wanted, losers, strict=True):
        assert isinstance(refusal, SeatsUnavailable)
        assert refusal.members() == {"conflicts": [str(seat)], "reason": "held"}
    assert len({hold.id for hold in winners if not isinstance(hold, BaseException)}) == MAX_CALLS
    held = await batched.store.held_seats(event)
    assert {seat: entry.owner_id for seat, entry in held.items()} == dict(
        zip(wanted, owners[:MAX_CALLS], strict=True)
    )


async def test_a_script_error_stays_with_its_call(batched: Batched, redis: Redis) -> None:
    fine, broken, alice = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # A key of the wrong type makes the script fail on the broken event only.
    await redis.set(keys.event_holds(broken), "not a sorted set")
    wanted = seats(3)

    answers = await asyncio.gather(
        batched.store.hold(fine, alice, wanted[:1], POLICY, EMPTY),
        batched.store.hold(broken, alice, wanted[1:2], POLICY, EMPTY),
        batched.store.hold(fine, alice, wanted[2:], POLICY, EMPTY),
        return_exceptions=True,
    )

    assert isinstance(answers[1], ResponseError)
    assert "WRONGTYPE" in str(answers[1])
    assert [getattr(a, "seats", None) for a in (answers[0], answers[2])] == [
        wanted[:1],
        wanted[2:],
    ]
    assert set(await batched.store.held_seats(fine)) == {wanted[0], wanted[2]}


async def test_scripts_redis_lost_are_loaded_again(batched: Batched, redis: Redis) -> None:
    event, alice = uuid.uuid4(), uuid.uuid4()
    wanted = seats(3)
    await redis.script_flush()

    holds = await asyncio.gather(
        *(batched.store.hold(event, alice, [seat], POLICY, EMPTY) for seat in wanted)
    )

    assert [hold.seats for hold in holds] == [[seat] for seat in wanted]
    assert set(await batched.store.held_seats(event)) == set(wanted)


async def test_a_caller_that_gives_up_leaves_the_others_their_answers(batched: Batched) -> None:
    event, owners, wanted = uuid.uuid4(), [uuid.uuid4() for _ in range(3)], seats(3)
    await batched.store.load_taken(event, EMPTY)
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
    # The call was on its way: its hold was placed, and lapses with its TTL, as a lone
    # call's would once sent.
    held = await batched.store.held_seats(event)
    assert {seat: entry.owner_id for seat, entry in held.items()} == dict(
        zip(wanted, owners, strict=True)
    )


async def test_every_call_of_a_pipeline_fails_when_redis_stops_answering(
    frozen_valkey: EmbeddedValkey,
) -> None:
    frozen = Redis.from_url(frozen_valkey.url, socket_timeout=0.3, decode_responses=True)
    async for made in _batched(frozen):
        assert frozen_valkey.process is not None
        os.kill(frozen_valkey.process.pid, signal.SIGSTOP)
        event, alice = uuid.uuid4(), uuid.uuid4()

        answers = await asyncio.gather(
            *(made.store.hold(event, alice, [seat], POLICY, EMPTY) for seat in seats(3)),
            return_exceptions=True,
        )

        assert [type(answer) for answer in answers] == [Unavailable] * 3
    await frozen.aclose()
