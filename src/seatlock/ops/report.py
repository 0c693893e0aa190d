"""The hold report of an event, for ops: seats by state in total, per section and per price
category, the live holds by age, those about to expire, and the owners holding the most.

Everything Redis knows is read in one atomic script (`lua/hold_report.lua`): the figures
agree with each other at one version, and cost O(live holds + taken seats), never a scan
of the keyspace. Sections and categories come from the per-process seat layout.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

import msgspec

from seatlock import keys
from seatlock.availability.layout import SeatLayout
from seatlock.errors import Unavailable
from seatlock.holds import replies
from seatlock.holds.store import REBUILD_ATTEMPTS, HoldStore, TakenSnapshot

# (label, from, to) in seconds since a hold was created; the last bucket is open-ended.
AGE_BUCKETS: Final = (
    ("<1 min", 0, 60),
    ("1-5 min", 60, 300),
    ("5-10 min", 300, 600),
    (">10 min", 600, None),
)
EXPIRING_SOON_SECONDS: Final = 60
TOP_HOLDERS: Final = 10

Count = Annotated[int, msgspec.Meta(ge=0)]


class StateCounts(msgspec.Struct):
    seats: Count
    available: Count
    held: Count
    reserved: Count
    sold: Count


class SectionReport(msgspec.Struct):
    name: str
    seats: Count
    available: Count
    held: Count
    reserved: Count
    sold: Count


class CategoryReport(msgspec.Struct):
    id: uuid.UUID
    name: str
    seats: Count
    available: Count
    held: Count
    reserved: Count
    sold: Count


class AgeBucket(msgspec.Struct):
    label: str
    from_seconds: int
    to_seconds: Annotated[int | None, msgspec.Meta(description="null: no upper bound")]
    holds: Count
    seats: Count


class ExpiringSoon(msgspec.Struct):
    within_seconds: int
    holds: Count
    seats: Count


class HoldFigures(msgspec.Struct):
    live: Annotated[int, msgspec.Meta(ge=0, description="live holds")]
    seats: Annotated[int, msgspec.Meta(ge=0, description="seats in live holds")]
    converting: Annotated[int, msgspec.Meta(ge=0, description="holds being booked right now")]
    by_age: Annotated[list[AgeBucket], msgspec.Meta(description="by time since created")]
    expiring_soon: ExpiringSoon


class TopHolder(msgspec.Struct):
    owner_id: uuid.UUID
    holds: Count
    seats: Count


class HoldReportOut(msgspec.Struct):
    """An event's seats by state and its live holds, all at one availability version."""

    event_id: uuid.UUID
    generated_at: Annotated[datetime, msgspec.Meta(description="Redis's clock")]
    version: Annotated[int, msgspec.Meta(description="the availability version shown")]
    layout_version: str
    totals: StateCounts
    sections: list[SectionReport]
    price_categories: list[CategoryReport]
    holds: HoldFigures
    top_holders: Annotated[list[TopHolder], msgspec.Meta(description="by seats held, at most 10")]


@dataclass(frozen=True)
class ReportHold:
    id: str
    owner_id: uuid.UUID
    seats: int
    created_ms: int
    expires_ms: int
    state: str


@dataclass(frozen=True)
class HoldReading:
    """What the report script read: the reserved/sold cache, the seats under live holds
    and the live holds, at one version and one moment of Redis's clock."""

    now_ms: int
    version: int
    taken: list[tuple[str, str]]
    held: list[str]
    holds: list[ReportHold]


async def read_holds(store: HoldStore, event_id: uuid.UUID, snapshot: TakenSnapshot) -> HoldReading:
    """One atomic read of the event's hold layer (the reserved/sold cache is rebuilt from
    PostgreSQL first when it must be). Redis errors raise."""
    report_keys = [*store.expiry_keys(event_id), keys.taken_seats(event_id)]
    for _ in range(REBUILD_ATTEMPTS):
        reply = await store.scripts.hold_report(keys=report_keys, args=[keys.hold_prefix(event_id)])
        if reply[0] != "rebuild":
            break
        await store.load_taken(event_id, snapshot)
    if reply[0] != "ok":
        raise Unavailable("the seat cache could not be rebuilt; please retry")
    now_ms, version, taken_count = int(reply[1]), int(reply[2]), int(reply[3])
    pairs = reply[4 : 4 + 2 * taken_count]
    at = 4 + 2 * taken_count
    held_count = int(reply[at])
    held = reply[at + 1 : at + 1 + held_count]
    rows = reply[at + 1 + held_count :]
    return HoldReading(
        now_ms=now_ms,
        version=version,
        taken=list(zip(pairs[0::2], pairs[1::2], strict=True)),
        held=held,
        holds=[
            ReportHold(hold_id, uuid.UUID(owner), int(seats), int(created), int(expires), state)
            for hold_id, owner, seats, created, expires, state in zip(
                *[iter(rows)] * 6, strict=True
            )
        ],
    )


