from __future__ import annotations

import uuid

from seatlock.holds.best_seats import SeatSpot, candidate_windows


def row(name: str, free: str, first: int = 1, section: str = "A") -> list[SeatSpot]:
    """A row from a picture: 'o' free, 'x' taken, ' ' an aisle (a jump in numbering)."""
    spots, number = [], first
    for mark in free:
        if mark != " ":
            spots.append(SeatSpot(uuid.uuid4(), section, name, number, mark == "o"))
        number += 1
    return spots


def numbers(spots: list[SeatSpot], window: list[uuid.UUID]) -> list[int]:
    by_id = {s.id: s.number for s in spots}
    return [by_id[i] for i in window]


def test_picks_adjacent_free_seats_in_one_row() -> None:
    spots = row("1", "xoxoox")

    windows = candidate_windows(spots, 2)

    assert [numbers(spots, w) for w in windows] == [[4, 5]]


def test_avoids_leaving_a_single_empty_seat() -> None:
    spots = row("1", "ooooo")

    best = candidate_windows(spots, 2)[0]

    # Seats 1-2 leave 3-5 (three together); 2-3 would strand seat 1.
    assert numbers(spots, best) in ([1, 2], [4, 5])
    assert numbers(spots, candidate_windows(spots, 2)[-1]) in ([2, 3], [3, 4])


def test_a_row_that_fits_exactly_beats_one_that_strands_a_seat() -> None:
    front = row("1", "ooo")
    back = row("2", "oo")

    best = candidate_windows(front + back, 2)[0]

    assert numbers(back, best) == [1, 2]


def test_an_aisle_breaks_adjacency() -> None:
    spots = row("1", "oo oo")

    windows = candidate_windows(spots, 3)

    assert windows == []


def test_front_rows_come_first_in_natural_order() -> None:
    row10, row9 = row("10", "oo"), row("9", "oo")

    best = candidate_windows(row10 + row9, 2)[0]

    assert best == [s.id for s in row9]


def test_no_window_when_too_few_seats_are_free() -> None:
    assert candidate_windows(row("1", "oxoxo"), 2) == []
