"""Payment edge cases: a webhook whose settling failed is not lost, a declined attempt is
not final, a cancelled event sells nothing more, a passing refusal is not replayed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.errors import Busy, DomainError, Unavailable
from seatlock.models import PaymentMethod
from seatlock.payments import payments
from seatlock.payments.providers.khalti import Khalti
from seatlock.settings import Settings
from tests.buying import booked, hold, initiate, paying, sandbox_callback, verify
from tests.clients import Client, UserFactory, assert_problem
from tests.factories import create_event, scalar


async def test_a_webhook_that_failed_to_settle_is_applied_when_resent(
    client: Client, make_user: UserFactory, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    *_, callback = await paying(client, make_user, engine)
    confirm = payments._confirm

    async def crash_once(*args: Any) -> Any:
        monkeypatch.setattr(payments, "_confirm", confirm)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(payments, "_confirm", crash_once)

    failed = await client.post("/api/payments/webhooks/sandbox", json=callback)
    resent = await client.post("/api/payments/webhooks/sandbox", json=callback)

    assert failed.status_code == 500
    assert resent.status_code == 204
    assert await scalar(engine, "SELECT status FROM bookings") == "confirmed"
    assert await scalar(engine, "SELECT count(*) FROM provider_notifications") == 1


async def test_webhooks_of_unknown_or_unconfigured_providers_are_refused(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    *_, callback = await paying(client, make_user, engine)

    unknown = await client.post("/api/payments/webhooks/paypal", json=callback)
    # A provider the code knows but this service has no keys for: the sandbox serves cards.
    unconfigured = await client.post("/api/payments/webhooks/stripe", json=callback)

    body = assert_problem(unknown, 400, "validation")
    assert [(e["source"], e["field"]) for e in body["errors"]] == [("path", "provider")]
    assert_problem(unconfigured, 404)
    assert await scalar(engine, "SELECT status FROM bookings") == "pending_payment"
    assert await scalar(engine, "SELECT count(*) FROM provider_notifications") == 0


async def test_a_declined_attempt_then_a_success_confirms(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    payment = await initiate(client, buyer, booking["id"])
    declined = await sandbox_callback(client, payment, "fail")
    paid = await sandbox_callback(client, payment)

    first = await verify(client, buyer, payment["id"], declined)
    second = await verify(client, buyer, payment["id"], paid)

    assert first.json()["status"] == "failed"
    assert second.json()["status"] == "succeeded"
    assert await scalar(engine, "SELECT status FROM bookings") == "confirmed"


async def test_a_payment_for_a_cancelled_event_is_refunded(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    _, buyer, booking, payment, callback = await paying(client, make_user, engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE events SET status = 'cancelled'"))

    late = await verify(client, buyer, payment["id"], callback)
    again = await client.post(
        "/api/payments/initiate",
        json={"booking_id": booking["id"], "method": "CARD"},
        headers={**buyer, "Idempotency-Key": "after-cancel"},
    )

    assert late.json()["status"] == "refunded"
    assert await scalar(engine, "SELECT status FROM bookings") == "pending_payment"
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state = 'sold'") == 0
    assert again.status_code == 409


@pytest.mark.parametrize(
    "passing",
    [Unavailable("Redis blinked"), Busy("the hold is being turned into a booking")],
    ids=["unavailable", "busy"],
)
async def test_a_passing_refusal_is_not_replayed_to_the_retry(
    client: Client,
    make_user: UserFactory,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    passing: DomainError,
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:1])
    headers = {**buyer, "Idempotency-Key": "flaky"}
    store = client.app.state.holds
    real_claim = store.claim

    async def refuse_once(*args: Any) -> Any:
        monkeypatch.setattr(store, "claim", real_claim)
        raise passing

    monkeypatch.setattr(store, "claim", refuse_once)

    first = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)
    retry = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=headers)

    assert first.status_code == passing.status
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers


async def test_nul_characters_are_refused_not_500(client: Client, make_user: UserFactory) -> None:
    search = await client.get("/api/events", params={"q": "a\x00b"})
    register = await client.post(
        "/api/auth/register",
        json={
            "email": "nul@example.test",
            "password": "correct horse battery",
            "full_name": "a\x00b",
        },
    )

    # A search text is refused by its schema; a name only where PostgreSQL cannot store it.
    assert search.status_code == 400
    assert register.status_code == 422
    assert register.headers["content-type"] == "application/problem+json"


async def test_a_currency_the_provider_does_not_take_is_refused_before_any_write(
    client: Client, make_user: UserFactory, engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine)  # priced in USD
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    async with httpx.AsyncClient() as http:
        client.app.state.providers[PaymentMethod.KHALTI] = Khalti(settings, http)
        response = await client.post(
            "/api/payments/initiate",
            json={"booking_id": booking["id"], "method": "KHALTI"},
            headers={**buyer, "Idempotency-Key": "npr-only"},
        )

    assert response.status_code == 422
    assert "NPR" in response.json()["detail"]
    assert await scalar(engine, "SELECT count(*) FROM payments") == 0
