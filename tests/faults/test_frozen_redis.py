"""Reads that do not need Redis do not wait for it: after a Redis failure the breaker skips
Redis for a while, so that with Valkey frozen (SIGSTOP) the seat map and payment
verification answer from PostgreSQL alone instead of each waiting out the Redis timeout."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.errors import Unavailable
from seatlock.redis_client import Breaker
from tests.buying import paying, verify
from tests.clients import ClientWith, UserFactory
from tests.clock import Clock
from tests.faults.stuck import assert_nothing_stuck
from tests.oracle import assert_consistent


class Calls:
    """A Redis step that answers, or fails as a Redis outage does, and counts its calls."""

    def __init__(self) -> None:
        self.count = 0
        self.failing = True

    async def __call__(self) -> str:
        self.count += 1
        if self.failing:
            raise Unavailable("Redis is frozen")
        return "answer"


async def test_the_breaker_skips_redis_for_its_window_then_lets_one_caller_try() -> None:
    clock, redis = Clock(), Calls()
    breaker = Breaker(0.3, clock)

    failed = await breaker.attempt(redis, "none")
    skipped = await breaker.attempt(redis, "none")
    clock.now += 0.31
    tried_again = await breaker.attempt(redis, "none")
    skipped_again = await breaker.attempt(redis, "none")
    clock.now += 0.31
    redis.failing = False
    recovered = await breaker.attempt(redis, "none")
    closed = await breaker.attempt(redis, "none")

    assert [failed, skipped, tried_again, skipped_again] == [("none", False)] * 4
    assert [recovered, closed] == [("answer", True)] * 2
    assert redis.count == 4  # the two skips never reached it


async def test_while_one_caller_tries_redis_again_the_others_skip_it() -> None:
    clock = Clock()
    breaker = Breaker(0.3, clock)
    await breaker.attempt(Calls(), None)
    clock.now += 0.31
    during: list[tuple[Any, bool]] = []

    async def slow_probe() -> str:
        during.append(await breaker.attempt(Calls(), "skipped"))
        return "answer"

    assert await breaker.attempt(slow_probe, "none") == ("answer", True)
    assert during == [("skipped", False)]


async def test_a_call_under_way_when_the_breaker_trips_does_not_close_it() -> None:
    clock = Clock()
    breaker = Breaker(0.3, clock)

    async def answered_before_the_freeze() -> str:
        # Meanwhile another caller finds Redis frozen and trips the breaker.
        await breaker.attempt(Calls(), None)
        return "answer"

    late = await breaker.attempt(answered_before_the_freeze, "none")
    frozen = Calls()
    after = await breaker.attempt(frozen, "skipped")

    assert late == ("answer", True)
    assert breaker.is_open
    assert after == ("skipped", False)
    assert frozen.count == 0  # skipped, not tried and waited out


async def test_seat_maps_and_verification_skip_a_frozen_redis(
    frozen_valkey: EmbeddedValkey,
    client_with: ClientWith,
    make_user: UserFactory,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A window far longer than the test: what is asserted is that Redis was skipped.
    async with client_with(redis_url=frozen_valkey.url, redis_breaker_seconds=600) as client:
        event, buyer, booking, payment, callback = await paying(client, make_user, engine)
        redis = client.app.state.redis
        sent: list[Any] = []
        send = redis.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            sent.append(args[0])
            return await send(*args, **options)

        monkeypatch.setattr(redis, "execute_command", counted)
        seat_map = f"/api/events/{event.id}/seats"
        assert frozen_valkey.process is not None
        os.kill(frozen_valkey.process.pid, signal.SIGSTOP)

        first = await client.get(seat_map)  # waits out the Redis timeout, opens the breaker
        tried = len(sent)
        verified = await verify(client, buyer, payment["id"], callback)
        second = await client.get(seat_map)

    assert first.status_code == second.status_code == verified.status_code == 200
    assert tried > 0
    assert len(sent) == tried, "Redis was called while the breaker was open"
    assert first.json()["holds_shown"] is second.json()["holds_shown"] is False
    assert verified.json()["status"] == "succeeded"
    states = {seat["id"]: seat["state"] for seat in second.json()["seats"]}
    assert [states[seat["id"]] for seat in booking["seats"]] == ["sold"]
    await assert_nothing_stuck(engine)
    await assert_consistent(engine, event.id)
