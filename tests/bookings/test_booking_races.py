"""Races between buyers: PostgreSQL's recheck, not the Redis hold, is what prevents a
double sale. The control test switches the recheck off and must see one."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock.auth.tokens import Principal
from seatlock.bookings import bookings
from seatlock.bookings.bookings import RecheckFailed, SeatsTaken
from seatlock.holds.placement import taken_snapshot
from seatlock.holds.store import HoldPolicy, HoldStore
from seatlock.models import Role, SeatState
from seatlock.settings import Settings
from seatlock.testing.accounts import mint_accounts
from seatlock.testing.servers import NO_SHEDDING
from tests.factories import add_users, create_event, reserve_in_postgres
from tests.live_server import live_server
from tests.oracle import assert_consistent, double_sold_seats
from tests.statements import until_a_backend_waits_on_a_lock

SHORT = HoldPolicy(ttl_ms=300, max_extensions=0, max_lifetime_ms=300, seat_cap=10)
LONG = HoldPolicy(ttl_ms=60_000, max_extensions=0, max_lifetime_ms=60_000, seat_cap=10)
# The booking's recheck, in the read that locks the seats and in the write that takes them.
RECHECK = "(s.state = 'available')"


async def paused_owner_race(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], store: HoldStore
) -> tuple[uuid.UUID, Exception | None]:
    """A claims its hold, pauses past the hold's TTL; meanwhile B holds and books the same
    seats; then A's booking transaction runs. Returns the event and A's error, if any."""
    event = await create_event(engine)
    seats = event.seat_ids[:2]
    alice, bob = (Principal(uuid.uuid4(), Role.USER, f"{n}@example.test") for n in ("a", "b"))
    await add_users(engine, alice.id, bob.id)
    async with sessions() as session:
        alice_hold = await store.hold(event.id, alice.id, seats, SHORT, taken_snapshot(sessions))
    claimed_event, claimed_seats = await store.claim(alice_hold.id, alice.id)
    await asyncio.sleep(0.5)  # Alice's process is paused; her hold runs out.

    async with sessions() as session:
        bob_hold = await store.hold(event.id, bob.id, seats, LONG, taken_snapshot(sessions))
        await bookings.create_booking(session, store, bob, bob_hold.id)
    async with sessions() as session:
        try:
            await bookings.book_claimed_hold(
                session, alice, alice_hold.id, claimed_event, claimed_seats
            )
            await session.commit()
        except (SeatsTaken, RecheckFailed) as refused:
            return event.id, refused
    return event.id, None


async def test_a_paused_owner_cannot_book_seats_sold_meanwhile(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], store: HoldStore
) -> None:
    event_id, alice_error = await paused_owner_race(engine, sessions, store)

    assert isinstance(alice_error, SeatsTaken)
    assert await assert_consistent(engine, event_id) == 2
    async with engine.connect() as conn:
        assert await conn.scalar(sqlalchemy.text("SELECT count(*) FROM bookings")) == 1


async def test_the_conditional_write_alone_refuses_a_seat_sold_meanwhile(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without the locking read's recheck, the write's own condition takes nothing, and
    # nothing of the booking is kept.
    statement = str(bookings.LOCK_SEATS)
    assert RECHECK in statement
    monkeypatch.setattr(bookings, "LOCK_SEATS", sqlalchemy.text(statement.replace(RECHECK, "true")))

    event_id, alice_error = await paused_owner_race(engine, sessions, store)

    assert isinstance(alice_error, RecheckFailed)
    assert await assert_consistent(engine, event_id) == 2
    async with engine.connect() as conn:
        assert await conn.scalar(sqlalchemy.text("SELECT count(*) FROM bookings")) == 1


async def test_control_without_the_recheck_the_harness_sees_a_double_sale(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    store: HoldStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("LOCK_SEATS", "BOOK_SEATS"):
        statement = str(getattr(bookings, name))
        assert RECHECK in statement
        monkeypatch.setattr(bookings, name, sqlalchemy.text(statement.replace(RECHECK, "true")))

    event_id, alice_error = await paused_owner_race(engine, sessions, store)

    assert alice_error is None
    assert len(await double_sold_seats(engine, event_id)) == 2


async def test_flushall_in_the_middle_of_a_sale_sells_no_seat_twice(
    engine: AsyncEngine, settings: Settings, redis: Redis
) -> None:
    event = await create_event(engine, rows=2, seats_per_row=10)
    seat_ids = [str(s) for s in event.seat_ids]
    buyers = await mint_accounts(engine, settings.jwt_secret, 60)
    chooser = random.Random(11)

    async def buy(http: httpx.AsyncClient, headers: dict[str, str], ask: dict[str, Any]) -> int:
        held = await http.post(f"/api/events/{event.id}/holds", json=ask, headers=headers)
        if held.status_code != 201:
            return held.status_code
        booked = await http.post(
            "/api/bookings",
            json={"hold_id": held.json()["id"]},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        return int(booked.status_code)

    async def flush_repeatedly() -> None:
        for _ in range(5):
            await asyncio.sleep(0.05)
            await redis.flushall()

    with live_server(settings, workers=2, extra_env=NO_SHEDDING) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            results = await asyncio.gather(
                *(buy(http, b, {"seat_ids": chooser.sample(seat_ids, 2)}) for b in buyers),
                flush_repeatedly(),
            )
            statuses = [s for s in results if s is not None]
            # The sale goes on after the flushes: the best available seat, booked.
            after = await buy(http, buyers[0], {"quantity": 1})

    assert set(statuses) <= {201, 409, 410}, statuses
    assert after in (201, 409)
    # The flushes may take every hold of the race (each booking then answers 410). A seat
    # is then still free for the buyer after them, since only a sale leaves a hold behind
    # (a booking refused 409 for a seat sold meanwhile).
    sold_in_race = statuses.count(201)
    assert sold_in_race + (after == 201) >= 1
    assert await assert_consistent(engine, event.id) == 2 * sold_in_race + (after == 201)


async def test_many_buyers_booking_overlapping_seats_over_http(
    engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine, rows=3, seats_per_row=10)
    seat_ids = [str(s) for s in event.seat_ids]
    buyers = await mint_accounts(engine, settings.jwt_secret, 120)
    chooser = random.Random(3)
    wanted = [chooser.sample(seat_ids, chooser.randint(1, 3)) for _ in buyers]

    async def buy(http: httpx.AsyncClient, headers: dict[str, str], seats: list[str]) -> list[str]:
        held = await http.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": seats}, headers=headers
        )
        if held.status_code != 201:
            assert held.status_code == 409, held.text
            return []
        booked = await http.post(
            "/api/bookings",
            json={"hold_id": held.json()["id"]},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert booked.status_code == 201, booked.text
        return [seat["id"] for seat in booked.json()["seats"]]

    with live_server(settings, workers=2, extra_env=NO_SHEDDING) as base_url:
        limits = httpx.Limits(max_connections=len(buyers))
        async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
            won = await asyncio.gather(
                *(buy(http, b, s) for b, s in zip(buyers, wanted, strict=True))
            )

    sold = [seat for seats in won for seat in seats]
    assert len(sold) == len(set(sold))
    assert await assert_consistent(engine, event.id) == len(sold)


async def test_a_booking_waiting_on_a_seat_lock_is_refused_once_the_seat_is_taken(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], store: HoldStore
) -> None:
    # Bob's booking transaction holds the first seat's row lock; Alice's locking read waits
    # on it; Bob's reserves the seat and commits; PostgreSQL reads the seat again for Alice.
    event = await create_event(engine)
    first, second = event.seat_ids[:2]
    alice, bob = (Principal(uuid.uuid4(), Role.USER, f"{n}@example.test") for n in ("a", "b"))
    await add_users(engine, alice.id, bob.id)
    taken = taken_snapshot(sessions)
    alice_hold = await store.hold(event.id, alice.id, [first, second], LONG, taken)
    claimed_event, claimed_seats = await store.claim(alice_hold.id, alice.id)

    async def alice_books() -> SeatsTaken | None:
        async with sessions() as session:
            try:
                await bookings.book_claimed_hold(
                    session, alice, alice_hold.id, claimed_event, claimed_seats
                )
            except SeatsTaken as refused:
                return refused
            await session.commit()
            return None

    async with engine.connect() as bobs:
        await bobs.execute(
            sqlalchemy.text("SELECT id FROM seats WHERE id = :seat FOR UPDATE"), {"seat": first}
        )
        booking = asyncio.create_task(alice_books())
        await until_a_backend_waits_on_a_lock(engine, booking)
        await reserve_in_postgres(bobs, event.id, bob.id, first)
        await bobs.commit()
        refused = await booking

    assert isinstance(refused, SeatsTaken)
    assert refused.conflicts == [first]
    assert refused.states == {first: SeatState.RESERVED}
    async with engine.connect() as conn:
        owners = await conn.execute(sqlalchemy.text("SELECT user_id FROM bookings"))
        assert [row.user_id for row in owners] == [bob.id]
    assert await assert_consistent(engine, event.id) == 1
