"""Sign-in throttling without lockout: failures slow down the address that makes them,
with delays that grow, and never keep an account's owner out from another address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from seatlock import keys
from seatlock.app import create_app
from seatlock.auth.throttle import wait_seconds
from seatlock.embedded.host import free_port
from seatlock.redis_client import hash_field
from seatlock.settings import Settings
from tests.clients import PASSWORD, Client, assert_problem, at, from_addresses

EMAIL = "ada@example.test"
WRONG = "wrong password!"
PAIR_LIMIT = 3
ADDRESS_LIMIT = 6
ACCOUNT_LIMIT = 8
# Long enough that a test never sees a delay run out unless it waits for it.
DELAY = 60.0
ATTACKER, OWNER = "203.0.113.7", "198.51.100.1"

OpenClient = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def open_client(settings: Settings) -> OpenClient:
    @asynccontextmanager
    async def open_client(**changes: Any) -> AsyncIterator[Client]:
        throttling = {
            "login_attempts_per_account_address": PAIR_LIMIT,
            "login_attempts_per_address": ADDRESS_LIMIT,
            "login_attempts_per_account": ACCOUNT_LIMIT,
            "login_delay_seconds": DELAY,
        }
        app = create_app(msgspec.structs.replace(settings, **(throttling | changes)))
        async with AsyncTestClient(app=from_addresses(app)) as client:
            yield client

    return open_client


@pytest.fixture
async def client(open_client: OpenClient) -> AsyncIterator[Client]:
    async with open_client() as client:
        yield client


async def _register(client: Client, email: str = EMAIL) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"},
        headers=at("192.0.2.99"),
    )
    assert response.status_code == 201, response.text


async def _login(client: Client, address: str, email: str = EMAIL, password: str = PASSWORD) -> Any:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=at(address)
    )


async def _fail(client: Client, address: str, times: int, email: str = EMAIL) -> None:
    for _ in range(times):
        assert (await _login(client, address, email, WRONG)).status_code == 401


def _assert_delayed(response: Any, at_most: float) -> None:
    assert_problem(response, 429, "too-many-requests")
    assert 0 < int(response.headers["retry-after"]) <= at_most


async def test_an_address_that_keeps_failing_is_delayed_on_that_account(client: Client) -> None:
    await _register(client)
    await _fail(client, ATTACKER, PAIR_LIMIT)

    # Even the right password waits, so that guessing cannot go on at full speed...
    _assert_delayed(await _login(client, ATTACKER), DELAY)
    # ... while the owner, from an address that has not failed, signs in as ever.
    assert (await _login(client, OWNER)).status_code == 200
    # And the attacker's other accounts are not slowed by it.
    await _register(client, "grace@example.test")
    assert (await _login(client, ATTACKER, "grace@example.test")).status_code == 200


async def test_delays_grow_with_each_failure_instead_of_locking(open_client: OpenClient) -> None:
    async with open_client(login_delay_seconds=0.5) as client:
        await _register(client)
        await _fail(client, ATTACKER, PAIR_LIMIT)
        _assert_delayed(await _login(client, ATTACKER), 1)

        # Past the delay the address may try again: no lock. Another failure doubles it.
        await asyncio.sleep(0.55)
        await _fail(client, ATTACKER, 1)
        await asyncio.sleep(0.55)
        _assert_delayed(await _login(client, ATTACKER), 1)
        await asyncio.sleep(0.5)
        assert (await _login(client, ATTACKER)).status_code == 200


def test_the_delay_doubles_up_to_the_window(settings: Settings) -> None:
    tuned = msgspec.structs.replace(settings, login_delay_seconds=2.0, login_window_seconds=900)

    def delay(failures: int) -> float:
        return wait_seconds(tuned, 5, failures, 0, 0.0)

    assert [delay(n) for n in (0, 4)] == [0.0, 0.0]
    assert [delay(n) for n in (5, 6, 7, 8)] == [2.0, 4.0, 8.0, 16.0]
    assert delay(20) == delay(10_000) == 900


async def test_an_address_failing_on_many_accounts_is_delayed_everywhere(client: Client) -> None:
    await _register(client)
    # One failure each on many accounts: no pair reaches its limit, the address does.
    for n in range(ADDRESS_LIMIT):
        await _fail(client, ATTACKER, 1, f"guess{n}@example.test")

    _assert_delayed(await _login(client, ATTACKER), DELAY)
    assert (await _login(client, OWNER)).status_code == 200


async def test_an_account_attacked_from_many_addresses_still_admits_its_owner(
    client: Client,
) -> None:
    await _register(client)
    # Fewer failures per address than any address limit, many addresses: the account's
    # ceiling is reached.
    attackers = [f"203.0.113.{n}" for n in range(1, ACCOUNT_LIMIT + 1)]
    for address in attackers:
        await _fail(client, address, 1)

    # Every address that failed on the account is slowed, even with the right password...
    for address in attackers[:2]:
        _assert_delayed(await _login(client, address), DELAY)
    # ... the owner's own address, which has not failed, is not.
    assert (await _login(client, OWNER)).status_code == 200


async def test_unknown_emails_are_counted_alike(client: Client) -> None:
    await _fail(client, ATTACKER, PAIR_LIMIT, "ghost@example.test")
    _assert_delayed(await _login(client, ATTACKER, "ghost@example.test"), DELAY)


async def test_a_right_password_clears_the_pair_failures(client: Client) -> None:
    await _register(client)
    await _fail(client, ATTACKER, PAIR_LIMIT - 1)
    assert (await _login(client, ATTACKER)).status_code == 200
    await _fail(client, ATTACKER, PAIR_LIMIT - 1)
    assert (await _login(client, ATTACKER)).status_code == 200


async def test_failure_counters_expire_with_the_window(
    client: Client, redis: Redis, settings: Settings
) -> None:
    await _fail(client, ATTACKER, 1, "ghost@example.test")

    counters = [
        keys.login_failures_for_account_address("ghost@example.test", ATTACKER),
        keys.login_failures_for_address(ATTACKER),
        keys.login_failures_for_account("ghost@example.test"),
    ]
    assert sorted([k async for k in redis.scan_iter("seatlock:login:*")]) == sorted(counters)
    for key in counters:
        assert await hash_field(redis, key, "count") == "1"
        assert 0 < await redis.ttl(key) <= settings.login_window_seconds


async def test_counter_left_without_expiry_gets_one_at_the_next_failure(
    client: Client, redis: Redis, settings: Settings
) -> None:
    key = keys.login_failures_for_account("ghost@example.test")
    await cast("Awaitable[int]", redis.hset(key, "count", "1"))
    await _fail(client, ATTACKER, 1, "ghost@example.test")
    assert await hash_field(redis, key, "count") == "2"
    assert 0 < await redis.ttl(key) <= settings.login_window_seconds


async def test_sign_in_works_without_redis(open_client: OpenClient) -> None:
    # Throttling fails open: only holds may depend on Redis.
    async with open_client(redis_url=f"redis://127.0.0.1:{free_port()}/0") as client:
        await _register(client)
        await _fail(client, ATTACKER, PAIR_LIMIT + 1)
        assert (await _login(client, ATTACKER)).status_code == 200


async def test_throttling_counts_on_a_redis_cluster(
    open_client: OpenClient, cluster_url: str
) -> None:
    # The three counters of one attempt live on different slots: one pipeline, no transaction.
    async with open_client(redis_url=cluster_url, redis_cluster=True) as client:
        await _register(client)
        await _fail(client, ATTACKER, PAIR_LIMIT)
        _assert_delayed(await _login(client, ATTACKER), DELAY)
        assert (await _login(client, OWNER)).status_code == 200
