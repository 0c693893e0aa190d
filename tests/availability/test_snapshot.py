"""The availability snapshot on real PostgreSQL and Valkey: it agrees with PostgreSQL and
the live holds after a churn (an oracle over every seat), answers 304 until something
changes, picks the smaller encoding, is the same for every caller, costs no PostgreSQL
query in the steady state, and says so when it cannot show holds."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import keys
from seatlock.availability.snapshot import FRESH_SECONDS
from seatlock.embedded.host import free_port
from seatlock.holds.store import HoldStore
from tests.buying import churn, hold
from tests.clients import Client, ClientWith, UserFactory
from tests.factories import create_event
from tests.oracle import assert_consistent
from tests.statements import statements


def _indexes(seat_set: dict[str, Any]) -> set[int]:
    if seat_set["encoding"] == "indexes":
        found = set(seat_set["data"])
    else:
        bits = base64.b64decode(seat_set["data"])
        found = {i for i in range(len(bits) * 8) if bits[i >> 3] >> (i & 7) & 1}
    assert len(found) == seat_set["count"]
    return found


async def _seat_ids_by_index(client: Client, event_id: uuid.UUID) -> list[str]:
    layout = (await client.get(f"/api/events/{event_id}/layout")).json()
    return [seat_id for row in layout["rows"] for seat_id in row["seat_ids"]]


async def _states(client: Client, event_id: uuid.UUID) -> tuple[dict[str, Any], dict[str, str]]:
    """The snapshot and, decoded, the state of every seat it says is not available."""
    response = await client.get(f"/api/events/{event_id}/availability")
    assert response.status_code == 200, response.text
    snapshot = response.json()
    ids = await _seat_ids_by_index(client, event_id)
    states = {
        ids[index]: state
        for state in ("held", "reserved", "sold")
        for index in _indexes(snapshot[state])
    }
    return snapshot, states


async def _truth(engine: AsyncEngine, store: HoldStore, event_id: uuid.UUID) -> dict[str, str]:
    """PostgreSQL's reserved and sold seats, and the live holds' seats on the others."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, state FROM seats WHERE event_id = :e AND state <> 'available'"),
            {"e": event_id},
        )
        taken = {str(seat_id): state for seat_id, state in rows}
    held = {str(seat_id): "held" for seat_id in await store.held_seats(event_id)}
    return {**held, **taken}


async def test_the_snapshot_agrees_with_postgresql_and_the_holds_after_a_churn(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore, redis: Redis
) -> None:
    event = await create_event(engine, sections=("A", "B"), rows=5, seats_per_row=10)
    buyers = [await make_user() for _ in range(8)]
    await churn(client, buyers, event.id, event.seat_ids, random.Random(7))
    await asyncio.sleep(FRESH_SECONDS)

    snapshot, states = await _states(client, event.id)

    assert states == await _truth(engine, store, event.id)
    await assert_consistent(engine, event.id)
    assert snapshot["version"] == int(await redis.get(keys.seat_version(event.id)))
    assert snapshot["holds_shown"] is True
    assert snapshot["seat_count"] == 100
    assert snapshot["available"] == 100 - len(states)
    per_section = {s["name"]: s for s in snapshot["sections"]}
    for section in ("A", "B"):
        taken_here = sum(1 for s in states if event.seats_by_id()[s][0] == section)
        assert per_section[section] == {"name": section, "seats": 50, "available": 50 - taken_here}
    assert snapshot["price_categories"] == [
        {
            "id": str(event.category_ids["Standard"]),
            "name": "Standard",
            "seats": 100,
            "available": 100 - len(states),
        }
    ]


async def test_304_until_a_change_then_a_new_version(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    path = f"/api/events/{event.id}/availability"
    first = await client.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=5"

    unchanged = await client.get(path, headers={"If-None-Match": etag})
    await hold(client, buyer, event.id, event.seat_ids[:1])
    await asyncio.sleep(FRESH_SECONDS)
    changed = await client.get(path, headers={"If-None-Match": etag})

    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["version"] == first.json()["version"] + 1
    assert _indexes(changed.json()["held"]) == {0}


async def test_many_taken_seats_come_as_a_compressed_bitmap(
    client: Client, engine: AsyncEngine
) -> None:
    event = await create_event(engine, rows=100, seats_per_row=200)
    sold = event.seat_ids[::10]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE seats SET state = 'sold' WHERE id = ANY(:ids)"), {"ids": sold}
        )

    response = await client.get(
        f"/api/events/{event.id}/availability", headers={"Accept-Encoding": "gzip"}
    )

    assert response.headers["content-encoding"] == "gzip"
    snapshot = response.json()
    assert snapshot["sold"]["encoding"] == "bitmap"
    assert snapshot["held"] == {"encoding": "indexes", "count": 0, "data": []}
    ids = await _seat_ids_by_index(client, event.id)
    assert {ids[i] for i in _indexes(snapshot["sold"])} == set(map(str, sold))
    assert snapshot["available"] == 18_000
    # A bit per seat: the 20,000 seats take 2,500 bytes (3,336 in base64).
    assert len(response.content) < 4_000


async def test_the_snapshot_is_the_same_for_every_caller(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    await hold(client, buyer, event.id, event.seat_ids[:2])
    path = f"/api/events/{event.id}/availability"

    as_buyer = await client.get(path, headers=buyer)
    as_anyone = await client.get(path)

    assert as_buyer.content == as_anyone.content
    assert "owner" not in as_anyone.text
    assert _indexes(as_anyone.json()["held"]) == {0, 1}


async def test_reads_cost_no_postgresql_query_in_the_steady_state(
    client_with: ClientWith, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    async with client_with() as client:
        path = f"/api/events/{event.id}/availability"
        await client.get(path)
        with statements(client.app.state.engine) as seen:
            answers = [await client.get(path) for _ in range(50)]

    assert {a.status_code for a in answers} == {200}
    # The on-sale facts behind the visibility check are re-read every 2 s by one request.
    assert len(seen) <= 1, seen


async def test_without_redis_the_snapshot_says_it_cannot_show_holds(
    client_with: ClientWith, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE seats SET state = 'reserved' WHERE id = :id"), {"id": event.seat_ids[3]}
        )

    async with client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0") as client:
        response = await client.get(f"/api/events/{event.id}/availability")

    assert response.status_code == 200
    assert "etag" not in response.headers
    assert response.headers["cache-control"] == "private, no-store"
    snapshot = response.json()
    assert (snapshot["holds_shown"], snapshot["version"]) == (False, None)
    assert _indexes(snapshot["reserved"]) == {3}
    assert snapshot["available"] == 19
