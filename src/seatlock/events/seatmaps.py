"""The seats of an event as stored: bulk inserts, the seat map read, counts, and
replacing a map while keeping the seats that stay.

Writes go through one multi-row statement per kind of change, never one per seat.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import NamedTuple

import msgspec
from sqlalchemy import (
    ColumnElement,
    Delete,
    Update,
    Uuid,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import Conflict
from seatlock.events.layouts import Plan, SeatKey, SeatSpec
from seatlock.models import Seat, SeatState


class SeatRow(msgspec.Struct):
    """One seat as buyers see it."""

    id: uuid.UUID
    section: str
    row: str
    number: int
    price_category_id: uuid.UUID
    accessible: bool
    state: SeatState


def _any_of(ids: list[uuid.UUID]) -> ColumnElement[bool]:
    # One array parameter rather than one parameter per seat: PostgreSQL takes at most
    # 32767 parameters in a statement, and seat maps are larger than that.
    return Seat.id == any_(bindparam("ids", ids, type_=ARRAY(Uuid())))


async def insert_seats(
    session: AsyncSession,
    event_id: uuid.UUID,
    plan: Mapping[SeatKey, SeatSpec],
    category_ids: Mapping[str, uuid.UUID],
) -> list[SeatRow]:
    seats = [
        SeatRow(
            id=uuid.uuid4(),
            section=key.section,
            row=key.row,
            number=key.number,
            price_category_id=category_ids[spec.category],
            accessible=spec.accessible,
            state=SeatState.AVAILABLE,
        )
        for key, spec in plan.items()
    ]
    if seats:
        # Many parameter sets in one call: SQLAlchemy sends them as multi-row VALUES.
        await session.execute(
            insert(Seat), [{"event_id": event_id, **msgspec.structs.asdict(s)} for s in seats]
        )
    return seats


async def seat_rows(session: AsyncSession, event_id: uuid.UUID) -> list[SeatRow]:
    """Every seat of an event with its PostgreSQL state, from one query on the
    (event_id, section, row, number) index."""
    result = await session.execute(
        select(
            Seat.id,
            Seat.section,
            Seat.row,
            Seat.number,
            Seat.price_category_id,
            Seat.accessible,
            Seat.state,
        )
        .where(Seat.event_id == event_id)
        .order_by(Seat.section, Seat.row, Seat.number)
    )
    return [SeatRow(*row) for row in result.tuples()]


async def seat_counts(session: AsyncSession, event_id: uuid.UUID) -> dict[SeatState, int]:
    result = await session.execute(
        select(Seat.state, func.count()).where(Seat.event_id == event_id).group_by(Seat.state)
    )
    counts = dict.fromkeys(SeatState, 0)
    counts.update({state: count for state, count in result.tuples()})
    return counts


async def any_seat_taken(session: AsyncSession, event_id: uuid.UUID) -> bool:
    taken = select(Seat.id).where(Seat.event_id == event_id, Seat.state != SeatState.AVAILABLE)
    return bool(await session.scalar(select(taken.exists())))


class _Stored(NamedTuple):
    id: uuid.UUID
    category_id: uuid.UUID
    accessible: bool


async def _stored_seats(session: AsyncSession, event_id: uuid.UUID) -> dict[SeatKey, _Stored]:
    result = await session.execute(
        select(
            Seat.section, Seat.row, Seat.number, Seat.id, Seat.price_category_id, Seat.accessible
        ).where(Seat.event_id == event_id)
    )
    return {SeatKey(s, r, n): _Stored(i, c, a) for s, r, n, i, c, a in result.tuples()}


def _refuse_shrinking(touched: list[SeatKey]) -> None:
    first = touched[0]
    raise Conflict(
        f"seats of this event are already taken, so its seat map can only grow: "
        f"{len(touched)} existing seats would be removed or changed, for example section "
        f"{first.section!r} row {first.row!r} seat {first.number}"
    )


async def _only_available(
    session: AsyncSession, ids: list[uuid.UUID], statement: Delete | Update
) -> None:
    """Runs a delete or update of the seats `ids`, restricted to available seats, and
    refuses the whole change if one was reserved or sold in the meantime."""
    if not ids:
        return
    statement = statement.where(_any_of(ids), Seat.state == SeatState.AVAILABLE)
    done = await session.scalars(
        statement.returning(Seat.id).execution_options(synchronize_session=False)
    )
    if len(done.all()) != len(ids):
        raise Conflict("seats were reserved while the seat map changed; nothing was changed")


async def replace_seats(
    session: AsyncSession,
    event_id: uuid.UUID,
    plan: Plan,
    category_ids: Mapping[str, uuid.UUID],
    *,
    grow_only: bool,
) -> None:
    """Makes the event's seats what `plan` describes. Seats that stay keep their ids;
    with `grow_only`, every existing seat must stay exactly as it is."""
    stored = await _stored_seats(session, event_id)
    wanted = {key: (category_ids[spec.category], spec.accessible) for key, spec in plan.items()}
    removed = [key for key in stored if key not in wanted]
    changed: dict[tuple[uuid.UUID, bool], list[SeatKey]] = {}
    for key, seat in stored.items():
        if key in wanted and wanted[key] != (seat.category_id, seat.accessible):
            changed.setdefault(wanted[key], []).append(key)
    if grow_only and (removed or changed):
        _refuse_shrinking(removed + [key for keys in changed.values() for key in keys])
    await _only_available(session, [stored[key].id for key in removed], delete(Seat))
    for (category_id, accessible), keys in changed.items():
        await _only_available(
            session,
            [stored[key].id for key in keys],
            update(Seat).values(price_category_id=category_id, accessible=accessible),
        )
    added = {key: spec for key, spec in plan.items() if key not in stored}
    await insert_seats(session, event_id, added, category_ids)


# A map this large changes the seats table enough that the planner's statistics, until
# autovacuum gets to them, would make it scan the whole event for each seat lookup.
ANALYZE_FROM_SEATS = 1_000


async def refresh_statistics(session: AsyncSession, seats_written: int) -> None:
    """After a large seat map was committed: refresh the planner's statistics of seats."""
    if seats_written >= ANALYZE_FROM_SEATS:
        await session.execute(text("ANALYZE seats"))
        await session.commit()