def build_report(layout: SeatLayout, reading: HoldReading) -> HoldReportOut:
    """The report: seat states by layout index (PostgreSQL's reserved or sold wins over a
    hold, as in the availability snapshot), and figures of the live holds."""
    sections, categories = len(layout.sections), len(layout.categories)
    per_section = {state: [0] * sections for state in ("held", "reserved", "sold")}
    per_category = {state: [0] * categories for state in ("held", "reserved", "sold")}
    taken_indexes: set[int] = set()

    def count(index: int, state: str) -> None:
        per_section[state][layout.section_of(index)] += 1
        per_category[state][layout.category_of(index)] += 1

    for seat_id, state in reading.taken:
        index = layout.index_of(seat_id)
        if index is not None and state in per_section:
            taken_indexes.add(index)
            count(index, state)
    for seat_id in reading.held:
        index = layout.index_of(seat_id)
        if index is not None and index not in taken_indexes:
            taken_indexes.add(index)
            count(index, "held")

    def states(seats: int, number: int, by: dict[str, list[int]]) -> tuple[int, ...]:
        held, reserved, sold = by["held"][number], by["reserved"][number], by["sold"][number]
        return seats, seats - held - reserved - sold, held, reserved, sold

    section_reports = [
        SectionReport(name, *states(seats, n, per_section))
        for n, (name, seats) in enumerate(
            zip(layout.sections, layout.seats_per_section(), strict=True)
        )
    ]
    category_reports = [
        CategoryReport(category.id, category.name, *states(seats, n, per_category))
        for n, (category, seats) in enumerate(
            zip(layout.categories, layout.seats_per_category(), strict=True)
        )
    ]
    held, reserved, sold = (sum(per_section[state]) for state in ("held", "reserved", "sold"))
    return HoldReportOut(
        event_id=layout.event_id,
        generated_at=replies.from_ms(reading.now_ms),
        version=reading.version,
        layout_version=layout.version,
        totals=StateCounts(len(layout), len(layout) - held - reserved - sold, held, reserved, sold),
        sections=section_reports,
        price_categories=category_reports,
        holds=hold_figures(reading),
        top_holders=top_holders(reading.holds),
    )


def hold_figures(reading: HoldReading) -> HoldFigures:
    buckets = []
    for label, start, end in AGE_BUCKETS:
        inside = [
            h
            for h in reading.holds
            if start * 1000 <= reading.now_ms - h.created_ms
            and (end is None or reading.now_ms - h.created_ms < end * 1000)
        ]
        buckets.append(AgeBucket(label, start, end, len(inside), sum(h.seats for h in inside)))
    soon = [
        h for h in reading.holds if h.expires_ms - reading.now_ms <= EXPIRING_SOON_SECONDS * 1000
    ]
    return HoldFigures(
        live=len(reading.holds),
        seats=sum(h.seats for h in reading.holds),
        converting=sum(1 for h in reading.holds if h.state == "converting"),
        by_age=buckets,
        expiring_soon=ExpiringSoon(EXPIRING_SOON_SECONDS, len(soon), sum(h.seats for h in soon)),
    )


def top_holders(holds: list[ReportHold], limit: int = TOP_HOLDERS) -> list[TopHolder]:
    """The owners holding the most seats; ties go to more holds, then to the owner id."""
    seats: Counter[uuid.UUID] = Counter()
    count: Counter[uuid.UUID] = Counter()
    for h in holds:
        seats[h.owner_id] += h.seats
        count[h.owner_id] += 1
    ranked = sorted(seats, key=lambda owner: (-seats[owner], -count[owner], str(owner)))
    return [TopHolder(owner, count[owner], seats[owner]) for owner in ranked[:limit]]
