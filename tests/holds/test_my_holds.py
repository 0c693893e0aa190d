"""`GET /api/holds`: a buyer's own live holds across events, on real PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.embedded.host import free_port
from seatlock.holds.store import HoldStore
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.factories import EventFixture, create_event


async def _hold(
    client: Client, event: EventFixture, seats: list[uuid.UUID], buyer: dict[str, str]
) -> dict[str, Any]:
    response = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(s) for s in seats]}, headers=buyer
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _my_holds(client: Client, buyer: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/holds", headers=buyer)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["total"] == len(body["items"])
    return body


async def test_each_buyer_sees_exactly_their_own_holds_soonest_first(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    # The second event's holds run out sooner, so they come first although made later.
    first, second = await create_event(engine), await create_event(engine, hold_ttl_seconds=300)
    ada, bob = await make_user(), await make_user()
    made = {
        "ada": [
            await _hold(client, first, first.seat_ids[0:2], ada),
            await _hold(client, second, second.seat_ids[0:1], ada),
        ],
        "bob": [
            await _hold(client, first, first.seat_ids[2:3], bob),
            await _hold(client, second, second.seat_ids[1:4], bob),
        ],
    }

    for name, buyer in (("ada", ada), ("bob", bob)):
        listed = (await _my_holds(client, buyer))["items"]
        expected = [made[name][1], made[name][0]]
        assert [(h["id"], h["event_id"], h["seats"]) for h in listed] == [
            (h["id"], h["event_id"], h["seats"]) for h in expected
        ]
        for hold, created in zip(listed, expected, strict=True):
            assert hold["expires_at"] == created["expires_at"]
            assert hold["extensions_left"] == 2
            assert hold["state"] == "held"
            left = (datetime.fromisoformat(hold["expires_at"]) - datetime.now(UTC)).total_seconds()
            assert abs(hold["seconds_left"] - left) < 2
        assert set(listed[0]) == {
            "id",
            "event_id",
            "seats",
            "expires_at",
            "seconds_left",
            "extensions_left",
            "state",
        }


async def test_a_buyer_without_holds_gets_an_empty_list(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    await create_event(engine)
    assert await _my_holds(client, await make_user()) == {
        "items": [],
        "limit": 20,
        "next_cursor": None,
        "next": None,
        "total": 0,
    }


async def test_released_and_expired_holds_disappear(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    lasting, brief = await create_event(engine), await create_event(engine, hold_ttl_seconds=1)
    buyer = await make_user()
    kept = await _hold(client, lasting, lasting.seat_ids[:1], buyer)
    released = await _hold(client, lasting, lasting.seat_ids[1:2], buyer)
    expiring = await _hold(client, brief, brief.seat_ids[:1], buyer)
    assert (await _my_holds(client, buyer))["total"] == 3

    assert (await client.delete(f"/api/holds/{released['id']}", headers=buyer)).status_code == 204
    listed = await _my_holds(client, buyer)
    assert [h["id"] for h in listed["items"]] == [expiring["id"], kept["id"]]

    await asyncio.sleep(1.1)
    listed = await _my_holds(client, buyer)
    assert [h["id"] for h in listed["items"]] == [kept["id"]]


async def test_a_hold_being_booked_shows_as_converting(
    client: Client, make_user: UserFactory, engine: AsyncEngine, store: HoldStore
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    hold = await _hold(client, event, event.seat_ids[:2], buyer)
    buyer_id = uuid.UUID((await client.get("/api/auth/me", headers=buyer)).json()["id"])

    # The first step of a booking request, left pending.
    await store.claim(hold["id"], buyer_id)

    listed = (await _my_holds(client, buyer))["items"]
    assert [(h["id"], h["state"]) for h in listed] == [(hold["id"], "converting")]


async def test_signing_in_is_required(client: Client) -> None:
    assert_problem(await client.get("/api/holds"), 401)


async def test_with_redis_down_the_list_is_a_503_to_retry(
    client_with: ClientWith, make_user: UserFactory, engine: AsyncEngine
) -> None:
    await create_event(engine)
    buyer = await make_user()
    async with client_with(redis_url=f"redis://127.0.0.1:{free_port()}/0") as down:
        response = await down.get("/api/holds", headers=buyer)

    assert_problem(response, 503, "unavailable")
    assert int(response.headers["retry-after"]) >= 1


async def test_my_holds_are_paged_by_cursor(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    made = [(await _hold(client, event, [seat], buyer))["id"] for seat in event.seat_ids[:3]]

    first = (await client.get("/api/holds?limit=2", headers=buyer)).json()
    second = (await client.get(first["next"], headers=buyer)).json()

    assert (first["total"], first["limit"], len(first["items"])) == (3, 2, 2)
    assert (second["total"], second["next_cursor"], second["next"]) == (3, None, None)
    assert sorted(h["id"] for h in first["items"] + second["items"]) == sorted(made)
