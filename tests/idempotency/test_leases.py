"""POST /api/payments/initiate calls its provider between two transactions, so its key is
claimed under a lease: a crash leaves the key taken for the lease only, and the retry that
takes it over finishes the payment the crashed attempt made instead of making another."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock.idempotency import records
from seatlock.models import PaymentMethod
from seatlock.payments.providers.base import Checkout, Initiated
from tests.buying import booked
from tests.clients import Client, UserFactory, assert_problem
from tests.factories import EventFixture, create_event, scalar
from tests.faults.stuck import assert_nothing_stuck, stuck
from tests.oracle import assert_consistent

INITIATE = "/api/payments/initiate"


def replace_once(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, stand_in: Callable[..., Awaitable[Any]]
) -> None:
    """`owner.name` does what `stand_in` does for one call, then what it did before."""
    real = getattr(owner, name)

    async def once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(owner, name, real)
        return await stand_in(*args, **kwargs)

    monkeypatch.setattr(owner, name, once)


async def lapse_leases(engine: AsyncEngine) -> None:
    """Time travel: every lease is over."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_records SET locked_until = clock_timestamp() - interval '1s'")
        )


async def a_booking(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> tuple[EventFixture, dict[str, str], dict[str, Any]]:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    return (
        event,
        {**buyer, "Idempotency-Key": "pay"},
        {"booking_id": booking["id"], "method": "CARD"},
    )


async def crash_after_the_provider(
    client: Client, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], body: dict[str, Any]
) -> None:
    """What a process killed after its provider answered leaves behind: it neither stores
    the answer nor gives its lease up."""

    async def died(*args: Any) -> bool:
        raise RuntimeError("the process died")

    async def nothing(*args: Any) -> None:
        return None

    replace_once(monkeypatch, records, "store", died)
    replace_once(monkeypatch, records, "release", nothing)
    assert (await client.post(INITIATE, json=body, headers=headers)).status_code == 500


async def test_a_retry_after_the_lease_finishes_the_payment_a_crash_left(
    client: Client, make_user: UserFactory, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, headers, body = await a_booking(client, make_user, engine)
    await crash_after_the_provider(client, monkeypatch, headers, body)
    left = await scalar(engine, "SELECT id FROM payments WHERE provider_reference IS NULL")
    assert len(await stuck(engine)) == 2  # the key and the payment

    early = await client.post(INITIATE, json=body, headers=headers)
    await lapse_leases(engine)
    late = await client.post(INITIATE, json=body, headers=headers)
    again = await client.post(INITIATE, json=body, headers=headers)

    assert_problem(early, 409, "idempotency-key-in-use")
    assert 1 <= int(early.headers["retry-after"]) <= 30
    assert late.status_code == 201, late.text
    assert "idempotent-replayed" not in late.headers
    assert late.json()["id"] == str(left)
    assert late.json()["status"] == "initiated"
    assert late.json()["provider_reference"]
    assert again.json() == late.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await scalar(engine, "SELECT count(*) FROM payments") == 1
    await assert_nothing_stuck(engine)
    await assert_consistent(engine, event.id)


async def test_a_failed_provider_call_fails_its_payment_and_frees_the_key(
    client: Client, make_user: UserFactory, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, headers, body = await a_booking(client, make_user, engine)

    async def unreachable(checkout: Checkout) -> Initiated:
        raise RuntimeError("the provider did not answer")

    provider = client.app.state.providers[PaymentMethod.CARD]
    replace_once(monkeypatch, provider, "initiate", unreachable)
    failed = await client.post(INITIATE, json=body, headers=headers)
    retry = await client.post(INITIATE, json=body, headers=headers)

    assert failed.status_code == 500
    assert retry.status_code == 201
    statuses = await scalar(
        engine, "SELECT string_agg(status::text, ',' ORDER BY created_at) FROM payments"
    )
    assert statuses == "failed,initiated"
    assert (
        await scalar(engine, "SELECT status FROM payments WHERE id = :id", id=retry.json()["id"])
        == "initiated"
    )
    await assert_nothing_stuck(engine)
    await assert_consistent(engine, event.id)


async def test_a_takeover_that_is_refused_fails_the_payment_it_found(
    client: Client, make_user: UserFactory, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, headers, body = await a_booking(client, make_user, engine)
    await crash_after_the_provider(client, monkeypatch, headers, body)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE events SET status = 'cancelled'"))
    await lapse_leases(engine)

    refused = await client.post(INITIATE, json=body, headers=headers)
    again = await client.post(INITIATE, json=body, headers=headers)

    assert_problem(refused, 409, "conflict")
    assert again.json() == refused.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await scalar(engine, "SELECT status FROM payments") == "failed"
    await assert_nothing_stuck(engine)
    await assert_consistent(engine, event.id)


async def test_a_claim_taken_over_can_neither_answer_nor_give_the_key_up(
    make_user: UserFactory, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # (A request that outlives its lease: in-process requests run one at a time, so the
    # interleaving is played on the records themselves.)
    await make_user()
    user_id = await scalar(engine, "SELECT id FROM users")
    claim = (user_id, "POST /api/payments/initiate", "slow", b"{}", timedelta(seconds=30))
    made = uuid.uuid4()
    answer = records.StoredResponse(201, b"{}", "application/json")
    async with sessions() as session:
        slow = await records.claim(session, *claim)
        assert isinstance(slow, records.Claim)
        await records.remember(session, slow, made)
        await session.commit()
    await lapse_leases(engine)
    async with sessions() as session:
        successor = await records.claim(session, *claim)
        await session.commit()

    async with sessions() as session:
        late_answer = await records.store(session, slow, answer)
        await records.release(session, slow)
    async with sessions() as session:
        with pytest.raises(records.KeyInUse):  # the successor's lease is on
            await records.claim(session, *claim)
    async with sessions() as session:
        assert isinstance(successor, records.Claim)
        stored = await records.store(session, successor, answer)
        await session.commit()

    assert successor.earlier == made
    assert (late_answer, stored) == (False, True)
    await assert_nothing_stuck(engine)
