"""The hold endpoints through the HTTP stack, on real PostgreSQL and Valkey."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.holds.store import new_hold_id
from seatlock.models import EventStatus, Role
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.events.eventdata import block, seat_map
from tests.factories import create_event


async def test_a_buyer_holds_chosen_seats(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    wanted = [event.seat("A", "1", 1), event.seat("A", "1", 2)]

    response = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(s) for s in wanted]}, headers=buyer
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["event_id"] == str(event.id)
    assert body["seats"] == [str(s) for s in wanted]
    assert body["extensions_left"] == 2
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)


async def test_a_taken_seat_gets_409_naming_it(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    first, second = await make_user(), await make_user()
    s1, s2, s3 = (event.seat("A", "1", n) for n in (1, 2, 3))
    await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(s1), str(s2)]}, headers=first
    )

    response = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(s2), str(s3)]}, headers=second
    )

    problem = assert_problem(response, 409)
    assert problem["conflicts"] == [str(s2)]
    assert problem["reason"] == "held"
    # All or nothing: seat 3 was not held by the refused request.
    third = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(s3)]}, headers=second
    )
    assert third.status_code == 201


async def test_a_seat_sold_in_postgresql_cannot_be_held(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    seat = event.seat("A", "2", 5)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE seats SET state = 'sold' WHERE id = :id"), {"id": seat})

    response = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(seat)]}, headers=await make_user()
    )

    assert response.status_code == 409
    assert response.json()["reason"] == "sold"


async def test_bad_hold_requests_get_4xx_and_hold_nothing(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event, other = await create_event(engine), await create_event(engine)
    buyer = await make_user()
    mine = str(event.seat("A", "1", 1))
    foreign = str(other.seat("A", "1", 1))
    eleven = [str(s) for s in event.seat_ids[:11]]
    cases = [
        ({"seat_ids": [mine, foreign]}, 422),
        ({"seat_ids": [mine, mine]}, 422),
        ({"seat_ids": eleven}, 422),
        ({"seat_ids": [mine], "quantity": 1}, 422),
        ({}, 422),
        ({"seat_ids": [mine], "section": "A"}, 422),
        ({"seat_ids": [mine], "owner": "someone"}, 400),
        ({"seat_ids": ["not-a-uuid"]}, 400),
        ({"seat_ids": []}, 400),
        ({"quantity": 0}, 400),
    ]
    for body, status in cases:
        response = await client.post(f"/api/events/{event.id}/holds", json=body, headers=buyer)
        assert_problem(response, status)

    listing = await client.get(
        f"/api/admin/events/{event.id}/holds", headers=await make_user(Role.ADMIN)
    )
    assert listing.json()["total"] == 0


async def test_foreign_seats_are_named(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event, other = await create_event(engine), await create_event(engine)
    foreign = str(other.seat("A", "1", 1))

    response = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [foreign]}, headers=await make_user()
    )

    assert response.status_code == 422
    assert response.json()["unknown_seats"] == [foreign]


async def test_holds_need_an_event_on_sale(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    buyer = await make_user()
    now = datetime.now(UTC)
    cases = [
        (await create_event(engine, status=EventStatus.DRAFT), 404),
        (await create_event(engine, status=EventStatus.CLOSED), 409),
        (await create_event(engine, status=EventStatus.CANCELLED), 409),
        (await create_event(engine, sale_starts_at=now + timedelta(hours=1)), 409),
        (await create_event(engine, sale_ends_at=now - timedelta(minutes=1)), 409),
    ]
    for event, status in cases:
        seat = str(event.seat_ids[0])
        response = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": [seat]}, headers=buyer
        )
        assert response.status_code == status, response.text


async def test_anonymous_callers_cannot_hold(client: Client, engine: AsyncEngine) -> None:
    event = await create_event(engine)

    response = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(event.seat_ids[0])]}
    )

    assert response.status_code == 401


async def test_the_owner_reads_extends_and_releases_a_hold(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    owner, other = await make_user(), await make_user()
    created = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(event.seat_ids[0])]}, headers=owner
    )
    hold_id = created.json()["id"]

    assert (await client.get(f"/api/holds/{hold_id}", headers=owner)).json() == created.json()
    assert (await client.get(f"/api/holds/{hold_id}", headers=other)).status_code == 404
    assert (await client.post(f"/api/holds/{hold_id}/extend", headers=other)).status_code == 404
    assert (await client.delete(f"/api/holds/{hold_id}", headers=other)).status_code == 404

    extended = await client.post(f"/api/holds/{hold_id}/extend", headers=owner)
    assert extended.status_code == 200
    assert extended.json()["extensions_left"] == 1

    assert (await client.delete(f"/api/holds/{hold_id}", headers=owner)).status_code == 204
    assert (await client.get(f"/api/holds/{hold_id}", headers=owner)).status_code == 404
    assert (await client.delete(f"/api/holds/{hold_id}", headers=owner)).status_code == 410


async def test_extensions_stop_at_the_event_limit(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, max_hold_extensions=1)
    owner = await make_user()
    created = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(event.seat_ids[0])]}, headers=owner
    )
    hold_id = created.json()["id"]

    assert (await client.post(f"/api/holds/{hold_id}/extend", headers=owner)).status_code == 200
    refused = await client.post(f"/api/holds/{hold_id}/extend", headers=owner)

    assert_problem(refused, 409)


async def test_malformed_hold_ids_get_400_and_unknown_ones_404(
    client: Client, make_user: UserFactory
) -> None:
    owner = await make_user()
    for malformed in ("x", "0" * 32 + ".abc", new_hold_id(uuid.uuid4()).upper()):
        body = assert_problem(
            await client.get(f"/api/holds/{malformed}", headers=owner), 400, "validation"
        )
        assert [(e["source"], e["field"]) for e in body["errors"]] == [("path", "hold_id")]
    unknown = new_hold_id(uuid.uuid4())
    assert_problem(await client.get(f"/api/holds/{unknown}", headers=owner), 404)


async def test_best_available_holds_adjacent_seats(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, rows=1, seats_per_row=6)
    buyer = await make_user()
    taken = [event.seat("A", "1", 3)]
    await client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": [str(s) for s in taken]},
        headers=await make_user(),
    )

    response = await client.post(
        f"/api/events/{event.id}/holds", json={"quantity": 3}, headers=buyer
    )

    assert response.status_code == 201, response.text
    # Seats 1-2 are too few; 4-6 fit exactly without stranding a seat.
    assert response.json()["seats"] == [str(event.seat("A", "1", n)) for n in (4, 5, 6)]


async def test_best_available_filters_by_section_and_category(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, sections=("A", "B"), rows=1, seats_per_row=4)
    buyer = await make_user()

    in_b = await client.post(
        f"/api/events/{event.id}/holds", json={"quantity": 2, "section": "B"}, headers=buyer
    )
    unknown_category = await client.post(
        f"/api/events/{event.id}/holds",
        json={"quantity": 2, "price_category": "VIP"},
        headers=buyer,
    )

    unknown_section = await client.post(
        f"/api/events/{event.id}/holds", json={"quantity": 2, "section": "Z"}, headers=buyer
    )

    assert in_b.status_code == 201
    assert {event.seats_by_id()[s][0] for s in in_b.json()["seats"]} == {"B"}
    # An unknown category or section is bad input, named as such, not a sold-out event.
    category_problem = assert_problem(unknown_category, 422)
    assert category_problem["field"] == "category"
    assert "'VIP'" in category_problem["detail"]
    section_problem = assert_problem(unknown_section, 422)
    assert section_problem["field"] == "section"
    assert "'Z'" in section_problem["detail"]


async def test_ops_list_live_holds_and_release_stuck_ones(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer, admin = await make_user(), await make_user(Role.ADMIN)
    created = await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(event.seat_ids[0])]}, headers=buyer
    )
    hold_id = created.json()["id"]

    assert (
        await client.get(f"/api/admin/events/{event.id}/holds", headers=buyer)
    ).status_code == 403
    listing = await client.get(f"/api/admin/events/{event.id}/holds", headers=admin)
    assert listing.status_code == 200
    [live] = listing.json()["items"]
    me = await client.get("/api/auth/me", headers=buyer)
    assert (live["id"], live["owner_id"], live["seats"]) == (
        hold_id,
        me.json()["id"],
        [str(event.seat_ids[0])],
    )
    assert 590 < live["seconds_left"] <= 600

    assert (await client.delete(f"/api/admin/holds/{hold_id}", headers=buyer)).status_code == 403
    assert (await client.delete(f"/api/admin/holds/{hold_id}", headers=admin)).status_code == 204
    assert (await client.get(f"/api/holds/{hold_id}", headers=buyer)).status_code == 404


async def test_the_seat_map_shows_live_holds_and_marks_the_callers(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, rows=1, seats_per_row=4)
    holder, other = await make_user(), await make_user()
    held = [event.seat("A", "1", 1), event.seat("A", "1", 2)]
    await client.post(
        f"/api/events/{event.id}/holds", json={"seat_ids": [str(s) for s in held]}, headers=holder
    )
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE seats SET state = 'sold' WHERE id = :id"), {"id": event.seat("A", "1", 4)}
        )

    views = {
        name: (await client.get(f"/api/events/{event.id}/seats", headers=headers)).json()
        for name, headers in (("holder", holder), ("other", other), ("anonymous", {}))
    }

    for name, view in views.items():
        assert view["holds_shown"] is True
        states = {s["number"]: s["state"] for s in view["seats"]}
        assert states == {1: "held", 2: "held", 3: "available", 4: "sold"}
        mine = {s["number"] for s in view["seats"] if s["mine"]}
        assert mine == ({1, 2} if name == "holder" else set())


async def test_the_seat_map_stays_readable_without_redis(
    client_with: ClientWith, engine: AsyncEngine, make_user: UserFactory
) -> None:
    event = await create_event(engine, rows=1, seats_per_row=3)
    async with client_with(redis_url="redis://127.0.0.1:9/0") as no_redis:
        response = await no_redis.get(f"/api/events/{event.id}/seats")

    assert response.status_code == 200
    assert response.json()["holds_shown"] is False
    assert [s["state"] for s in response.json()["seats"]] == ["available"] * 3


async def test_a_live_hold_freezes_the_seat_map(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine, rows=1, seats_per_row=2)
    admin = await make_user(Role.ADMIN)
    await client.post(
        f"/api/events/{event.id}/holds",
        json={"seat_ids": [str(event.seat_ids[0])]},
        headers=await make_user(),
    )
    # The map without seat 2: allowed while nothing is held, refused now.
    smaller = {"seat_map": seat_map(A=[block(["1"], [1])])}

    response = await client.patch(f"/api/events/{event.id}", json=smaller, headers=admin)

    assert response.status_code == 409
    async with engine.connect() as conn:
        assert (
            await conn.scalar(
                text("SELECT count(*) FROM seats WHERE event_id = :e"), {"e": event.id}
            )
            == 2
        )


async def test_ops_page_through_an_events_live_holds_soonest_first(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    admin, buyer = await make_user(Role.ADMIN), await make_user()
    for seat in event.seat_ids[:5]:
        response = await client.post(
            f"/api/events/{event.id}/holds", json={"seat_ids": [str(seat)]}, headers=buyer
        )
        assert response.status_code == 201, response.text

    pages: list[dict[str, Any]] = []
    link: str | None = f"/api/admin/events/{event.id}/holds?limit=2"
    while link is not None:
        pages.append((await client.get(link, headers=admin)).json())
        link = pages[-1]["next"]

    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert {page["total"] for page in pages} == {5}
    listed = [hold for page in pages for hold in page["items"]]
    assert [hold["seats"][0] for hold in listed] == [str(s) for s in event.seat_ids[:5]]
