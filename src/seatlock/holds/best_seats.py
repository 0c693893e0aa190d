"""Best available: choose n adjacent seats in one row for a buyer who did not pick seats.

Seats are adjacent when they share a section and row and their numbers follow each other;
a jump in numbering is an aisle. Windows that would strand a single empty seat beside them
are tried last, since nobody buys a lone seat.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter

MAX_CANDIDATES = 50


@dataclass(frozen=True)
class SeatSpot:
    id: uuid.UUID
    section: str
    row: str
    number: int
    free: bool


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    # Row "10" comes after row "9", and "A" before "B".
    return tuple(
        (0, int(part)) if part.isascii() and part.isdecimal() else (1, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def _free_runs(row: list[SeatSpot]) -> Iterator[list[SeatSpot]]:
    run: list[SeatSpot] = []
    for spot in row:
        adjacent = run and spot.number == run[-1].number + 1
        if spot.free and (adjacent or not run):
            run.append(spot)
            continue
        if run:
            yield run
        run = [spot] if spot.free else []
    if run:
        yield run


def candidate_windows(spots: Iterable[SeatSpot], quantity: int) -> list[list[uuid.UUID]]:
    """Windows of `quantity` adjacent free seats, the best first."""
    rows: dict[tuple[str, str], list[SeatSpot]] = defaultdict(list)
    for spot in spots:
        rows[(spot.section, spot.row)].append(spot)
    # The natural order is worked out once per row, not once per seat.
    ordered = sorted(rows, key=lambda place: (_natural(place[0]), _natural(place[1])))
    scored: list[tuple[tuple[int, int, int, int], list[uuid.UUID]]] = []
    for row_index, place in enumerate(ordered):
        row_spots = sorted(rows[place], key=attrgetter("number"))
        for run in _free_runs(row_spots):
            for offset in range(len(run) - quantity + 1):
                left, right = offset, len(run) - offset - quantity
                single_gaps = (left == 1) + (right == 1)
                off_edge = min(left, right) > 0
                key = (single_gaps, row_index, int(off_edge), offset)
                scored.append((key, [s.id for s in run[offset : offset + quantity]]))
    scored.sort(key=lambda item: item[0])
    return [window for _, window in scored[:MAX_CANDIDATES]]
