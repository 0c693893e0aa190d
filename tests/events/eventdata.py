"""Request bodies and shortcuts for the tests of events, seat maps and images."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role
from tests.clients import Client, UserFactory

# Far enough ahead that no test runs into them, near enough to stay in range.
START = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)

People = dict[str, dict[str, str]]
ACTORS = ("anonymous", "user", "owner", "other_organizer", "admin")


def moment(delta: timedelta = timedelta(0)) -> str:
    return (START + delta).isoformat()


def block(
    rows: list[str] | tuple[str, str],
    seats: list[int] | tuple[int, int],
    category: str = "Standard",
    **extra: Any,
) -> dict[str, Any]:
    """A block of a seat map; a tuple is a range, a list is listed as it is."""
    as_range = isinstance(rows, tuple)
    return {
        "rows": {"first": rows[0], "last": rows[1]} if as_range else rows,
        "seats": {"first": seats[0], "last": seats[1]} if isinstance(seats, tuple) else seats,
        "category": category,
        **extra,
    }


def seat_map(**sections: list[dict[str, Any]]) -> dict[str, Any]:
    return {"sections": [{"name": name, "blocks": blocks} for name, blocks in sections.items()]}


def category(name: str = "Standard", price: int = 4500, currency: str = "EUR") -> dict[str, Any]:
    return {"name": name, "price_minor": price, "currency": currency}


def event_body(**changes: Any) -> dict[str, Any]:
    """A valid draft: section A, rows 1..2, seats 1..5, all Standard."""
    body: dict[str, Any] = {
        "title": "Summer Concert",
        "description": "An evening of music",
        "venue": "Grand Hall",
        "starts_at": moment(),
        "ends_at": moment(timedelta(hours=3)),
        "sale_starts_at": moment(timedelta(days=-30)),
        "sale_ends_at": moment(timedelta(hours=-1)),
        "price_categories": [category()],
        "seat_map": seat_map(A=[block(("1", "2"), (1, 5))]),
    }
    body.update(changes)
    return body


async def create_event(client: Client, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = await client.post("/api/events", json=event_body(**changes), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def publish(client: Client, headers: dict[str, str], event_id: str) -> None:
    response = await client.patch(
        f"/api/events/{event_id}", json={"status": "on_sale"}, headers=headers
    )
    assert response.status_code == 200, response.text


async def people(make_user: UserFactory) -> People:
    """Headers for each kind of caller; the owner is the organizer who creates events."""
    return {
        "anonymous": {},
        "user": await make_user(Role.USER),
        "owner": await make_user(Role.ORGANIZER),
        "other_organizer": await make_user(Role.ORGANIZER),
        "admin": await make_user(Role.ADMIN),
    }


async def take_seats(engine: AsyncEngine, event_id: str, state: str, count: int = 1) -> None:
    """Stands in for bookings, which do not exist yet: marks the first `count` available
    seats (by section, row, number) reserved or sold."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE seats SET state = CAST(:state AS seat_state) "
                "WHERE id IN (SELECT id FROM seats WHERE event_id = :event AND state = 'available' "
                "ORDER BY section, row, number LIMIT :count)"
            ),
            {"state": state, "event": event_id, "count": count},
        )


async def count_rows(engine: AsyncEngine, table: str, event_id: str | None = None) -> int:
    query = f"SELECT count(*) FROM {table}"  # table names come from the tests themselves
    if event_id is not None:
        query += " WHERE " + ("id" if table == "events" else "event_id") + " = :event"
    async with engine.connect() as conn:
        return int((await conn.scalar(text(query), {"event": event_id})) or 0)
