"""The benchmark's comparison design (bench/baseline_app.py) against real PostgreSQL: its
two locking reads take their row locks in one order (by seat id), so that its checkouts
queue behind each other instead of deadlocking."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.baseline_app import LOCK_CHOSEN, LOCK_FIRST_FREE
from tests.factories import create_event
from tests.statements import until_a_backend_waits_on_a_lock

LOCK_NOW = text("SELECT id FROM seats WHERE id = :seat FOR UPDATE NOWAIT")
# The first free seats locked as they come, in seat order: what LOCK_FIRST_FREE must not do.
LOCK_IN_SEAT_ORDER = text(
    "SELECT s.id FROM seats s WHERE s.event_id = :event AND s.state = 'available' "
    "ORDER BY s.section, s.row, s.number LIMIT :quantity FOR UPDATE OF s"
)


async def _seats_in_reverse_id_order(engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An event of two seats where the first in seat order has the higher id: the event,
    the lower id, the higher id."""
    event = await create_event(engine, rows=1, seats_per_row=2)
    first, second = event.seat("A", "1", 1), event.seat("A", "1", 2)
    if first > second:
        return event.id, second, first
    # The first seat moves behind the second one.
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE seats SET number = 3 WHERE id = :seat"), {"seat": first})
    return event.id, first, second


async def _locks_while_waiting(
    engine: AsyncEngine,
    query: TextClause,
    params: dict[str, Any],
    lower: uuid.UUID,
    higher: uuid.UUID,
) -> tuple[bool, list[uuid.UUID]]:
    """Runs `query` while another transaction holds the lower id's row: whether the higher
    id's row was locked meanwhile (by `query`, which waits), and what `query` returned once
    the lower id was let go."""

    async def checkout() -> list[uuid.UUID]:
        async with engine.begin() as conn:
            return [row.id for row in await conn.execute(query, params)]

    async with engine.connect() as holder:
        await holder.execute(LOCK_NOW, {"seat": lower})
        waiting = asyncio.create_task(checkout())
        await until_a_backend_waits_on_a_lock(engine, waiting)
        async with engine.connect() as other:
            try:
                await other.execute(LOCK_NOW, {"seat": higher})
                locked = False
            except DBAPIError:
                locked = True
            await other.rollback()
        await holder.commit()
        return locked, sorted(await waiting)


@pytest.mark.parametrize("read", ["best available", "chosen seats"])
async def test_each_locking_read_waits_for_the_lower_id_before_locking_the_higher(
    engine: AsyncEngine, read: str
) -> None:
    event_id, lower, higher = await _seats_in_reverse_id_order(engine)
    query, params = (
        (LOCK_FIRST_FREE, {"event": event_id, "section": None, "quantity": 2})
        if read == "best available"
        else (LOCK_CHOSEN, {"event": event_id, "ids": [higher, lower]})
    )

    locked, got = await _locks_while_waiting(engine, query, params, lower, higher)

    assert locked is False
    assert got == sorted([lower, higher])


async def test_control_locking_in_seat_order_holds_the_first_seat_while_it_waits(
    engine: AsyncEngine,
) -> None:
    # The harness tells the two orders apart: in seat order the first seat (the higher id)
    # is locked while the query waits for the second, which is how two checkouts deadlock.
    event_id, lower, higher = await _seats_in_reverse_id_order(engine)
    params = {"event": event_id, "quantity": 2}

    locked, got = await _locks_while_waiting(engine, LOCK_IN_SEAT_ORDER, params, lower, higher)

    assert locked is True
    assert got == sorted([lower, higher])
