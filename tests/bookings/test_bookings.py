"""Holds become bookings; bookings are read, listed and cancelled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role, Seat, SeatState
from tests.buying import book, booked, hold, pay
from tests.clients import Client, UserFactory, assert_problem
from tests.factories import add_users, create_event, reserve_in_postgres
from tests.oracle import assert_consistent
from tests.statements import compiled_anew, statements, transactions


async def seat_states(engine: AsyncEngine, seats: list) -> list[SeatState]:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        rows = await conn.execute(select(Seat.id, Seat.state).where(Seat.id.in_(seats)))
        states = dict(rows.tuples().all())
    return [states[s] for s in seats]


async def test_a_hold_becomes_a_pending_booking(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, price_minor=2500, payment_window_seconds=900)
    buyer = await make_user()
    seats = event.seat_ids[:2]

    booking = await booked(client, buyer, event.id, seats)

    assert booking["status"] == "pending_payment"
    assert (booking["total_minor"], booking["currency"]) == (5000, "USD")
    assert [seat["id"] for seat in booking["seats"]] == [str(s) for s in seats]
    deadline = datetime.fromisoformat(booking["payment_deadline"])
    assert timedelta(seconds=890) < deadline - datetime.now(UTC) <= timedelta(seconds=900)
    assert await seat_states(engine, seats) == [SeatState.RESERVED] * 2
    # The hold is gone, and the seats are now reserved in the Redis cache too.
    again = await client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": [str(seats[0])]},
        headers=await make_user(),
    )
    assert again.status_code == 409
    assert again.json()["reason"] == "reserved"
    assert await assert_consistent(engine, event.id) == 2


async def test_a_free_booking_is_confirmed_at_once(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, price_minor=0)
    seats = event.seat_ids[:1]

    booking = await booked(client, await make_user(), event.id, seats)

    assert (booking["status"], booking["total_minor"]) == ("confirmed", 0)
    assert await seat_states(engine, seats) == [SeatState.SOLD]


async def test_a_full_purchase_sells_the_seats(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    seats = event.seat_ids[3:5]
    booking = await booked(client, buyer, event.id, seats)

    payment = await pay(client, buyer, booking["id"])

    assert payment["status"] == "succeeded"
    assert (await client.get(f"/api/bookings/{booking['id']}", headers=buyer)).json()[
        "status"
    ] == "confirmed"
    assert await seat_states(engine, seats) == [SeatState.SOLD] * 2
    refused = await client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": [str(seats[1])]},
        headers=await make_user(),
    )
    assert refused.json()["reason"] == "sold"


async def test_a_booking_answers_with_what_its_ticket_page_shows(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, price_minor=2500)
    buyer = await make_user()
    seats = [event.seat("A", "1", 3), event.seat("A", "1", 4)]

    created = await booked(client, buyer, event.id, seats)
    payment = await pay(client, buyer, created["id"])
    read = (await client.get(f"/api/bookings/{created['id']}", headers=buyer)).json()
    [listed] = (await client.get("/api/bookings/my-bookings", headers=buyer)).json()["items"]

    assert (
        created["event"]
        == read["event"]
        == {
            "id": str(event.id),
            "title": "Test concert",
            "venue": "Test hall",
            "starts_at": created["event"]["starts_at"],
        }
    )
    line = {"section": "A", "row": "1", "price_category": "Standard", "price_minor": 2500}
    assert created["seats"] == [
        {"id": str(seats[0]), **line, "number": 3},
        {"id": str(seats[1]), **line, "number": 4},
    ]
    assert (created["total_minor"], created["currency"], created["payments"]) == (5000, "USD", [])
    assert read == listed
    assert read["seats"] == created["seats"]
    # The answer is made in the booking's transaction, from PostgreSQL's clock.
    assert (read["created_at"], read["payment_deadline"]) == (
        created["created_at"],
        created["payment_deadline"],
    )
    assert read["status"] == "confirmed"
    [paid] = read["payments"]
    assert {k: paid[k] for k in ("id", "provider", "method", "status", "amount_minor")} == {
        "id": payment["id"],
        "provider": "sandbox",
        "method": "CARD",
        "status": "succeeded",
        "amount_minor": 5000,
    }
    assert paid["currency"] == "USD"
    assert datetime.fromisoformat(paid["created_at"]) <= datetime.now(UTC)


async def test_unknown_expired_and_foreign_holds(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    owner, other = await make_user(), await make_user()
    hold_id = await hold(client, owner, event.id, event.seat_ids[:1])

    assert (await book(client, other, hold_id)).status_code == 404
    assert (await book(client, owner, f"{event.id.hex}.{'x' * 24}")).status_code == 410
    assert_problem(await book(client, owner, "garbage"), 400, "validation")
    assert (await client.delete(f"/api/holds/{hold_id}", headers=owner)).status_code == 204
    assert (await book(client, owner, hold_id)).status_code == 410


async def test_a_booking_needs_an_idempotency_key(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:1])

    response = await client.post("/api/bookings", json={"hold_id": hold_id}, headers=buyer)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert await assert_consistent(engine, event.id) == 0


async def test_bookings_are_private_to_their_owner_and_admins(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    owner, other, admin = await make_user(), await make_user(), await make_user(Role.ADMIN)
    booking = await booked(client, owner, event.id, event.seat_ids[:1])
    url = f"/api/bookings/{booking['id']}"

    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.delete(url, headers=other)).status_code == 404
    assert (await client.get(url, headers=admin)).status_code == 200
    assert (await client.get(url)).status_code == 401
    mine = await client.get("/api/bookings/my-bookings", headers=owner)
    theirs = await client.get("/api/bookings/my-bookings", headers=other)
    assert [b["id"] for b in mine.json()["items"]] == [booking["id"]]
    assert theirs.json() == {
        "items": [],
        "limit": 20,
        "next_cursor": None,
        "next": None,
        "total": 0,
    }


async def test_my_bookings_are_paginated_newest_first(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, max_seats_per_booking=10)
    buyer = await make_user()
    ids = [(await booked(client, buyer, event.id, [seat]))["id"] for seat in event.seat_ids[:3]]

    first = (await client.get("/api/bookings/my-bookings?limit=2", headers=buyer)).json()
    second = (await client.get(first["next"], headers=buyer)).json()

    assert first["total"] == second["total"] == 3
    assert first["next"] == f"/api/bookings/my-bookings?limit=2&cursor={first['next_cursor']}"
    assert [b["id"] for b in first["items"] + second["items"]] == ids[::-1]
    assert (second["next_cursor"], second["next"]) == (None, None)
    assert (
        await client.get("/api/bookings/my-bookings?limit=101", headers=buyer)
    ).status_code == 400


async def test_cancelling_a_pending_booking_frees_its_seats(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    seats = event.seat_ids[:2]
    booking = await booked(client, buyer, event.id, seats)

    cancelled = await client.delete(f"/api/bookings/{booking['id']}", headers=buyer)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert await seat_states(engine, seats) == [SeatState.AVAILABLE] * 2
    assert await hold(client, await make_user(), event.id, seats)
    assert (await client.delete(f"/api/bookings/{booking['id']}", headers=buyer)).status_code == 409


async def test_cancelling_a_confirmed_booking_refunds_it(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    payment = await pay(client, buyer, booking["id"])

    cancelled = await client.delete(f"/api/bookings/{booking['id']}", headers=buyer)

    assert cancelled.json()["status"] == "cancelled"
    refunded = await client.get(f"/api/payments/{payment['id']}", headers=buyer)
    assert refunded.json()["status"] == "refunded"
    assert await seat_states(engine, event.seat_ids[:1]) == [SeatState.AVAILABLE]


async def test_confirmed_bookings_close_to_the_event_only_admins_cancel(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=2)
    event = await create_event(
        engine, starts_at=soon, ends_at=soon + timedelta(hours=2), sale_ends_at=soon
    )
    buyer, admin = await make_user(), await make_user(Role.ADMIN)
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    await pay(client, buyer, booking["id"])

    refused = await client.delete(f"/api/bookings/{booking['id']}", headers=buyer)
    by_admin = await client.delete(f"/api/bookings/{booking['id']}", headers=admin)

    assert refused.status_code == 403
    assert by_admin.json()["status"] == "cancelled"


async def test_a_pending_booking_close_to_the_event_can_still_be_cancelled(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=2)
    event = await create_event(
        engine, starts_at=soon, ends_at=soon + timedelta(hours=2), sale_ends_at=soon
    )
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])

    assert (await client.delete(f"/api/bookings/{booking['id']}", headers=buyer)).status_code == 200


async def test_two_bookings_of_one_hold_make_one_booking(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:2])

    first, second = await asyncio.gather(book(client, buyer, hold_id), book(client, buyer, hold_id))

    assert sorted([first.status_code, second.status_code]) in ([201, 409], [201, 410])
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM bookings")) == 1
    assert await assert_consistent(engine, event.id) == 2


async def test_a_checkout_compiles_no_sql_after_the_first(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    # Compiling a statement costs a worker more CPU than sending it: a checkout's statements
    # come from SQLAlchemy's cache once they were compiled.
    event = await create_event(engine)
    first = await make_user(email="first@example.test")
    second = await make_user(email="second@example.test")
    await pay(client, first, (await booked(client, first, event.id, event.seat_ids[:1]))["id"])

    with compiled_anew(client.app.state.engine) as compiled:
        booking = await booked(client, second, event.id, event.seat_ids[1:2])
        await pay(client, second, booking["id"])

    assert compiled == []


async def test_a_booking_is_one_transaction_of_four_statements(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:2])

    engine_of_app = client.app.state.engine
    with statements(engine_of_app) as sent, transactions(engine_of_app) as ends:
        response = await book(client, buyer, hold_id)

    assert response.status_code == 201, response.text
    # The key's claim, the seats locked with all the booking needs to know, the booking
    # written with its seats, the key's answer; no savepoint, no second read.
    assert [" ".join(s.split()[:3]) for s in sent] == [
        "INSERT INTO idempotency_records",
        "SELECT locked.* FROM",
        "WITH booking AS",
        "UPDATE idempotency_records SET",
    ]
    assert ends == ["begin", "commit"]
    assert await assert_consistent(engine, event.id) == 2


async def test_a_hold_over_a_seat_taken_meanwhile_is_refused_dropped_and_replayed(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    alice, carol = await make_user(), await make_user()
    bob = uuid.uuid4()
    await add_users(engine, bob)
    first, second = event.seat_ids[:2]
    hold_id = await hold(client, alice, event.id, [first, second])
    # Bob's booking of the first seat, which Redis does not hear of (its cache was lost).
    async with engine.begin() as conn:
        await reserve_in_postgres(conn, event.id, bob, first)

    refused = await book(client, alice, hold_id, key="alice-1")
    replayed = await book(client, alice, hold_id, key="alice-1")
    holds = f"/api/events/{event.id}/holds"
    carol_first = await client.post(holds, json={"seat_ids": [str(first)]}, headers=carol)
    carol_second = await client.post(holds, json={"seat_ids": [str(second)]}, headers=carol)

    body = assert_problem(refused, 409, "seats-taken")
    assert body["conflicts"] == [str(first)]
    # The refusal is the key's answer.
    assert replayed.headers["idempotent-replayed"] == "true"
    assert (replayed.status_code, replayed.json()) == (409, body)
    # Nothing was written; the hold is gone and Redis learnt that the first seat is taken.
    assert await seat_states(engine, [first, second]) == [SeatState.RESERVED, SeatState.AVAILABLE]
    assert (await client.get(f"/api/holds/{hold_id}", headers=alice)).status_code in (404, 410)
    assert carol_first.status_code == 409, carol_first.text
    assert carol_second.status_code == 201, carol_second.text
    assert await assert_consistent(engine, event.id) == 1
