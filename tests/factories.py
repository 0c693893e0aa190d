"""Rows written straight into PostgreSQL, for tests that need an event on sale."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from seatlock.models import Event, EventStatus, PriceCategory, Role, Seat, User


@dataclass
class EventFixture:
    id: uuid.UUID
    organizer_id: uuid.UUID
    category_ids: dict[str, uuid.UUID]
    seats: dict[tuple[str, str, int], uuid.UUID] = field(default_factory=dict)

    def seat(self, section: str, row: str, number: int) -> uuid.UUID:
        return self.seats[(section, row, number)]

    @property
    def seat_ids(self) -> list[uuid.UUID]:
        return list(self.seats.values())

    def seats_by_id(self) -> dict[str, tuple[str, str, int]]:
        return {str(seat_id): place for place, seat_id in self.seats.items()}


async def create_event(
    engine: AsyncEngine,
    *,
    sections: tuple[str, ...] = ("A",),
    rows: int = 2,
    seats_per_row: int = 10,
    price_minor: int = 2500,
    **overrides: Any,
) -> EventFixture:
    """An event on sale now, with one price category and a rectangular seat map."""
    now = datetime.now(UTC)
    organizer_id, event_id, category_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    event_values: dict[str, Any] = {
        "id": event_id,
        "organizer_id": organizer_id,
        "title": "Test concert",
        "description": "",
        "venue": "Test hall",
        "starts_at": now + timedelta(days=30),
        "ends_at": now + timedelta(days=30, hours=3),
        "sale_starts_at": now - timedelta(hours=1),
        "sale_ends_at": now + timedelta(days=29),
        "status": EventStatus.ON_SALE,
        **overrides,
    }
    fixture = EventFixture(event_id, organizer_id, {"Standard": category_id})
    seat_rows = []
    for section in sections:
        for row in range(1, rows + 1):
            for number in range(1, seats_per_row + 1):
                seat_id = uuid.uuid4()
                fixture.seats[(section, str(row), number)] = seat_id
                seat_rows.append(
                    {
                        "id": seat_id,
                        "event_id": event_id,
                        "section": section,
                        "row": str(row),
                        "number": number,
                        "price_category_id": category_id,
                    }
                )
    async with engine.begin() as conn:
        await conn.execute(
            insert(User).values(
                id=organizer_id,
                email=f"organizer-{organizer_id}@example.test",
                password_hash="not-a-usable-hash",
                full_name="Organizer",
                role=Role.ORGANIZER,
            )
        )
        await conn.execute(insert(Event).values(**event_values))
        await conn.execute(
            insert(PriceCategory).values(
                id=category_id,
                event_id=event_id,
                name="Standard",
                price_minor=price_minor,
                currency="USD",
            )
        )
        await conn.execute(insert(Seat), seat_rows)
    return fixture


async def scalar(engine: AsyncEngine, query: str, **params: Any) -> Any:
    """One value read straight from PostgreSQL."""
    async with engine.connect() as conn:
        return await conn.scalar(text(query), params)


async def add_users(engine: AsyncEngine, *user_ids: uuid.UUID) -> None:
    """Buyer accounts for tests that call the domain directly, without signing in."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(User),
            [
                {
                    "id": user_id,
                    "email": f"buyer-{user_id}@example.test",
                    "password_hash": "not-a-usable-hash",
                    "full_name": "Buyer",
                    "role": Role.USER,
                }
                for user_id in user_ids
            ],
        )


async def reserve_in_postgres(
    conn: AsyncConnection, event_id: uuid.UUID, user_id: uuid.UUID, seat: uuid.UUID
) -> None:
    """A live booking of `seat` for `user_id`, written in `conn`'s transaction straight into
    PostgreSQL, which Redis does not hear of (another booking, or one whose Redis was lost)."""
    booking_id = uuid.uuid4()
    await conn.execute(
        text(
            "INSERT INTO bookings (id, event_id, user_id, hold_id, seat_ids, status, "
            "total_minor, currency, payment_deadline) VALUES (:id, :event, :user, :hold, "
            "ARRAY[CAST(:seat AS uuid)], 'pending_payment', 2500, 'USD', "
            "now() + interval '15 minutes')"
        ),
        {
            "id": booking_id,
            "event": event_id,
            "user": user_id,
            "hold": f"pg.{booking_id}",
            "seat": seat,
        },
    )
    await conn.execute(
        text("UPDATE seats SET state = 'reserved', booking_id = :id WHERE id = :seat"),
        {"id": booking_id, "seat": seat},
    )
