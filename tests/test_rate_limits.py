"""Rate limits of hold creation, registration and payment initiation: refused with 429
and Retry-After exactly past the configured count, counted per account or per address,
shared by every instance of the service through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import create_app
from seatlock.embedded.host import free_port
from seatlock.settings import Settings
from tests.buying import booked
from tests.clients import PASSWORD, Client, assert_problem, at, from_addresses
from tests.factories import EventFixture, create_event

HERE, THERE = "198.51.100.1", "198.51.100.2"

OpenClient = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def open_client(settings: Settings) -> OpenClient:
    """A client of an app instance of its own, with rate limits as given."""

    @asynccontextmanager
    async def open_client(**changes: Any) -> AsyncIterator[Client]:
        app = create_app(msgspec.structs.replace(settings, **changes))
        async with AsyncTestClient(app=from_addresses(app)) as client:
            yield client

    return open_client


async def _register(client: Client, address: str = HERE) -> Any:
    return await client.post(
        "/api/auth/register",
        json={"email": f"{uuid.uuid4()}@example.test", "password": PASSWORD, "full_name": "B"},
        headers=at(address),
    )


async def _buyer(client: Client) -> dict[str, str]:
    # Registered from an address of its own, so that no registration limit is in the way.
    response = await _register(client, f"192.0.2.{uuid.uuid4().int % 250 + 1}")
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _hold(
    client: Client, buyer: dict[str, str], event: EventFixture, n: int, address: str = HERE
) -> Any:
    return await client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": [str(event.seat_ids[n])]},
        headers=at(address, buyer),
    )


def _assert_limited(response: Any, period_seconds: int) -> dict[str, Any]:
    problem = assert_problem(response, 429, "too-many-requests")
    assert 0 < int(response.headers["retry-after"]) <= period_seconds
    return problem


async def test_holds_are_limited_per_account(open_client: OpenClient, engine: AsyncEngine) -> None:
    event = await create_event(engine)
    async with open_client(rate_limit_holds_per_account="3/minute") as client:
        alice, bob = await _buyer(client), await _buyer(client)
        for n in range(3):
            assert (await _hold(client, alice, event, n)).status_code == 201

        refused = await _hold(client, alice, event, 3)
        problem = _assert_limited(refused, 60)
        assert "per account" in problem["detail"]
        # Another account at the same address has its own count.
        assert (await _hold(client, bob, event, 4)).status_code == 201


async def test_holds_are_limited_per_address(open_client: OpenClient, engine: AsyncEngine) -> None:
    event = await create_event(engine)
    async with open_client(rate_limit_holds_per_address="3/minute") as client:
        buyers = [await _buyer(client) for _ in range(4)]
        for n, buyer in enumerate(buyers[:3]):
            assert (await _hold(client, buyer, event, n)).status_code == 201

        problem = _assert_limited(await _hold(client, buyers[3], event, 3), 60)
        assert "per address" in problem["detail"]
        assert (await _hold(client, buyers[3], event, 3, THERE)).status_code == 201


async def test_refused_and_failed_holds_count_too(
    open_client: OpenClient, engine: AsyncEngine
) -> None:
    # Churning holds that conflict costs the service as much as holds that succeed.
    event = await create_event(engine)
    async with open_client(rate_limit_holds_per_account="2/minute") as client:
        alice, bob = await _buyer(client), await _buyer(client)
        assert (await _hold(client, bob, event, 0)).status_code == 201
        for _ in range(2):
            assert (await _hold(client, alice, event, 0)).status_code == 409
        _assert_limited(await _hold(client, alice, event, 1), 60)


async def test_a_limit_starts_over_with_the_next_window(
    open_client: OpenClient, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    async with open_client(rate_limit_holds_per_account="2/second") as client:
        alice = await _buyer(client)
        for n in range(2):
            assert (await _hold(client, alice, event, n)).status_code == 201
        _assert_limited(await _hold(client, alice, event, 2), 1)
        await asyncio.sleep(1.1)
        assert (await _hold(client, alice, event, 2)).status_code == 201


async def test_limits_keep_counting_after_redis_lost_its_scripts(
    open_client: OpenClient, engine: AsyncEngine, redis: Redis
) -> None:
    event = await create_event(engine)
    limits = {"rate_limit_holds_per_account": "2/minute", "rate_limit_holds_per_address": "9/hour"}
    async with open_client(**limits) as client:
        alice = await _buyer(client)
        assert (await _hold(client, alice, event, 0)).status_code == 201
        await redis.script_flush()
        assert (await _hold(client, alice, event, 1)).status_code == 201
        _assert_limited(await _hold(client, alice, event, 2), 60)


async def test_limits_hold_across_instances_sharing_redis(
    open_client: OpenClient, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    limits = {"rate_limit_holds_per_account": "4/minute"}
    async with open_client(**limits) as one, open_client(**limits) as other:
        alice = await _buyer(one)
        for n in range(4):
            instance = (one, other)[n % 2]
            assert (await _hold(instance, alice, event, n)).status_code == 201
        _assert_limited(await _hold(one, alice, event, 4), 60)
        _assert_limited(await _hold(other, alice, event, 5), 60)


async def test_limits_count_on_a_redis_cluster(
    open_client: OpenClient, engine: AsyncEngine, cluster_url: str
) -> None:
    event = await create_event(engine)
    cluster = {"redis_url": cluster_url, "redis_cluster": True}
    async with open_client(rate_limit_holds_per_account="2/minute", **cluster) as client:
        alice = await _buyer(client)
        for n in range(2):
            assert (await _hold(client, alice, event, n)).status_code == 201
        _assert_limited(await _hold(client, alice, event, 2), 60)


async def test_registrations_are_limited_per_address(open_client: OpenClient) -> None:
    async with open_client(rate_limit_registrations_per_address="2/hour") as client:
        for _ in range(2):
            assert (await _register(client)).status_code == 201

        problem = _assert_limited(await _register(client), 3600)
        assert "registrations" in problem["detail"]
        assert (await _register(client, THERE)).status_code == 201


async def test_payment_initiations_are_limited_per_account(
    open_client: OpenClient, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    async with open_client(rate_limit_payments_per_account="2/minute") as client:
        alice, bob = await _buyer(client), await _buyer(client)
        mine = await booked(client, alice, event.id, event.seat_ids[:1])
        theirs = await booked(client, bob, event.id, event.seat_ids[1:2])

        async def initiate(buyer: dict[str, str], booking: dict[str, Any]) -> Any:
            return await client.post(
                "/api/payments/initiate",
                json={"booking_id": booking["id"], "method": "CARD"},
                headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
            )

        for _ in range(2):
            assert (await initiate(alice, mine)).status_code == 201
        _assert_limited(await initiate(alice, mine), 60)
        assert (await initiate(bob, theirs)).status_code == 201


async def test_without_redis_registration_goes_on_and_holds_fail_fast(
    open_client: OpenClient, engine: AsyncEngine
) -> None:
    # Registration fails open (it must work through an outage); a hold would fail anyway.
    event = await create_event(engine)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limits = {
        "rate_limit_registrations_per_address": "1/hour",
        "rate_limit_holds_per_account": "1/hour",
    }
    async with open_client(redis_url=dead, **limits) as client:
        for _ in range(3):
            assert (await _register(client)).status_code == 201
        buyer = await _buyer(client)
        assert_problem(await _hold(client, buyer, event, 0), 503)
