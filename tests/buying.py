"""A buyer's steps through the API, as a frontend takes them."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import db
from seatlock.bookings.expiry import expire_due_bookings
from seatlock.holds.store import HoldStore
from tests.factories import EventFixture, create_event


async def hold(
    client: httpx.AsyncClient, buyer: dict[str, str], event_id: uuid.UUID, seats: list[uuid.UUID]
) -> str:
    response = await client.post(
        f"/api/events/{event_id}/holds", json={"seat_ids": [str(s) for s in seats]}, headers=buyer
    )
    assert response.status_code == 201, response.text
    hold_id: str = response.json()["id"]
    return hold_id


async def book(
    client: httpx.AsyncClient, buyer: dict[str, str], hold_id: str, key: str | None = None
) -> Any:
    return await client.post(
        "/api/bookings",
        json={"hold_id": hold_id},
        headers={**buyer, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def booked(
    client: httpx.AsyncClient, buyer: dict[str, str], event_id: uuid.UUID, seats: list[uuid.UUID]
) -> dict[str, Any]:
    response = await book(client, buyer, await hold(client, buyer, event_id, seats))
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def initiate(
    client: httpx.AsyncClient, buyer: dict[str, str], booking_id: str, method: str = "CARD"
) -> dict[str, Any]:
    response = await client.post(
        "/api/payments/initiate",
        json={"booking_id": booking_id, "method": method},
        headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def sandbox_callback(
    client: httpx.AsyncClient, payment: dict[str, Any], outcome: str = "complete"
) -> dict[str, str]:
    """What the sandbox hands back when the buyer pays (or fails to): the query string of
    the return URL it sends the browser to."""
    page = urlsplit(payment["checkout_url"])
    response = await client.post(f"{page.path}/{outcome}?{page.query}", follow_redirects=False)
    assert response.status_code == 303, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


async def verify(
    client: httpx.AsyncClient, buyer: dict[str, str], payment_id: str, callback: dict[str, str]
) -> Any:
    return await client.post(
        "/api/payments/verify", json={"payment_id": payment_id, "callback": callback}, headers=buyer
    )


async def pay(
    client: httpx.AsyncClient, buyer: dict[str, str], booking_id: str, method: str = "CARD"
) -> dict[str, Any]:
    payment = await initiate(client, buyer, booking_id, method)
    response = await verify(client, buyer, payment["id"], await sandbox_callback(client, payment))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def paying(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[dict[str, str]]],
    engine: AsyncEngine,
    seats: int = 1,
) -> tuple[EventFixture, dict[str, str], dict[str, Any], dict[str, Any], dict[str, str]]:
    """A buyer with a booking, an initiated payment and the sandbox's success callback."""
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:seats])
    payment = await initiate(client, buyer, booking["id"])
    return event, buyer, booking, payment, await sandbox_callback(client, payment)


async def expire_now(engine: AsyncEngine, store: HoldStore, booking_id: str) -> None:
    """The booking past its payment deadline, and swept."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE bookings SET payment_deadline = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": booking_id},
        )
    async with db.session_factory(engine)() as session:
        assert await expire_due_bookings(session, store) == 1


async def churn(
    client: httpx.AsyncClient,
    buyers: list[dict[str, str]],
    event_id: uuid.UUID,
    seat_ids: list[uuid.UUID],
    chooser: random.Random,
) -> None:
    """Buyers at once, each holding two seats six times over, then booking or releasing
    some of its holds and keeping the others."""

    async def shop(buyer: dict[str, str]) -> None:
        for _ in range(6):
            seats = chooser.sample(seat_ids, 2)
            response = await client.post(
                f"/api/events/{event_id}/holds",
                json={"seat_ids": [str(s) for s in seats]},
                headers=buyer,
            )
            if response.status_code != 201:
                continue
            hold_id = response.json()["id"]
            if chooser.random() < 0.4:
                await book(client, buyer, hold_id)
            elif chooser.random() < 0.5:
                await client.delete(f"/api/holds/{hold_id}", headers=buyer)

    await asyncio.gather(*(shop(b) for b in buyers))
