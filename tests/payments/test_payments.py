"""Payments: verified exactly once, checked against the booking, refunded when a seat
cannot be delivered; late payments both ways; provider webhooks deduplicated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import db
from seatlock.app import create_app
from seatlock.bookings.expiry import expire_due_bookings
from seatlock.holds.store import HoldStore
from seatlock.models import PaymentMethod, Role
from seatlock.payments.providers.base import Outcome
from seatlock.settings import Settings
from tests.buying import booked, expire_now, initiate, pay, paying, sandbox_callback, verify
from tests.clients import Client, UserFactory
from tests.factories import create_event, scalar
from tests.oracle import assert_consistent


async def test_ten_concurrent_verifications_confirm_once(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:2])
    payment = await initiate(client, buyer, booking["id"])
    callback = await sandbox_callback(client, payment)

    responses = await asyncio.gather(
        *(verify(client, buyer, payment["id"], callback) for _ in range(10))
    )

    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["status"] for r in responses} == {"succeeded"}
    assert (
        await scalar(engine, "SELECT status FROM bookings WHERE id = :id", id=booking["id"])
        == "confirmed"
    )
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state = 'sold'") == 2
    assert await assert_consistent(engine, event.id) == 2


async def test_the_sandbox_sends_the_browser_to_the_services_return_page(
    client: Client, make_user: UserFactory, engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    payment = await initiate(client, buyer, booking["id"])
    page = urlsplit(payment["checkout_url"])
    assert f"{page.scheme}://{page.netloc}" == f"http://127.0.0.1:{settings.port}"

    paid = await client.post(f"{page.path}/complete?{page.query}", follow_redirects=False)

    assert paid.status_code == 303
    back = urlsplit(paid.headers["location"])
    assert (back.netloc, back.path) == (page.netloc, "/api/payments/return")
    # A browser lands there without any token, and the page says what happened.
    landed = await client.get(f"{back.path}?{back.query}")
    assert landed.status_code == 200
    assert landed.headers["content-type"].startswith("text/html")
    assert "Payment received" in landed.text
    # The query string the browser came back with is the callback, as it stands.
    verified = await verify(client, buyer, payment["id"], dict(parse_qsl(back.query)))
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "succeeded"


async def test_a_long_return_url_survives_the_trip_through_the_sandbox(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    # At the longest allowed, and mostly characters the checkout address must encode.
    return_url = "https://shop.example/paid?note=" + "ü&" * 484
    assert len(return_url) == 999
    response = await client.post(
        "/api/payments/initiate",
        json={"booking_id": booking["id"], "method": "CARD", "return_url": return_url},
        headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    page = urlsplit(response.json()["checkout_url"])

    paid = await client.post(f"{page.path}/complete?{page.query}", follow_redirects=False)

    assert paid.status_code == 303
    assert paid.headers["location"].startswith("https://shop.example/paid?note=%C3%BC")


async def test_a_failed_payment_leaves_the_booking_pending(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    payment = await initiate(client, buyer, booking["id"], "ESEWA")

    failed = await verify(
        client, buyer, payment["id"], await sandbox_callback(client, payment, "fail")
    )

    assert failed.json()["status"] == "failed"
    assert await scalar(engine, "SELECT status FROM bookings") == "pending_payment"
    assert (await pay(client, buyer, booking["id"], "KHALTI"))["status"] == "succeeded"


async def test_a_tampered_callback_changes_nothing(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    payment = await initiate(client, buyer, booking["id"])
    failing = await sandbox_callback(client, payment, "fail")

    forged = await verify(client, buyer, payment["id"], {**failing, "status": "succeeded"})

    assert 400 <= forged.status_code < 500
    assert forged.headers["content-type"] == "application/problem+json"
    assert await scalar(engine, "SELECT status FROM payments") == "initiated"
    assert await scalar(engine, "SELECT status FROM bookings") == "pending_payment"


async def test_a_callback_of_another_payment_is_refused(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    cheap = await booked(client, buyer, event.id, event.seat_ids[:1])
    dear = await booked(client, buyer, event.id, event.seat_ids[1:3])
    cheap_payment = await initiate(client, buyer, cheap["id"])
    dear_payment = await initiate(client, buyer, dear["id"])

    swapped = await verify(
        client, buyer, dear_payment["id"], await sandbox_callback(client, cheap_payment)
    )

    assert 400 <= swapped.status_code < 500
    assert await scalar(engine, "SELECT count(*) FROM payments WHERE status = 'initiated'") == 2


async def test_a_replayed_callback_is_harmless(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    _event, buyer, booking, payment, callback = await paying(client, make_user, engine)
    await verify(client, buyer, payment["id"], callback)
    await client.delete(f"/api/bookings/{booking['id']}", headers=buyer)

    replay = await verify(client, buyer, payment["id"], callback)

    # Already settled (and refunded by the cancellation): the replay moves nothing.
    assert replay.json()["status"] == "refunded"
    assert await scalar(engine, "SELECT status FROM bookings") == "cancelled"
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state <> 'available'") == 0


async def test_payments_are_private(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer, other, admin = await make_user(), await make_user(), await make_user(Role.ADMIN)
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    payment = await initiate(client, buyer, booking["id"])
    callback = await sandbox_callback(client, payment)

    assert (await client.get(f"/api/payments/{payment['id']}", headers=other)).status_code == 404
    assert (await client.get(f"/api/payments/{payment['id']}", headers=admin)).status_code == 200
    assert (await verify(client, other, payment["id"], callback)).status_code == 404
    other_initiate = await client.post(
        "/api/payments/initiate",
        json={"booking_id": booking["id"], "method": "CARD"},
        headers={**other, "Idempotency-Key": "x"},
    )
    assert other_initiate.status_code == 404
    assert await scalar(engine, "SELECT status FROM payments") == "initiated"


async def test_a_late_payment_reclaims_free_seats(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:2])
    payment = await initiate(client, buyer, booking["id"])
    callback = await sandbox_callback(client, payment)
    await expire_now(engine, store, booking["id"])
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state = 'available'") == len(
        event.seat_ids
    )

    late = await verify(client, buyer, payment["id"], callback)

    assert late.json()["status"] == "succeeded"
    assert await scalar(engine, "SELECT status FROM bookings") == "confirmed"
    assert await assert_consistent(engine, event.id) == 2


async def test_a_late_payment_for_resold_seats_is_refunded(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore
) -> None:
    event = await create_event(engine)
    late_buyer, quick_buyer = await make_user(), await make_user()
    seats = event.seat_ids[:2]
    booking = await booked(client, late_buyer, event.id, seats)
    payment = await initiate(client, late_buyer, booking["id"])
    callback = await sandbox_callback(client, payment)
    await expire_now(engine, store, booking["id"])
    # One of the two seats went to someone else meanwhile.
    other = await booked(client, quick_buyer, event.id, seats[1:])

    late = await verify(client, late_buyer, payment["id"], callback)

    assert late.json()["status"] == "refunded"
    assert (
        await scalar(engine, "SELECT status FROM bookings WHERE id = :id", id=booking["id"])
        == "expired"
    )
    assert (
        await scalar(engine, "SELECT state FROM seats WHERE id = :id", id=seats[0]) == "available"
    )
    assert await scalar(
        engine, "SELECT booking_id FROM seats WHERE id = :id", id=seats[1]
    ) == uuid.UUID(other["id"])
    assert await assert_consistent(engine, event.id) == 1


async def test_the_expiry_sweep_frees_unpaid_seats_once(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore
) -> None:
    event = await create_event(engine, max_seats_per_booking=10)
    buyers = [await make_user() for _ in range(3)]
    bookings = [
        await booked(client, b, event.id, [seat])
        for b, seat in zip(buyers, event.seat_ids, strict=False)
    ]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE bookings SET payment_deadline = now() - interval '1 second'")
        )

    async def sweep() -> int:
        async with db.session_factory(engine)() as session:
            return await expire_due_bookings(session, store)

    counts = await asyncio.gather(sweep(), sweep(), sweep())

    assert sum(counts) == len(bookings)
    assert await scalar(engine, "SELECT count(*) FROM bookings WHERE status = 'expired'") == 3
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state <> 'available'") == 0
    # The Redis cache forgot them too: the seats can be held again at once.
    again = await client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": [str(s) for s in event.seat_ids[:3]]},
        headers=await make_user(),
    )
    assert again.status_code == 201


async def test_the_sweep_leaves_bookings_within_their_window(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore
) -> None:
    event = await create_event(engine)
    await booked(client, await make_user(), event.id, event.seat_ids[:1])

    async with db.session_factory(engine)() as session:
        assert await expire_due_bookings(session, store) == 0
    assert await scalar(engine, "SELECT status FROM bookings") == "pending_payment"


class ShortChangingProvider:
    """A provider that reports a smaller amount than the booking's."""

    name = "sandbox"

    def __init__(self, real: Any) -> None:
        self.real = real

    async def initiate(self, checkout: Any) -> Any:
        return await self.real.initiate(checkout)

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        outcome: Outcome = await self.real.verify(provider_reference, callback)
        return Outcome(
            outcome.provider_reference,
            "succeeded",
            outcome.amount_minor - 1,
            outcome.currency,
            None,
        )

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        raise NotImplementedError

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str:
        result: str = await self.real.refund(provider_reference, amount_minor, currency)
        return result


