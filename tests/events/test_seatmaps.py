"""Seat maps: expansion and its checks, bulk creation, reads, and the grow-only rule."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from seatlock.errors import Conflict, InvalidInput
from seatlock.events import seatmaps
from seatlock.events.layouts import SeatKey, SeatMap, SeatSpec, plan_seats
from seatlock.models import Role
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.events.eventdata import (
    block,
    category,
    count_rows,
    create_event,
    event_body,
    seat_map,
    take_seats,
)
from tests.statements import statements


def _plan(description: dict[str, Any], max_seats: int = 100_000) -> dict[SeatKey, SeatSpec]:
    parsed = msgspec.convert(description, SeatMap)
    return plan_seats(parsed, {"Standard", "VIP"}, max_seats)


def test_ranges_expand_into_every_seat() -> None:
    plan = _plan(seat_map(A=[block(("1", "3"), (1, 2))], B=[block(("C", "E"), [7, 9], "VIP")]))
    assert set(plan) == {
        *(SeatKey("A", row, n) for row in ("1", "2", "3") for n in (1, 2)),
        *(SeatKey("B", row, n) for row in ("C", "D", "E") for n in (7, 9)),
    }
    assert plan[SeatKey("B", "D", 9)] == SeatSpec("VIP", False)


def test_a_zero_padded_range_keeps_its_width() -> None:
    plan = _plan(seat_map(A=[block(("08", "11"), (1, 1))]))
    assert [key.row for key in plan] == ["08", "09", "10", "11"]


def test_listed_rows_and_flags_are_kept() -> None:
    plan = _plan(
        seat_map(
            Box=[
                block(["Left", "Right"], [1, 2], accessible=True),
                block(["Left"], (3, 4), "VIP"),
            ]
        )
    )
    assert len(plan) == 6
    assert plan[SeatKey("Box", "Right", 2)] == SeatSpec("Standard", True)
    assert plan[SeatKey("Box", "Left", 4)] == SeatSpec("VIP", False)


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "overlapping blocks": (
        seat_map(A=[block(("1", "5"), (1, 10)), block(("5", "6"), (10, 12))]),
        "section 'A' row '5' seat 10 is described twice, by seat_map.sections[0].blocks[0] "
        "and by seat_map.sections[0].blocks[1]",
    ),
    "a seat listed twice": (seat_map(A=[block(["1"], [3, 4, 3])]), "seat 3 is described twice"),
    "a row listed twice": (seat_map(A=[block(["1", "2", "1"], [1])]), "row '1' seat 1"),
    "a section described twice": (
        {"sections": [{"name": "A", "blocks": [block(["1"], [n])]} for n in (1, 2)]},
        "section 'A' is described twice",
    ),
    "an unknown category": (
        seat_map(A=[block(["1"], [1], "Balcony")]),
        "'Balcony' is not one of the price categories",
    ),
    "an empty seat range": (seat_map(A=[block(["1"], (10, 1))]), "the range 10..1 is empty"),
    "an empty row range": (seat_map(A=[block(("9", "2"), [1])]), "the range 9..2 is empty"),
    "a range of a number to a letter": (seat_map(A=[block(("1", "K"), [1])]), "a row range goes"),
    "a range of words": (seat_map(A=[block(("AA", "AZ"), [1])]), "list the rows instead"),
    "a range of two cases": (seat_map(A=[block(("a", "K"), [1])]), "keeps one case"),
    "an absurd row range": (seat_map(A=[block(("1", "5000"), [1])]), "at most 1000 rows"),
    "an absurd seat range": (seat_map(A=[block(["1"], (1, 99_999))]), "at most 1000 seats per row"),
}


@pytest.mark.parametrize(("description", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_maps_that_make_no_sense_are_refused(description: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason.replace(".", r"\.").replace("[", r"\[")):
        _plan(description)


def test_the_cap_counts_seats_before_building_any() -> None:
    assert len(_plan(seat_map(A=[block(("1", "10"), (1, 10))]), max_seats=100)) == 100
    with pytest.raises(
        InvalidInput, match="describes at least 101 seats; an event has at most 100"
    ):
        _plan(seat_map(A=[block(("1", "10"), (1, 10))], B=[block(["1"], [1])]), max_seats=100)
    # 500 million seats are refused at the first block past the cap, the rest never built.
    huge = seat_map(**{f"S{i}": [block(("1", "1000"), (1, 1000))] for i in range(500)})
    with pytest.raises(InvalidInput, match="describes at least 1000000 seats"):
        _plan(huge)


MALFORMED_MAPS: dict[str, dict[str, Any]] = {
    "no sections": {"sections": []},
    "a section without blocks": {"sections": [{"name": "A", "blocks": []}]},
    "an unknown field": seat_map(A=[block(["1"], [1], colour="red")]),
    "no rows": seat_map(A=[block([], [1])]),
    "seat number zero": seat_map(A=[block(["1"], [0])]),
    "a negative seat number": seat_map(A=[block(["1"], (-5, 5))]),
    "a half range": seat_map(A=[{"rows": {"first": "1"}, "seats": [1], "category": "Standard"}]),
    "a blank row label": seat_map(A=[block([" "], [1])]),
    "a long section name": seat_map(**{"S" * 41: [block(["1"], [1])]}),
    "a label with a newline": seat_map(A=[block(["1\n2"], [1])]),
    "seats as a string": seat_map(A=[block(["1"], [1]) | {"seats": "1-10"}]),
}


@pytest.mark.parametrize("description", MALFORMED_MAPS.values(), ids=MALFORMED_MAPS.keys())
async def test_malformed_maps_are_refused_by_the_schema(
    client: Client, make_user: UserFactory, engine: AsyncEngine, description: dict[str, Any]
) -> None:
    owner = await make_user(Role.ORGANIZER)
    response = await client.post(
        "/api/events", json=event_body(seat_map=description), headers=owner
    )
    assert_problem(response, 400)
    assert await count_rows(engine, "events") == 0


async def test_a_refused_map_says_why_and_writes_nothing(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    overlapping = seat_map(A=[block(("1", "5"), (1, 10)), block(["3"], [4])])
    response = await client.post(
        "/api/events", json=event_body(seat_map=overlapping), headers=owner
    )
    assert_problem(response, 422)
    assert "row '3' seat 4 is described twice" in response.json()["detail"]
    assert response.json()["field"] == "seat_map.sections[0].blocks[1]"
    for table in ("events", "price_categories", "seats"):
        assert await count_rows(engine, table) == 0


async def test_the_seat_cap_is_a_setting(
    client_with: ClientWith, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    async with client_with(max_seats_per_event=50) as client:
        refused = await client.post(
            "/api/events",
            json=event_body(seat_map=seat_map(A=[block(("1", "51"), [1])])),
            headers=owner,
        )
        assert_problem(refused, 422)
        assert "at most 50" in refused.json()["detail"]
        exact = seat_map(A=[block(("1", "50"), [1])])
        created = await client.post("/api/events", json=event_body(seat_map=exact), headers=owner)
        assert created.status_code == 201
        grown = seat_map(A=[block(("1", "50"), [1])], B=[block(["1"], [1])])
        event_id = created.json()["id"]
        response = await client.patch(
            f"/api/events/{event_id}", json={"seat_map": grown}, headers=owner
        )
        assert_problem(response, 422)
    assert await count_rows(engine, "seats") == 50


TWENTY_THOUSAND = seat_map(
    **{
        f"Section {i}": [
            block(("A", "J"), (1, 50), "VIP"),
            block(("11", "20"), (1, 48)),
            block(("11", "20"), (49, 50), accessible=True),
        ]
        for i in range(20)
    }
)


async def test_a_twenty_thousand_seat_map_takes_one_request_and_few_statements(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    body = event_body(
        price_categories=[category(), category("VIP", 9900)], seat_map=TWENTY_THOUSAND
    )
    with statements(client.app.state.engine) as seen:
        response = await client.post("/api/events", json=body, headers=owner)
    assert response.status_code == 201, response.text[:500]
    event = response.json()
    assert len(event["seats"]) == event["seat_counts"]["total"] == 20_000
    assert len({s["id"] for s in event["seats"]}) == 20_000
    assert await count_rows(engine, "seats", event["id"]) == 20_000
    # Multi-row inserts, not one statement per seat.
    assert len(seen) < 60, len(seen)

    with statements(client.app.state.engine) as seen:
        read = await client.get(f"/api/events/{event['id']}/seats", headers=owner)
    seats = read.json()["seats"]
    assert len(seats) == 20_000
    assert sum(s["accessible"] for s in seats) == 20 * 10 * 2
    # The event's visibility and the seats themselves: two queries for 20,000 seats.
    assert len(seen) == 2, seen


async def test_without_taken_seats_the_map_may_change_freely(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    ids = {(s["row"], s["number"]): s["id"] for s in event["seats"]}
    new_map = seat_map(
        A=[block(["1"], (1, 5), "VIP"), block(["2"], (1, 3))], B=[block(["1"], [1, 2])]
    )
    response = await client.patch(
        f"/api/events/{event['id']}",
        json={"price_categories": [category(), category("VIP", 9000)], "seat_map": new_map},
        headers=owner,
    )
    assert response.status_code == 200, response.text
    assert response.json()["seat_counts"]["total"] == 10
    seats = (await client.get(f"/api/events/{event['id']}/seats", headers=owner)).json()["seats"]
    by_place = {(s["section"], s["row"], s["number"]): s for s in seats}
    vip = next(c["id"] for c in response.json()["price_categories"] if c["name"] == "VIP")
    # Seats that stay keep their ids, even when their category changes.
    assert by_place[("A", "1", 1)]["id"] == ids[("1", 1)]
    assert by_place[("A", "1", 1)]["price_category_id"] == vip
    assert ("A", "2", 5) not in by_place
    assert ("B", "1", 2) in by_place


async def test_categories_in_use_cannot_be_dropped(client: Client, make_user: UserFactory) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    url = f"/api/events/{event['id']}"
    refused = await client.patch(url, json={"price_categories": [category("VIP")]}, headers=owner)
    assert_problem(refused, 409)
    assert "'Standard' is still used" in refused.json()["detail"]
    moved = await client.patch(
        url,
        json={
            "price_categories": [category("VIP")],
            "seat_map": seat_map(A=[block(("1", "2"), (1, 5), "VIP")]),
        },
        headers=owner,
    )
    assert moved.status_code == 200, moved.text
    assert [c["name"] for c in moved.json()["price_categories"]] == ["VIP"]


@pytest.mark.parametrize("state", ["reserved", "sold"])
async def test_once_a_seat_is_taken_the_map_only_grows(
    client: Client, make_user: UserFactory, engine: AsyncEngine, state: str
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    url = f"/api/events/{event['id']}"
    await take_seats(engine, event["id"], state, 1)
    before = (await client.get(f"{url}/seats", headers=owner)).json()["seats"]

    shrunk = seat_map(A=[block(("1", "2"), (1, 4))])
    refused = await client.patch(url, json={"seat_map": shrunk}, headers=owner)
    assert_problem(refused, 409)
    assert "can only grow" in refused.json()["detail"]
    moved = seat_map(A=[block(("1", "2"), (2, 6))])
    assert_problem(await client.patch(url, json={"seat_map": moved}, headers=owner), 409)
    recategorised = seat_map(A=[block(("1", "2"), (1, 5), "VIP")])
    body = {"price_categories": [category(), category("VIP")], "seat_map": recategorised}
    assert_problem(await client.patch(url, json=body, headers=owner), 409)
    other_currency = {"price_categories": [category(currency="USD")]}
    assert_problem(await client.patch(url, json=other_currency, headers=owner), 409)
    assert (await client.get(f"{url}/seats", headers=owner)).json()["seats"] == before

    grown = seat_map(A=[block(("1", "2"), (1, 5)), block(["3"], (1, 5))])
    response = await client.patch(url, json={"seat_map": grown}, headers=owner)
    assert response.status_code == 200, response.text
    assert response.json()["seat_counts"][state] == 1
    after = (await client.get(f"{url}/seats", headers=owner)).json()["seats"]
    assert len(after) == 15
    assert all(seat in after for seat in before)
    repriced = await client.patch(
        url, json={"price_categories": [category(price=5000)]}, headers=owner
    )
    assert repriced.json()["price_categories"][0]["price_minor"] == 5000


async def test_a_seat_taken_during_a_change_stops_the_change(
    client: Client, make_user: UserFactory, engine: AsyncEngine
) -> None:
    """The grow-only check and the writes are separate statements: the writes themselves
    touch available seats only, so a seat sold in between is never removed."""
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    event_id = uuid.UUID(event["id"])
    await take_seats(engine, event["id"], "sold", 1)
    category_id = uuid.UUID(event["price_categories"][0]["id"])
    plan = _plan(seat_map(A=[block(["2"], (1, 5))]))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        with pytest.raises(Conflict, match="reserved while the seat map changed"):
            await seatmaps.replace_seats(
                session, event_id, plan, {"Standard": category_id}, grow_only=False
            )
        await session.rollback()
    assert await count_rows(engine, "seats", event["id"]) == 10


def test_absurd_or_exotic_row_ranges_are_refused_without_building_them() -> None:
    with pytest.raises(InvalidInput, match="at most 1000 rows per block"):
        _plan(seat_map(A=[block(("1", "99999999999999999999"), (1, 2))]))
    with pytest.raises(InvalidInput, match="list the rows instead"):
        _plan(seat_map(A=[block(("1", "²"), (1, 2))]))
