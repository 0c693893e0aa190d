"""Browsing events: filters, visibility and keyset pagination by start time.

Pages follow (starts_at, id) through an index, so a page costs the same however deep
it is; the cursor is that pair, opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, NamedTuple

import msgspec
from sqlalchemy import ColumnElement, Select, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.errors import InvalidInput
from seatlock.models import Event, EventStatus, Role

CursorPosition = tuple[Annotated[datetime, msgspec.Meta(tz=True)], uuid.UUID]


class EventQuery(NamedTuple):
    statuses: list[EventStatus] | None = None
    starts_from: datetime | None = None
    starts_until: datetime | None = None
    text: str | None = None


class Page(NamedTuple):
    events: list[Event]
    next_cursor: str | None


def _visible_to(viewer: Principal | None) -> ColumnElement[bool]:
    if viewer is not None and viewer.role is Role.ADMIN:
        return true()
    published = Event.status != EventStatus.DRAFT
    if viewer is None:
        return published
    return or_(published, Event.organizer_id == viewer.id)


def encode_cursor(event: Event) -> str:
    raw = msgspec.json.encode((event.starts_at, event.id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position: tuple[datetime, uuid.UUID] = msgspec.json.decode(raw, type=CursorPosition)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidInput("cursor: not a cursor this service gave out", field="cursor") from exc
    return position


def _aware(moment: datetime | None, field: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInput(f"{field}: give a time zone offset, e.g. Z or +02:00", field=field)
    return moment


def _filtered(statement: Select[tuple[Event]], query: EventQuery) -> Select[tuple[Event]]:
    if query.statuses:
        statement = statement.where(Event.status.in_(query.statuses))
    if (starts_from := _aware(query.starts_from, "starts_from")) is not None:
        statement = statement.where(Event.starts_at >= starts_from)
    if (starts_until := _aware(query.starts_until, "starts_until")) is not None:
        statement = statement.where(Event.starts_at < starts_until)
    if query.text:
        escaped = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Event.title.ilike(f"%{escaped}%", escape="\\"))
    return statement


async def list_events(
    session: AsyncSession,
    viewer: Principal | None,
    query: EventQuery,
    limit: int,
    cursor: str | None = None,
) -> Page:
    """Events the viewer may see, by start time, `limit` at a time."""
    statement = _filtered(select(Event).where(_visible_to(viewer)), query)
    if cursor is not None:
        statement = statement.where(tuple_(Event.starts_at, Event.id) > decode_cursor(cursor))
    rows = list(
        await session.scalars(statement.order_by(Event.starts_at, Event.id).limit(limit + 1))
    )
    more = len(rows) > limit
    return Page(rows[:limit], encode_cursor(rows[limit - 1]) if more else None)