async def test_an_amount_mismatch_is_refused_and_refunded(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    _event, buyer, _booking, payment, callback = await paying(client, make_user, engine)
    providers = client.app.state.providers
    providers[PaymentMethod.CARD] = ShortChangingProvider(providers[PaymentMethod.CARD])

    mismatch = await verify(client, buyer, payment["id"], callback)

    assert mismatch.status_code == 422
    assert await scalar(engine, "SELECT status FROM payments") == "refunded"
    assert await scalar(engine, "SELECT status FROM bookings") == "pending_payment"
    assert await scalar(engine, "SELECT count(*) FROM seats WHERE state = 'sold'") == 0


async def test_webhooks_settle_once_and_ignore_replays(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    _event, _buyer, _booking, _payment, callback = await paying(client, make_user, engine)

    first = await client.post("/api/payments/webhooks/sandbox", json=callback)
    replay = await client.post("/api/payments/webhooks/sandbox", json=callback)
    forged = await client.post(
        "/api/payments/webhooks/sandbox", json={**callback, "amount_minor": "1"}
    )

    assert (first.status_code, replay.status_code) == (204, 204)
    assert 400 <= forged.status_code < 500
    assert await scalar(engine, "SELECT count(*) FROM provider_notifications") == 1
    assert await scalar(engine, "SELECT status FROM bookings") == "confirmed"


async def test_payment_needs_a_pending_booking(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, price_minor=0)
    buyer = await make_user()
    free = await booked(client, buyer, event.id, event.seat_ids[:1])

    response = await client.post(
        "/api/payments/initiate",
        json={"booking_id": free["id"], "method": "CARD"},
        headers={**buyer, "Idempotency-Key": "k"},
    )

    assert response.status_code == 409
    deadline = datetime.now(UTC) + timedelta(days=1)
    assert deadline > datetime.fromisoformat(free["payment_deadline"])


async def test_the_service_expires_overdue_bookings_by_itself(
    settings: Settings, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, payment_window_seconds=1)
    buyer = await make_user()
    app = create_app(msgspec.structs.replace(settings, expiry_interval_seconds=0.2))
    async with AsyncTestClient(app=app) as sweeping:
        booking = await booked(sweeping, buyer, event.id, event.seat_ids[:1])
        for _ in range(50):
            await asyncio.sleep(0.1)
            status = await scalar(
                engine, "SELECT status FROM bookings WHERE id = :id", id=booking["id"]
            )
            if status == "expired":
                break

    assert status == "expired"
    assert (
        await scalar(engine, "SELECT state FROM seats WHERE id = :id", id=event.seat_ids[0])
        == "available"
    )
