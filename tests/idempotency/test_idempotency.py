"""Idempotency keys on POST /api/bookings and POST /api/payments/initiate."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock.holds.store import new_hold_id
from seatlock.idempotency import records
from tests.buying import booked, hold
from tests.clients import Client, UserFactory, assert_problem
from tests.factories import create_event
from tests.oracle import assert_consistent


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def answerless_record(
    engine: AsyncEngine, hold_id: str, key: str, lease: timedelta | None
) -> None:
    """The record of a booking request that has not answered (yet), with a lease that long
    or none. The one user there is made it."""
    digest = hashlib.sha256(msgspec.json.encode({"hold_id": hold_id})).hexdigest()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_records "
                "(user_id, route, key, request_hash, expires_at, locked_until) "
                "SELECT id, 'POST /api/bookings', :key, :digest, now() + interval '1 hour', "
                "now() + :lease FROM users"
            ),
            {"key": key, "digest": digest, "lease": lease},
        )


async def test_a_retry_replays_the_stored_booking(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:2])
    headers = {**buyer, "Idempotency-Key": "checkout-1"}

    first = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)
    retry = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert await count(engine, "bookings") == 1


async def test_a_refusal_is_replayed_too(client: Client, make_user: UserFactory) -> None:
    buyer = await make_user()
    headers = {**buyer, "Idempotency-Key": "checkout-2"}
    gone = {"hold_id": f"{uuid.uuid4().hex}.{'y' * 24}"}

    first = await client.post("/api/bookings", json=gone, headers=headers)
    retry = await client.post("/api/bookings", json=gone, headers=headers)

    assert first.status_code == retry.status_code == 410
    assert retry.json() == first.json()
    assert retry.headers["content-type"] == "application/problem+json"


async def test_the_same_key_with_another_body_is_refused(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    first_hold = await hold(client, buyer, event.id, event.seat_ids[:1])
    second_hold = await hold(client, buyer, event.id, event.seat_ids[1:2])
    headers = {**buyer, "Idempotency-Key": "checkout-3"}

    assert (
        await client.post("/api/bookings", json={"hold_id": first_hold}, headers=headers)
    ).status_code == 201
    refused = await client.post("/api/bookings", json={"hold_id": second_hold}, headers=headers)

    assert refused.status_code == 422
    assert await count(engine, "bookings") == 1


async def test_a_concurrent_request_with_the_key_gets_409(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:1])
    headers = {**buyer, "Idempotency-Key": "checkout-4"}
    # The first request is still running under its lease when the second arrives.
    await answerless_record(engine, hold_id, "checkout-4", lease=timedelta(seconds=20))

    response = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)

    assert_problem(response, 409, "idempotency-key-in-use")
    assert 19 <= int(response.headers["retry-after"]) <= 20
    assert await count(engine, "bookings") == 0


async def test_an_answerless_record_without_a_lease_is_taken_over(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:1])
    headers = {**buyer, "Idempotency-Key": "checkout-7"}
    # What a process of the version before leases left behind when it died.
    await answerless_record(engine, hold_id, "checkout-7", lease=None)

    response = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)

    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert await count(engine, "bookings") == 1
    await assert_consistent(engine, event.id)


async def test_racing_requests_with_one_key_book_once(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:1])
    headers = {**buyer, "Idempotency-Key": "checkout-5"}

    responses = await asyncio.gather(
        *(
            client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)
            for _ in range(5)
        )
    )

    # The key is claimed in the booking's own transaction: the others wait for it to
    # commit, then replay its answer.
    assert [r.status_code for r in responses] == [201] * 5
    assert [r.headers.get("idempotent-replayed") for r in responses].count(None) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(engine, "bookings") == 1


async def test_a_booking_that_fails_before_its_commit_leaves_its_key_free(
    client: Client, make_user: UserFactory, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:1])
    headers = {**buyer, "Idempotency-Key": "checkout-6"}
    store_answer = records.store

    async def crash_once(*args: Any) -> None:
        monkeypatch.setattr(records, "store", store_answer)
        raise RuntimeError("the process died before the commit")

    monkeypatch.setattr(records, "store", crash_once)
    failed = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)
    assert (failed.status_code, await count(engine, "idempotency_records")) == (500, 0)
    assert await count(engine, "bookings") == 0

    retry = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)

    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert await count(engine, "bookings") == 1


async def test_keys_are_scoped_per_user(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    alice, bob = await make_user(), await make_user()
    alice_hold = await hold(client, alice, event.id, event.seat_ids[:1])
    bob_hold = await hold(client, bob, event.id, event.seat_ids[1:2])

    a = await client.post(
        "/api/bookings", json={"hold_id": alice_hold}, headers={**alice, "Idempotency-Key": "same"}
    )
    b = await client.post(
        "/api/bookings", json={"hold_id": bob_hold}, headers={**bob, "Idempotency-Key": "same"}
    )

    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_keys_expire_after_a_day(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    headers = {**buyer, "Idempotency-Key": "old"}
    first = await client.post(
        "/api/bookings",
        json={"hold_id": await hold(client, buyer, event.id, event.seat_ids[:1])},
        headers=headers,
    )
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_records SET expires_at = now() - interval '1 second'")
        )

    second = await client.post(
        "/api/bookings",
        json={"hold_id": await hold(client, buyer, event.id, event.seat_ids[1:2])},
        headers=headers,
    )

    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


async def test_bad_keys_are_refused(client: Client, make_user: UserFactory) -> None:
    buyer = await make_user()
    body = {"hold_id": new_hold_id(uuid.uuid4())}
    missing = await client.post("/api/bookings", json=body, headers=buyer)
    too_long = await client.post(
        "/api/bookings", json=body, headers={**buyer, "Idempotency-Key": "k" * 256}
    )

    absent = assert_problem(missing, 400, "validation")
    assert "'Idempotency-Key'" in absent["detail"]
    assert absent["errors"] == [
        {"field": "Idempotency-Key", "source": "header", "message": "required"}
    ]
    problem = assert_problem(too_long, 400, "validation")
    assert [(e["source"], e["field"]) for e in problem["errors"]] == [("header", "idempotency_key")]


async def test_payment_initiation_is_idempotent(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    headers = {**buyer, "Idempotency-Key": "pay-1"}
    body = {"booking_id": booking["id"], "method": "KHALTI"}

    first = await client.post("/api/payments/initiate", json=body, headers=headers)
    retry = await client.post("/api/payments/initiate", json=body, headers=headers)
    other = await client.post(
        "/api/payments/initiate", json={**body, "method": "ESEWA"}, headers=headers
    )
    unkeyed = await client.post("/api/payments/initiate", json=body, headers=buyer)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert other.status_code == 422
    assert unkeyed.status_code == 400
    assert await count(engine, "payments") == 1


async def test_expired_records_are_purged_and_live_ones_kept(
    client: Client,
    make_user: UserFactory,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    for seat in event.seat_ids[:2]:
        await booked(client, buyer, event.id, [seat])
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_records SET expires_at = now() - interval '1 second' "
                "WHERE ctid = (SELECT min(ctid) FROM idempotency_records)"
            )
        )

    async with sessions() as session:
        purged = await records.purge_expired(session)

    assert purged == 1
    assert await count(engine, "idempotency_records") == 1
