"""The availability snapshot: every seat that is not available, by its index in the
layout, with counts of available seats per section and price category and the version it
shows. The answer is the same for every caller, so it is built once per version per
process and served from memory; a client brings it up to date with the stream of changes
from its version on.

A snapshot is built from Redis only (the live holds and the cache of PostgreSQL's
reserved and sold seats), read in one atomic step. Under a churn of holds the version
moves on every few milliseconds: a snapshot is then reused for up to FRESH_SECONDS, which
is safe because it says which version it shows. For the same reason, while one request
refreshes it the others are answered from the one before (up to STALE_SECONDS old)
rather than wait: in a sale's busiest seconds a refresh waits a full turn of a busy loop
per Redis call, and the reads waiting on it filled the worker's backlog, so that holds
were refused (`seatlock.shedding`). With Redis unreachable the snapshot comes from
PostgreSQL, says that it cannot show holds, and carries no version.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Final, Literal

import msgspec

from seatlock.availability.changes import ChangeLog
from seatlock.availability.layout import SeatLayout
from seatlock.holds.store import HoldStore, SeatStates, TakenSnapshot
from seatlock.single_flight import SingleFlight

# How long a snapshot is served without asking Redis whether the version moved.
FRESH_SECONDS: Final = 0.2
# The oldest snapshot served while another request refreshes it.
STALE_SECONDS: Final = 2.0
# How long a snapshot read from PostgreSQL (Redis unreachable) is served.
DEGRADED_SECONDS: Final = 2.0
# Snapshots are kept for at most this many events; then memory starts over.
MAX_EVENTS: Final = 1000

Encoding = Literal["indexes", "bitmap"]


class SeatSet(msgspec.Struct):
    """Seats by layout index, in whichever encoding is smaller: `indexes`, a sorted list of
    indexes; or `bitmap`, base64 of one bit per seat of the layout, the seat at index i
    being bit (i % 8) (least significant first) of byte i // 8."""

    encoding: Annotated[
        Encoding,
        msgspec.Meta(
            description="`indexes`: `data` is the sorted list of the seats' layout indexes; "
            "`bitmap`: `data` is base64 of one bit per seat of the layout, the seat at index "
            "i being bit i % 8 (least significant first) of byte i // 8"
        ),
    ]
    count: Annotated[int, msgspec.Meta(ge=0, description="number of seats in the set")]
    data: Annotated[
        list[int] | str,
        msgspec.Meta(description="layout indexes, or a base64 bitmap (see `encoding`)"),
    ]


class SectionAvailability(msgspec.Struct):
    name: str
    seats: int
    available: int


class CategoryAvailability(msgspec.Struct):
    id: uuid.UUID
    name: str
    seats: int
    available: int


class AvailabilityOut(msgspec.Struct):
    """Seats held, reserved and sold at one version; every other seat of the layout is
    available. Apply the stream's changes with a greater version to keep it current."""

    event_id: uuid.UUID
    version: Annotated[
        int | None,
        msgspec.Meta(description="the version shown; null when holds cannot be shown"),
    ]
    layout_version: str
    seat_count: int
    holds_shown: Annotated[
        bool,
        msgspec.Meta(description="false while Redis is unreachable: held seats show as free"),
    ]
    available: int
    sections: list[SectionAvailability]
    price_categories: list[CategoryAvailability]
    held: SeatSet
    reserved: SeatSet
    sold: SeatSet


@dataclass(frozen=True)
class Snapshot:
    version: int | None
    layout_version: str
    body: bytes

    @property
    def etag(self) -> str | None:
        if self.version is None:
            return None
        return f'"{self.version}.{self.layout_version}"'


