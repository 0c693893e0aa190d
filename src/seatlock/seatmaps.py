"""Seat maps: the compact description organizers send, expanded into seats and stored.

A map is a list of sections; each section is a list of blocks; a block is some rows
(a list of labels or a range such as "1".."20" or "A".."K") times some seat numbers
(a list or a range such as 1..30), all in one price category. Writes go through one
multi-row statement per kind of change, never one statement per seat.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping
from typing import Annotated, Final, NamedTuple

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
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import Conflict, InvalidInput
from seatlock.models import Seat, SeatState
from seatlock.schemas import Body

MAX_SECTIONS: Final = 500
MAX_BLOCKS_PER_SECTION: Final = 1000
MAX_ROWS_PER_BLOCK: Final = 1000
MAX_SEATS_PER_ROW: Final = 1000

# Printable, without leading or trailing blanks: labels are shown on tickets and compared.
LABEL: Final = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
SectionName = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=LABEL)]
RowLabel = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=LABEL)]
CategoryName = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=LABEL)]
SeatNumber = Annotated[int, msgspec.Meta(ge=1, le=99_999)]
RowList = Annotated[list[RowLabel], msgspec.Meta(min_length=1, max_length=MAX_ROWS_PER_BLOCK)]
SeatList = Annotated[list[SeatNumber], msgspec.Meta(min_length=1, max_length=MAX_SEATS_PER_ROW)]


class RowRange(Body):
    """Rows `first`..`last`, both numbers ("1".."20") or both single letters ("A".."K")."""

    first: RowLabel
    last: RowLabel


class SeatRange(Body):
    """Seat numbers `first`..`last`, both included."""

    first: SeatNumber
    last: SeatNumber


class Block(Body, kw_only=True):
    """Every one of the rows times every one of the seat numbers."""

    rows: RowList | RowRange
    seats: SeatList | SeatRange
    category: CategoryName
    accessible: bool = False


class Section(Body):
    name: SectionName
    blocks: Annotated[list[Block], msgspec.Meta(min_length=1, max_length=MAX_BLOCKS_PER_SECTION)]


class SeatMap(Body):
    sections: Annotated[list[Section], msgspec.Meta(min_length=1, max_length=MAX_SECTIONS)]


class SeatRow(msgspec.Struct):
    """One seat as buyers see it."""

    id: uuid.UUID
    section: str
    row: str
    number: int
    price_category_id: uuid.UUID
    accessible: bool
    state: SeatState


class SeatKey(NamedTuple):
    section: str
    row: str
    number: int


class SeatSpec(NamedTuple):
    category: str
    accessible: bool


Plan = dict[SeatKey, SeatSpec]


def _row_labels(rows: list[str] | RowRange, where: str) -> list[str]:
    if isinstance(rows, list):
        return rows
    first, last = rows.first, rows.last
    if first.isdigit() and last.isdigit():
        # "01".."12" keeps the width of its first label; "1".."12" has none.
        width = len(first) if first.startswith("0") else 0
        labels = [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
    elif len(first) == len(last) == 1 and first.isalpha() and last.isalpha():
        if first.isupper() != last.isupper():
            raise InvalidInput(f"{where}.rows: a letter range keeps one case", field=where)
        labels = [chr(c) for c in range(ord(first), ord(last) + 1)]
    else:
        raise InvalidInput(
            f"{where}.rows: a row range goes from a number to a number or from a letter "
            f"to a letter; list the rows instead",
            field=where,
        )
    if not labels:
        raise InvalidInput(f"{where}.rows: the range {first}..{last} is empty", field=where)
    if len(labels) > MAX_ROWS_PER_BLOCK:
        raise InvalidInput(
            f"{where}.rows: at most {MAX_ROWS_PER_BLOCK} rows per block", field=where
        )
    return labels


def _seat_numbers(seats: list[int] | SeatRange, where: str) -> Collection[int]:
    if isinstance(seats, list):
        return seats
    numbers = range(seats.first, seats.last + 1)
    if not numbers:
        raise InvalidInput(
            f"{where}.seats: the range {seats.first}..{seats.last} is empty", field=where
        )
    if len(numbers) > MAX_SEATS_PER_ROW:
        raise InvalidInput(f"{where}.seats: at most {MAX_SEATS_PER_ROW} seats per row", field=where)
    return numbers


class _Expanded(NamedTuple):
    where: str
    section: str
    rows: list[str]
    numbers: Collection[int]
    block: Block


def _blocks(seat_map: SeatMap, categories: Collection[str]) -> Iterator[_Expanded]:
    seen_sections: set[str] = set()
    for i, section in enumerate(seat_map.sections):
        if section.name in seen_sections:
            raise InvalidInput(
                f"seat_map.sections[{i}]: section {section.name!r} is described twice; "
                f"put all its blocks in one section",
                field=f"seat_map.sections[{i}]",
            )
        seen_sections.add(section.name)
        for j, block in enumerate(section.blocks):
            where = f"seat_map.sections[{i}].blocks[{j}]"
            if block.category not in categories:
                raise InvalidInput(
                    f"{where}.category: {block.category!r} is not one of the price categories",
                    field=where,
                )
            rows = _row_labels(block.rows, where)
            yield _Expanded(where, section.name, rows, _seat_numbers(block.seats, where), block)


def plan_seats(seat_map: SeatMap, categories: Collection[str], max_seats: int) -> Plan:
    """Every seat the map describes, checked for unknown categories, bad ranges,
    seats described twice and the per-event cap, before a single seat is built."""
    blocks = list(_blocks(seat_map, categories))
    total = sum(len(b.rows) * len(b.numbers) for b in blocks)
    if total > max_seats:
        raise InvalidInput(
            f"seat_map: describes {total} seats; an event has at most {max_seats}",
            field="seat_map",
        )
    plan: Plan = {}
    origin: dict[SeatKey, str] = {}
    for b in blocks:
        spec = SeatSpec(b.block.category, b.block.accessible)
        for row in b.rows:
            for number in b.numbers:
                key = SeatKey(b.section, row, number)
                if key in plan:
                    raise InvalidInput(
                        f"seat_map: section {key.section!r} row {key.row!r} seat {key.number} "
                        f"is described twice, by {origin[key]} and by {b.where}",
                        field=b.where,
                    )
                plan[key] = spec
                origin[key] = b.where
    return plan


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
