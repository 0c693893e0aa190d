"""The per-process cache of events on sale and their seat ids."""

from __future__ import annotations

import asyncio
import sys
import uuid

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock.holds.on_sale import OnSaleCache, SeatIds
from seatlock.models import EventStatus, Seat
from tests.factories import create_event
from tests.statements import statements


async def test_an_event_on_sale_is_read_once_within_the_lifetime(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=60)
    with statements(engine) as seen:
        first = await on_sale.event(event.id)
        second = await on_sale.event(event.id)
        ids = await on_sale.known_seats(event.id, frozenset(event.seat_ids[:2]))
        again = await on_sale.known_seats(event.id, frozenset(event.seat_ids[:1]))

    assert first == second
    assert first is not None
    assert first.status is EventStatus.ON_SALE
    assert ids == frozenset(event.seat_ids[:2])
    assert again == frozenset(event.seat_ids[:1])
    assert len(seen) == 2


async def test_seats_added_later_and_foreign_ids_are_told_apart(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=60)
    new_seat = uuid.uuid4()
    await on_sale.known_seats(event.id, frozenset(event.seat_ids))
    async with engine.begin() as conn:
        category = await conn.scalar(
            text("SELECT id FROM price_categories WHERE event_id = :e"), {"e": event.id}
        )
        await conn.execute(
            insert(Seat).values(
                id=new_seat,
                event_id=event.id,
                section="B",
                row="1",
                number=1,
                price_category_id=category,
            )
        )
    foreign = uuid.uuid4()
    ids = await on_sale.known_seats(event.id, frozenset({new_seat, foreign}))

    assert ids == {new_seat}


async def test_events_not_on_sale_are_not_kept(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine, status=EventStatus.DRAFT)
    on_sale = OnSaleCache(sessions, lifetime_seconds=60)
    draft = await on_sale.event(event.id)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE events SET status = 'on_sale' WHERE id = :e"), {"e": event.id}
        )
    published = await on_sale.event(event.id)

    assert draft is not None
    assert draft.status is EventStatus.DRAFT
    assert published is not None
    assert published.status is EventStatus.ON_SALE


async def test_an_expired_entry_is_refreshed_once_while_readers_keep_the_old_one(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=0.05)
    await on_sale.event(event.id)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE events SET status = 'closed' WHERE id = :e"), {"e": event.id}
        )
    await asyncio.sleep(0.1)

    with statements(engine) as seen:
        stale = await asyncio.gather(*(on_sale.event(event.id) for _ in range(20)))
        await asyncio.sleep(0.2)  # the one refresh completes
    closed = await on_sale.event(event.id)

    assert {facts.status for facts in stale if facts} == {EventStatus.ON_SALE}
    assert len(seen) == 1
    assert closed is not None
    assert closed.status is EventStatus.CLOSED


def test_seat_ids_are_kept_compactly_and_found_exactly() -> None:
    ids = [uuid.uuid4() for _ in range(10_000)]
    known = SeatIds(b"".join(sorted(seat.bytes for seat in ids[:5_000])))
    known.add(ids[5_000:5_001])

    assert all(seat in known for seat in ids[:5_001])
    assert not any(seat in known for seat in ids[5_001:])
    assert len(known) == 5_000
    assert sys.getsizeof(known._sorted) < 17 * 5_000


async def test_closing_waits_for_a_refresh_no_reader_waits_for(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=0.0)
    await on_sale.event(event.id)
    await asyncio.sleep(0.01)

    stale = await on_sale.event(event.id)
    in_flight = on_sale._refreshing.running()
    await on_sale.aclose()

    # The stale reader did not wait for the refresh it started; closing did.
    assert stale is not None
    assert len(in_flight) == 1
    assert all(task.done() for task in in_flight)


async def test_a_burst_on_a_new_event_reads_its_seats_once_and_goes_on_together(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=60)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def known_then_turn(seat: uuid.UUID) -> int:
        assert await on_sale.known_seats(event.id, frozenset({seat})) == {seat}
        return turns

    ticker = asyncio.create_task(count_turns())
    with statements(engine) as seen:
        resumed = await asyncio.gather(*(known_then_turn(s) for s in event.seat_ids))
    ticker.cancel()

    assert len(seen) == 1
    # The waiters went on as soon as the read was done, not one a turn.
    assert max(resumed) - min(resumed) <= 1


class Unreachable:
    """A session factory whose sessions cannot reach PostgreSQL."""

    def __call__(self) -> Unreachable:
        return self

    async def __aenter__(self) -> None:
        await asyncio.sleep(0.01)
        raise ConnectionRefusedError("PostgreSQL is down")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_failed_seat_read_fails_its_waiters_and_the_next_request_reads_again(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = await create_event(engine)
    on_sale = OnSaleCache(sessions, lifetime_seconds=60)
    on_sale.sessions = Unreachable()  # type: ignore[assignment]
    wanted = frozenset(event.seat_ids[:1])

    failed = await asyncio.gather(
        *(on_sale.known_seats(event.id, wanted) for _ in range(5)), return_exceptions=True
    )
    on_sale.sessions = sessions

    assert all(isinstance(f, ConnectionRefusedError) for f in failed), failed
    assert await on_sale.known_seats(event.id, wanted) == wanted
