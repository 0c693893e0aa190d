"""An event's waiting-room settings, kept in PostgreSQL with the event: whether the room is
on, when buyers may join, how fast they are let in and for how long.

Every worker reads them with the event's other on-sale facts (`holds.on_sale`) and in the
admission loop, every few seconds, so a change reaches every worker within that time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.errors import InvalidInput
from seatlock.models import Event, EventQueue, EventStatus


@dataclass(frozen=True)
class QueueRules:
    """An event's room as the queue's steps need it (only rooms that are on)."""

    event_id: uuid.UUID
    opens_at: datetime
    sale_starts_at: datetime
    sale_ends_at: datetime
    admit_per_minute: int | None
    max_shopping: int | None
    pass_seconds: int
    paused: bool

    @property
    def sale_starts_ms(self) -> int:
        return int(self.sale_starts_at.timestamp() * 1000)


def rules_of(event: Event, room: EventQueue | None) -> QueueRules | None:
    if room is None or not room.enabled:
        return None
    return QueueRules(
        event_id=event.id,
        opens_at=room.opens_at,
        sale_starts_at=event.sale_starts_at,
        sale_ends_at=event.sale_ends_at,
        admit_per_minute=room.admit_per_minute,
        max_shopping=room.max_shopping,
        pass_seconds=room.pass_seconds,
        paused=room.paused,
    )


@dataclass(frozen=True)
class RoomSettings:
    enabled: bool
    opens_at: datetime
    admit_per_minute: int | None
    max_shopping: int | None
    pass_seconds: int
    paused: bool


def check_settings(event: Event, wanted: RoomSettings) -> None:
    if wanted.admit_per_minute is None and wanted.max_shopping is None:
        raise InvalidInput(
            "give admit_per_minute, max_shopping or both: the room must know how to let buyers in",
            field="admit_per_minute",
        )
    if wanted.opens_at > event.sale_starts_at:
        raise InvalidInput(
            "opens_at: the room must open no later than the sale starts", field="opens_at"
        )


async def room_of(session: AsyncSession, event_id: uuid.UUID) -> EventQueue | None:
    return await session.get(EventQueue, event_id)


async def save_room(session: AsyncSession, event: Event, wanted: RoomSettings) -> EventQueue:
    """Writes the event's room settings (the caller's transaction commits)."""
    check_settings(event, wanted)
    room = await session.get(EventQueue, event.id, with_for_update=True)
    if room is None:
        room = EventQueue(event_id=event.id)
        session.add(room)
    room.enabled = wanted.enabled
    room.opens_at = wanted.opens_at
    room.admit_per_minute = wanted.admit_per_minute
    room.max_shopping = wanted.max_shopping
    room.pass_seconds = wanted.pass_seconds
    room.paused = wanted.paused
    return room


async def rooms_open(sessions: async_sessionmaker[AsyncSession]) -> list[QueueRules]:
    """The rooms that are on, of events on sale whose sale has not ended."""
    async with sessions() as session:
        rows = await session.execute(
            select(Event, EventQueue)
            .join(EventQueue, EventQueue.event_id == Event.id)
            .where(
                EventQueue.enabled,
                Event.status == EventStatus.ON_SALE,
                Event.sale_ends_at > datetime.now().astimezone(),
            )
        )
        return [rules for event, room in rows.tuples() if (rules := rules_of(event, room))]
