"""Seat map layouts: the compact description organizers send, expanded into seats.

A layout is a list of sections; each section is a list of blocks; a block is some rows
(a list of labels or a range such as "1".."20" or "A".."K") times some seat numbers
(a list or a range such as 1..30), all in one price category. Expansion checks the
whole description before a single seat is built.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterator
from typing import Annotated, Final, NamedTuple

import msgspec

from seatlock.bodies import END, Body
from seatlock.errors import InvalidInput

MAX_SECTIONS: Final = 500
MAX_BLOCKS_PER_SECTION: Final = 1000
MAX_ROWS_PER_BLOCK: Final = 1000
MAX_SEATS_PER_ROW: Final = 1000

# Printable, without leading or trailing blanks: labels are shown on tickets and compared.
LABEL: Final = rf"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?{END}"
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


class SeatKey(NamedTuple):
    section: str
    row: str
    number: int


class SeatSpec(NamedTuple):
    category: str
    accessible: bool


Plan = dict[SeatKey, SeatSpec]

NaturalKey = tuple[tuple[int, int | str], ...]


# Labels repeat from seat to seat (and row names from section to section), so sorting a
# large map splits each of them once.
@functools.lru_cache(maxsize=4096)
def natural(label: str) -> NaturalKey:
    """A label's place in natural order: row "10" comes after row "9", and "A" before "B"."""
    return tuple(
        (0, int(part)) if part.isascii() and part.isdecimal() else (1, part)
        for part in re.split(r"(\d+)", label)
        if part
    )


def seat_order(section: str, row: str, number: int) -> tuple[NaturalKey, str, NaturalKey, str, int]:
    """The order buyers prefer seats in and seat maps are drawn in: sections, then rows, in
    natural order, then seat numbers. The labels themselves break ties ("01" and "1"), so
    that the seats of one row stay together."""
    return natural(section), section, natural(row), row, number


def _row_labels(rows: list[str] | RowRange, where: str) -> list[str]:
    if isinstance(rows, list):
        return rows
    first, last = rows.first, rows.last
    if _is_number(first) and _is_number(last):
        _check_row_count(int(last) - int(first) + 1, first, last, where)
        # "01".."12" keeps the width of its first label; "1".."12" has none.
        width = len(first) if first.startswith("0") else 0
        labels = [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
    elif len(first) == len(last) == 1 and first.isalpha() and last.isalpha():
        if first.isupper() != last.isupper():
            raise InvalidInput(f"{where}.rows: a letter range keeps one case", field=where)
        _check_row_count(ord(last) - ord(first) + 1, first, last, where)
        labels = [chr(c) for c in range(ord(first), ord(last) + 1)]
    else:
        raise InvalidInput(
            f"{where}.rows: a row range goes from a number to a number or from a letter "
            f"to a letter; list the rows instead",
            field=where,
        )
    return labels


def _is_number(label: str) -> bool:
    # ASCII digits only: "²".isdigit() is true, but int("²") fails.
    return label.isascii() and label.isdecimal()


def _check_row_count(count: int, first: str, last: str, where: str) -> None:
    """Checked before any label is built, so that an absurd range costs nothing."""
    if count < 1:
        raise InvalidInput(f"{where}.rows: the range {first}..{last} is empty", field=where)
    if count > MAX_ROWS_PER_BLOCK:
        raise InvalidInput(
            f"{where}.rows: at most {MAX_ROWS_PER_BLOCK} rows per block", field=where
        )


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
    blocks: list[_Expanded] = []
    total = 0
    for block in _blocks(seat_map, categories):
        blocks.append(block)
        total += len(block.rows) * len(block.numbers)
        # Refused as soon as the count passes the cap, before later blocks are expanded.
        if total > max_seats:
            raise InvalidInput(
                f"seat_map: describes at least {total} seats; an event has at most {max_seats}",
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