def seat_set(indexes: list[int], seat_count: int) -> SeatSet:
    indexes.sort()
    # JSON spends at most the digits of the largest index and a comma on each index.
    as_indexes = len(indexes) * (len(str(seat_count)) + 1)
    bitmap_bytes = (seat_count + 7) // 8
    if as_indexes <= 4 * ((bitmap_bytes + 2) // 3):
        return SeatSet("indexes", len(indexes), indexes)
    bits = bytearray(bitmap_bytes)
    for index in indexes:
        bits[index >> 3] |= 1 << (index & 7)
    return SeatSet("bitmap", len(indexes), base64.b64encode(bits).decode())


def build(layout: SeatLayout, states: SeatStates) -> bytes:
    """The snapshot's JSON body. Without a version (`states.version` None), it comes from
    PostgreSQL alone and cannot show holds."""
    by_state: dict[str, list[int]] = {"held": [], "reserved": [], "sold": []}
    for seat_id, state in states.taken:
        index = layout.index_of(seat_id)
        if index is not None and state in by_state:
            by_state[state].append(index)
    # PostgreSQL's word wins over a hold: a seat both reserved and held shows reserved.
    taken_indexes = {*by_state["reserved"], *by_state["sold"]}
    for seat_id in states.held:
        index = layout.index_of(seat_id)
        if index is not None and index not in taken_indexes:
            by_state["held"].append(index)
    per_section, per_category = layout.seats_per_section(), layout.seats_per_category()
    free_in_section, free_in_category = list(per_section), list(per_category)
    for indexes in by_state.values():
        for index in indexes:
            free_in_section[layout.section_of(index)] -= 1
            free_in_category[layout.category_of(index)] -= 1
    answer = AvailabilityOut(
        event_id=layout.event_id,
        version=states.version,
        layout_version=layout.version,
        seat_count=len(layout),
        holds_shown=states.version is not None,
        available=sum(free_in_section),
        sections=[
            SectionAvailability(name, seats, free)
            for name, seats, free in zip(layout.sections, per_section, free_in_section, strict=True)
        ],
        price_categories=[
            CategoryAvailability(category.id, category.name, seats, free)
            for category, seats, free in zip(
                layout.categories, per_category, free_in_category, strict=True
            )
        ],
        **{state: seat_set(indexes, len(layout)) for state, indexes in by_state.items()},
    )
    return msgspec.json.encode(answer)


@dataclass
class _Entry:
    snapshot: Snapshot
    checked_at: float


class AvailabilityCache:
    """This process's latest snapshot of each event; one refresh at a time per event."""

    def __init__(self, store: HoldStore, log: ChangeLog, taken: TakenSnapshot) -> None:
        self.store = store
        self.log = log
        self.taken = taken
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._degraded: dict[uuid.UUID, _Entry] = {}
        self._refreshing: SingleFlight[uuid.UUID, Snapshot] = SingleFlight()

    async def snapshot(self, layout: SeatLayout) -> Snapshot:
        """The snapshot at most FRESH_SECONDS old; or, while another request refreshes
        it, the one before if at most STALE_SECONDS old. Redis errors raise."""
        event_id = layout.event_id
        entry = self._entries.get(event_id)
        if self._usable(entry, layout, FRESH_SECONDS) or (
            self._refreshing.under_way(event_id) and self._usable(entry, layout, STALE_SECONDS)
        ):
            assert entry is not None
            return entry.snapshot
        return await self._refreshing.join(event_id, partial(self._refresh, layout))

    async def aclose(self) -> None:
        """Waits for the refreshes under way, those whose callers gave up included."""
        await self._refreshing.wait()

    async def without_holds(self, layout: SeatLayout) -> Snapshot:
        """A snapshot from PostgreSQL alone, for while Redis is unreachable."""
        entry = self._degraded.get(layout.event_id)
        if self._usable(entry, layout, DEGRADED_SECONDS):
            assert entry is not None
            return entry.snapshot
        taken = await self.taken(layout.event_id)
        pairs = [(str(seat_id), state.value) for seat_id, state in taken.items()]
        snapshot = Snapshot(None, layout.version, build(layout, SeatStates(None, pairs, [])))
        self._remember(self._degraded, layout.event_id, snapshot)
        return snapshot

    @staticmethod
    def _usable(entry: _Entry | None, layout: SeatLayout, lifetime: float) -> bool:
        return (
            entry is not None
            and entry.snapshot.layout_version == layout.version
            and time.monotonic() - entry.checked_at < lifetime
        )

    async def _refresh(self, layout: SeatLayout) -> Snapshot:
        event_id = layout.event_id
        entry = self._entries.get(event_id)
        # The cheap question first: most of the time nothing changed.
        if (
            entry is not None
            and entry.snapshot.layout_version == layout.version
            and await self.log.version(event_id) == entry.snapshot.version
        ):
            entry.checked_at = time.monotonic()
            return entry.snapshot
        states = await self.store.seat_states(event_id, self.taken)
        snapshot = Snapshot(states.version, layout.version, build(layout, states))
        self._remember(self._entries, event_id, snapshot)
        return snapshot

    @staticmethod
    def _remember(entries: dict[uuid.UUID, _Entry], event_id: uuid.UUID, snap: Snapshot) -> None:
        if event_id not in entries and len(entries) >= MAX_EVENTS:
            entries.clear()
        entries[event_id] = _Entry(snap, time.monotonic())
