"""The service SIGKILLed in the middle of a booking and of payment initiations, each request
pinned at a precise step by a row lock held from another PostgreSQL session; restarted;
retried with the same Idempotency-Key: the exact expected answer, nothing left stuck."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from seatlock import keys
from seatlock.redis_client import hash_field
from seatlock.settings import Settings
from seatlock.testing.accounts import mint_accounts
from seatlock.testing.servers import Backends
from tests.factories import create_event, scalar
from tests.faults.service import Service, busy_backends, eventually, lock_waiters, running
from tests.faults.stuck import assert_nothing_stuck
from tests.oracle import assert_consistent

# Long, so that a retry right after the restart deterministically finds the lease still on;
# the tests then end it by time travel.
LEASE_SECONDS = "60"
INITIATE = "/api/payments/initiate"


@dataclass(frozen=True)
class Post:
    """One request, sent again as it was."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    def send(self, http: httpx.AsyncClient) -> Coroutine[Any, Any, httpx.Response]:
        return http.post(self.path, json=self.body, headers=self.headers)


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    backends = Backends(settings.database_url, settings.redis_url, settings.jwt_secret, False)
    env = {"SEATLOCK_IDEMPOTENCY_LEASE_SECONDS": LEASE_SECONDS}
    # One process: a kill is then one SIGKILL, and a restart starts quicker.
    with running(backends, env, workers=1) as service:
        yield service


@asynccontextmanager
async def pin(engine: AsyncEngine, query: str, **params: Any) -> AsyncIterator[AsyncConnection]:
    """Row locks held by another session until the block ends (or `rollback()` is called)."""
    async with engine.connect() as conn:
        await conn.execute(text(query), params)
        yield conn
        await conn.rollback()


async def killed(service: Service, *pending: asyncio.Task[Any]) -> None:
    """SIGKILL the service: its clients lose their connections."""
    service.kill()
    for request in pending:
        with pytest.raises(httpx.TransportError):
            await request


async def settled(engine: AsyncEngine) -> None:
    # The killed service's transactions end once the locks they waited on are free: the
    # statement they were waiting to run cannot answer a dead client.
    await eventually(lambda: _idle(engine), "the killed service's transactions are gone")


async def _idle(engine: AsyncEngine) -> bool:
    return await busy_backends(engine) == 0


async def waiting(engine: AsyncEngine, count: int) -> None:
    async def enough() -> bool:
        return await lock_waiters(engine) == count

    await eventually(enough, f"{count} sessions wait on a lock")


async def test_a_booking_killed_in_its_transaction_leaves_nothing_and_its_retry_books(
    service: Service, settings: Settings, engine: AsyncEngine, redis: Redis
) -> None:
    event = await create_event(engine)
    seats = event.seat_ids[:2]
    (buyer,) = await mint_accounts(engine, settings.jwt_secret, 1)
    async with service.client() as http:
        held = await http.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": list(map(str, seats))}, headers=buyer
        )
        hold_id = held.json()["id"]
        booking = Post("/api/bookings", {"hold_id": hold_id}, {**buyer, "Idempotency-Key": "b-1"})
        seat_lock = "SELECT id FROM seats WHERE id = ANY(:ids) FOR UPDATE"
        async with pin(engine, seat_lock, ids=seats):
            request = asyncio.create_task(booking.send(http))
            await waiting(engine, 1)  # the booking's conditional seat write
            await killed(service, request)
    await settled(engine)

    # The key's claim died with the transaction it was part of.
    assert await scalar(engine, "SELECT count(*) FROM idempotency_records") == 0
    assert await scalar(engine, "SELECT count(*) FROM bookings") == 0
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state <> 'available'") == 0
    # The hold stays claimed for the claim's lease (the hold layer's): time travel past it.
    hold_key = keys.hold(event.id, hold_id)
    assert await hash_field(redis, hold_key, "state") == "converting"
    await cast("Awaitable[int]", redis.hset(hold_key, "claimed_until", "0"))

    service.start()
    async with service.client() as http:
        retry = await booking.send(http)
        replay = await booking.send(http)

    assert retry.status_code == 201, retry.text
    assert sorted(s["id"] for s in retry.json()["seats"]) == sorted(map(str, seats))
    assert "idempotent-replayed" not in retry.headers
    assert replay.json() == retry.json()
    await assert_nothing_stuck(engine, redis, event.id)
    assert await assert_consistent(engine, event.id) == len(seats)


