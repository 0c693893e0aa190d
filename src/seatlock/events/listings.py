"""Browsing events: filters, visibility and keyset pagination by start time.

Pages follow (starts_at, id) through an index, so a page costs the same however deep
it is; the page's cursor is that pair.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import Principal
from seatlock.errors import InvalidInput
from seatlock.models import Event, EventStatus, Role


class EventQuery(NamedTuple):
    statuses: list[EventStatus] | None = None
    starts_from: datetime | None = None
    starts_until: datetime | None = None
    text: str | None = None


def _visible_to(viewer: Principal | None) -> ColumnElement[bool]:
    if viewer is not None and viewer.role is Role.ADMIN:
        return true()
    published = Event.status != EventStatus.DRAFT
    if viewer is None:
        return published
    return or_(published, Event.organizer_id == viewer.id)


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
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Event]:
    """Events the viewer may see by start time, after the event (starts_at, id) `after`:
    `limit` of them and one more when more follow."""
    statement = _filtered(select(Event).where(_visible_to(viewer)), query)
    if after is not None:
        statement = statement.where(tuple_(Event.starts_at, Event.id) > after)
    rows = await session.scalars(statement.order_by(Event.starts_at, Event.id).limit(limit + 1))
    return list(rows)
