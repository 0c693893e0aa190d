"""Every field of an event is checked, and a refused request changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role
from tests.clients import Client, UserFactory, assert_problem
from tests.events.eventdata import (
    category,
    count_rows,
    create_event,
    event_body,
    moment,
)

HOUR = timedelta(hours=1)

# Bodies the schema refuses (400): wrong shapes, types and bounds.
MALFORMED: dict[str, dict[str, Any]] = {
    "unknown field": {"colour": "red"},
    "missing title": {"title": None},
    "empty title": {"title": ""},
    "blank title": {"title": "   "},
    "long title": {"title": "x" * 201},
    "title not a string": {"title": 5},
    "long description": {"description": "x" * 5001},
    "empty venue": {"venue": ""},
    "start without offset": {"starts_at": "2031-06-01T20:00:00"},
    "start not a time": {"starts_at": "next friday"},
    "short hold": {"hold_ttl_seconds": 10},
    "long hold": {"hold_ttl_seconds": 3601},
    "negative extensions": {"max_hold_extensions": -1},
    "many extensions": {"max_hold_extensions": 11},
    "long hold lifetime": {"max_hold_lifetime_seconds": 14_401},
    "no seats per booking": {"max_seats_per_booking": 0},
    "absurd seats per booking": {"max_seats_per_booking": 101},
    "short payment window": {"payment_window_seconds": 59},
    "long payment window": {"payment_window_seconds": 86_401},
    "no price categories": {"price_categories": []},
    "negative price": {"price_categories": [category(price=-1)]},
    "absurd price": {"price_categories": [category(price=10**12 + 1)]},
    "fractional price": {"price_categories": [category() | {"price_minor": 45.5}]},
    "lower-case currency": {"price_categories": [category(currency="eur")]},
    "long currency": {"price_categories": [category(currency="EURO")]},
    "unknown category field": {"price_categories": [category() | {"tax": 19}]},
    "blank category name": {"price_categories": [category(name=" ")]},
    "many categories": {"price_categories": [category(name=f"C{i}") for i in range(51)]},
    "no seat map": {"seat_map": None},
}

# Bodies that are well formed but describe something impossible (422).
IMPOSSIBLE: dict[str, dict[str, Any]] = {
    "ends before it starts": {"ends_at": moment(-HOUR)},
    "ends as it starts": {"ends_at": moment()},
    "sale ends before it starts": {
        "sale_starts_at": moment(-HOUR),
        "sale_ends_at": moment(-HOUR * 2),
    },
    "sale window after the event": {
        "sale_starts_at": moment(HOUR * 4),
        "sale_ends_at": moment(HOUR * 5),
    },
    "sale ends after the event": {"sale_ends_at": moment(HOUR * 4)},
    "event already over": {
        "starts_at": moment(timedelta(days=-400)),
        "ends_at": moment(timedelta(days=-399)),
        "sale_starts_at": moment(timedelta(days=-500)),
        "sale_ends_at": moment(timedelta(days=-401)),
    },
    "hold lifetime under one hold": {"hold_ttl_seconds": 600, "max_hold_lifetime_seconds": 300},
    "not a currency": {"price_categories": [category(currency="XYZ")]},
    "a metal, not a currency": {"price_categories": [category(currency="XAU")]},
    "two currencies": {
        "price_categories": [category(), category(name="VIP", currency="USD")],
    },
    "category named twice": {"price_categories": [category(), category(price=100)]},
}


def _without_nones(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize("changes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_events_are_refused(
    client: Client, make_user: UserFactory, engine: AsyncEngine, changes: dict[str, Any]
) -> None:
    owner = await make_user(Role.ORGANIZER)
    body = _without_nones(event_body(**changes))
    response = await client.post("/api/events", json=body, headers=owner)
    assert_problem(response, 400)
    assert response.json()["errors"], response.text
    assert await count_rows(engine, "events") == 0


@pytest.mark.parametrize("changes", IMPOSSIBLE.values(), ids=IMPOSSIBLE.keys())
async def test_impossible_events_are_refused(
    client: Client, make_user: UserFactory, engine: AsyncEngine, changes: dict[str, Any]
) -> None:
    owner = await make_user(Role.ORGANIZER)
    response = await client.post("/api/events", json=event_body(**changes), headers=owner)
    assert_problem(response, 422)
    assert response.json()["detail"]
    assert await count_rows(engine, "events") == 0
    assert await count_rows(engine, "seats") == 0


async def test_json_that_does_not_parse_is_refused(client: Client, make_user: UserFactory) -> None:
    owner = await make_user(Role.ORGANIZER)
    response = await client.post(
        "/api/events",
        content=b'{"title": "Unclosed',
        headers=owner | {"content-type": "application/json"},
    )
    assert_problem(response, 400)


async def test_a_free_event_and_all_the_bounds_are_accepted(
    client: Client, make_user: UserFactory
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(
        client,
        owner,
        title="x" * 200,
        description="",
        price_categories=[category(price=0, currency="JPY")],
        hold_ttl_seconds=30,
        max_hold_lifetime_seconds=30,
        max_hold_extensions=0,
        max_seats_per_booking=1,
        payment_window_seconds=60,
    )
    assert event["price_categories"][0]["price_minor"] == 0


# Changes refused, and what each one's answer is.
BAD_CHANGES: dict[str, tuple[dict[str, Any], int]] = {
    "unknown field": ({"colour": "red"}, 400),
    "null title": ({"title": None}, 400),
    "not a status": ({"status": "sold_out"}, 400),
    "ends before it starts": ({"ends_at": moment(-HOUR)}, 422),
    "starts after it ends": ({"starts_at": moment(HOUR * 4)}, 422),
    "sale after the event": ({"sale_ends_at": moment(HOUR * 5)}, 422),
    "hold outlives its cap": ({"hold_ttl_seconds": 3600}, 422),
    "bad currency": ({"price_categories": [category(currency="EUX")]}, 422),
}


@pytest.mark.parametrize(("changes", "status"), BAD_CHANGES.values(), ids=BAD_CHANGES.keys())
async def test_bad_changes_are_refused_and_change_nothing(
    client: Client, make_user: UserFactory, changes: dict[str, Any], status: int
) -> None:
    owner = await make_user(Role.ORGANIZER)
    event = await create_event(client, owner)
    url = f"/api/events/{event['id']}"
    before = (await client.get(url, headers=owner)).json()
    response = await client.patch(url, json=changes | {"venue": "Elsewhere"}, headers=owner)
    assert_problem(response, status)
    assert (await client.get(url, headers=owner)).json() == before