async def test_initiations_killed_around_their_provider_call_are_finished_by_their_retries(
    service: Service, settings: Settings, engine: AsyncEngine, redis: Redis
) -> None:
    event = await create_event(engine)
    (buyer,) = await mint_accounts(engine, settings.jwt_secret, 1)
    async with service.client() as http:
        bookings = [await _booked(http, buyer, event.id, seat) for seat in event.seat_ids[:2]]
        before, after = (
            Post(INITIATE, {"booking_id": b, "method": "CARD"}, {**buyer, "Idempotency-Key": k})
            for b, k in zip(bookings, ("pay-0", "pay-1"), strict=True)
        )
        lock_booking = "SELECT id FROM bookings WHERE id = :id FOR UPDATE"
        async with (
            pin(engine, lock_booking, id=bookings[0]),
            pin(engine, lock_booking, id=bookings[1]) as second_booking,
            engine.connect() as key_lock,
        ):
            # Both wait to write their payment (its key to the booking row), before their
            # first commit.
            requests = [asyncio.create_task(r.send(http)) for r in (before, after)]
            await waiting(engine, 2)
            # Let `after` commit its first transaction, but not its last: a session waiting
            # to lock its key's record locks it as soon as the claim commits.
            lock_key = asyncio.create_task(key_lock.execute(_LOCK_KEY, {"booking": bookings[1]}))
            await waiting(engine, 3)
            await second_booking.rollback()
            await lock_key
            await waiting(engine, 2)  # `after`'s answer waits for its key's record
            await killed(service, *requests)
    await settled(engine)

    unsent = "SELECT id FROM payments WHERE booking_id = :b AND provider_reference IS NULL"
    assert (
        await scalar(engine, "SELECT count(*) FROM payments WHERE booking_id = :b", b=bookings[0])
        == 0
    )
    left = await scalar(engine, unsent, b=bookings[1])
    assert left is not None
    service.start()
    async with service.client() as http:
        fresh = await before.send(http)
        early = await after.send(http)
        async with engine.begin() as conn:  # time travel: the lease is over
            await conn.execute(text("UPDATE idempotency_records SET locked_until = now()"))
        finished = await after.send(http)
        replays = [await r.send(http) for r in (before, after)]

    assert fresh.status_code == 201, fresh.text
    assert early.status_code == 409
    assert early.json()["type"] == "/problems/idempotency-key-in-use"
    assert 1 <= int(early.headers["retry-after"]) <= int(LEASE_SECONDS)
    assert finished.status_code == 201, finished.text
    assert finished.json()["id"] == str(left)
    assert finished.json()["provider_reference"]
    assert [r.json() for r in replays] == [fresh.json(), finished.json()]
    assert await scalar(engine, "SELECT count(*) FROM payments") == 2
    await assert_nothing_stuck(engine, redis, event.id)
    await assert_consistent(engine, event.id)


# Waits for the claim of the booking's initiation to commit, then holds its record locked:
# ON CONFLICT DO UPDATE locks the row it conflicts with, even when its WHERE is false.
_LOCK_KEY = text(
    "INSERT INTO idempotency_records (user_id, route, key, request_hash, expires_at) "
    "SELECT user_id, 'POST /api/payments/initiate', 'pay-1', '', now() FROM bookings "
    "WHERE id = :booking "
    "ON CONFLICT (user_id, route, key) DO UPDATE SET key = excluded.key WHERE false"
)


async def _booked(
    http: httpx.AsyncClient, buyer: dict[str, str], event_id: uuid.UUID, seat: uuid.UUID
) -> str:
    held = await http.post(
        f"/api/events/{event_id}/holds", json={"seat_ids": [str(seat)]}, headers=buyer
    )
    assert held.status_code == 201, held.text
    booked = await http.post(
        "/api/bookings",
        json={"hold_id": held.json()["id"]},
        headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert booked.status_code == 201, booked.text
    booking_id: str = booked.json()["id"]
    return booking_id
