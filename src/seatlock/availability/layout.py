"""The seat layout of an event: its seats in the order seat maps are drawn in (sections, then
rows, in natural order, then seat numbers: the order best available prefers), each known by
its index in that order, which is how the availability snapshot names seats.

A layout changes only with the seat map or the price categories, so each process keeps the
layouts of the events on sale in flat arrays (about 35 bytes a seat, no object per seat) and
reads PostgreSQL again only when the event's `seat_map_version` moves: the on-sale cache
brings that number along with the event's other facts every couple of seconds.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import uuid
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Final, NamedTuple

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.auth.tokens import Principal
from seatlock.errors import NotFound
from seatlock.events.events import visible_event
from seatlock.events.layouts import seat_order
from seatlock.events.price_categories import stored_categories
from seatlock.holds.on_sale import OnSaleCache
from seatlock.models import EventStatus, PriceCategory, Seat
from seatlock.single_flight import SingleFlight

# Layouts are kept for at most this many events per process; the earliest loaded goes first.
MAX_EVENTS_WITH_LAYOUTS: Final = 200

_LOW_64: Final = (1 << 64) - 1
# The longest text form of a seat id worth parsing (36 characters, give or take braces).
_MAX_ID_TEXT: Final = 45

Count = Annotated[int, msgspec.Meta(ge=0)]


class LayoutSectionOut(msgspec.Struct):
    name: str
    first_index: Annotated[
        int, msgspec.Meta(ge=0, description="the index of its first seat; the others follow")
    ]
    seat_count: Count


class LayoutCategoryOut(msgspec.Struct):
    id: uuid.UUID
    name: str
    price_minor: int
    currency: Annotated[str, msgspec.Meta(description="ISO 4217 code")]
    seat_count: Count


def _per_seat(description: str) -> msgspec.Meta:
    return msgspec.Meta(description=f"per seat of the row, by number: {description}")


class LayoutRowOut(msgspec.Struct):
    """A row; its seats as parallel arrays, seat `i` of the row having the index
    `first_index + i`."""

    section: Annotated[int, msgspec.Meta(ge=0, description="a position in `sections`")]
    row: Annotated[str, msgspec.Meta(description="the row's label")]
    first_index: Annotated[
        int, msgspec.Meta(ge=0, description="the index of the row's first seat; the others follow")
    ]
    seat_ids: Annotated[list[uuid.UUID], _per_seat("its id")]
    numbers: Annotated[list[int], _per_seat("its number")]
    price_categories: Annotated[
        list[int], _per_seat("its price category, as a position in `price_categories`")
    ]
    accessible: Annotated[list[bool], _per_seat("whether it is wheelchair accessible")]


class LayoutOut(msgspec.Struct):
    """Every seat of an event in layout order; the availability snapshot names seats by their
    index in it. Changes only with the seat map or the price categories."""

    event_id: uuid.UUID
    version: Annotated[
        str, msgspec.Meta(description="changes whenever the layout does; its ETag, quoted")
    ]
    seat_count: Count
    sections: Annotated[
        list[LayoutSectionOut], msgspec.Meta(description="in natural order of their names")
    ]
    price_categories: Annotated[
        list[LayoutCategoryOut], msgspec.Meta(description="as the event's details list them")
    ]
    rows: Annotated[
        list[LayoutRowOut],
        msgspec.Meta(description="in layout order: by section, then natural order of labels"),
    ]


class LayoutCategory(NamedTuple):
    id: uuid.UUID
    name: str
    price_minor: int
    currency: str


class _Ids(NamedTuple):
    """The seat ids, sorted, as two arrays of their 64-bit halves (the 16 bytes a seat of a
    sorted id buffer, but searched by bisect in C), with each one's index; a directory of
    where each value of the ids' top bits starts narrows a lookup to one or two entries."""

    high: array[int]
    low: array[int]
    indexes: array[int]
    directory: array[int]
    shift: int


def _index_ids(ids: Sequence[uuid.UUID]) -> _Ids:
    values = [seat_id.int for seat_id in ids]
    ranked = sorted(range(len(values)), key=values.__getitem__)
    high = array("Q", (values[index] >> 64 for index in ranked))
    # About one directory entry per seat: 2^bits buckets of the ids' top bits.
    bits = max(len(ids).bit_length() - 1, 0)
    shift = 64 - bits
    return _Ids(
        high,
        array("Q", (values[index] & _LOW_64 for index in ranked)),
        array("I", ranked),
        array("I", (bisect.bisect_left(high, b << shift) for b in range((1 << bits) + 1))),
        shift,
    )


@dataclass(frozen=True, eq=False)
class SeatLayout:
    """An event's seats in layout order, made by `build_layout`: a few arrays, no object per
    seat."""

    event_id: uuid.UUID
    version: str
    # False for a draft's layout, which only its organizer and admins may see.
    public: bool
    sections: tuple[str, ...]
    categories: tuple[LayoutCategory, ...]
    # Per seat, in layout order.
    _section_of: array[int] = field(repr=False)
    _category_of: array[int] = field(repr=False)
    _numbers: array[int] = field(repr=False)
    _accessible: bytes = field(repr=False)
    # Per row: its first index, its section and its label.
    _row_starts: array[int] = field(repr=False)
    _row_sections: array[int] = field(repr=False)
    _row_labels: tuple[str, ...] = field(repr=False)
    _ids: _Ids = field(repr=False)
    _per_section: tuple[int, ...] = field(repr=False)
    _per_category: tuple[int, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self._numbers)

    def index_of(self, seat_id: uuid.UUID | str) -> int | None:
        """The seat's index, or None when no seat of this layout has the id. Takes the text
        form Redis answers too: parsing it as a number costs less than making a UUID."""
        if isinstance(seat_id, uuid.UUID):
            value = seat_id.int
        elif len(seat_id) > _MAX_ID_TEXT:
            return None
        else:
            try:
                value = int(seat_id.replace("-", ""), 16)
            except ValueError:
                return None
            if not 0 <= value <= _MAX_ID:
                return None
        ids = self._ids
        high, low = value >> 64, value & _LOW_64
        bucket = high >> ids.shift
        start, end = ids.directory[bucket], ids.directory[bucket + 1]
        at = bisect.bisect_left(ids.high, high, start, end)
        # Two ids sharing their top 64 bits are rare enough to walk.
        while at < end and ids.high[at] == high:
            if ids.low[at] == low:
                return ids.indexes[at]
            at += 1
        return None

    def section_of(self, index: int) -> int:
        """The seat's section, as a position in `sections`."""
        return self._section_of[index]

    def category_of(self, index: int) -> int:
        """The seat's price category, as a position in `categories`."""
        return self._category_of[index]

    def seats_per_section(self) -> list[int]:
        return list(self._per_section)

    def seats_per_category(self) -> list[int]:
        return list(self._per_category)

    def answer(self) -> LayoutOut:
        """The layout as the API shows it, built afresh: answers are cached by ETag
        downstream, and memory keeps only the arrays."""
        ids, seat_ids = self._ids, [_NO_ID] * len(self)
        for high, low, index in zip(ids.high, ids.low, ids.indexes, strict=True):
            seat_ids[index] = uuid.UUID(int=high << 64 | low)
        ends = [*self._row_starts[1:], len(self)] if len(self) else []
        rows = [
            LayoutRowOut(
                section=section,
                row=label,
                first_index=start,
                seat_ids=seat_ids[start:end],
                numbers=self._numbers[start:end].tolist(),
                price_categories=self._category_of[start:end].tolist(),
                accessible=[bool(flag) for flag in self._accessible[start:end]],
            )
            for section, label, start, end in zip(
                self._row_sections, self._row_labels, self._row_starts, ends, strict=True
            )
        ]
        # A section's seats follow one another.
        firsts = list(itertools.accumulate(self._per_section, initial=0))[:-1]
        return LayoutOut(
            event_id=self.event_id,
            version=self.version,
            seat_count=len(self),
            sections=[
                LayoutSectionOut(*section)
                for section in zip(self.sections, firsts, self._per_section, strict=True)
            ],
            price_categories=[
                LayoutCategoryOut(*category, count)
                for category, count in zip(self.categories, self._per_category, strict=True)
            ],
            rows=rows,
        )


_MAX_ID: Final = (1 << 128) - 1
_NO_ID: Final = uuid.UUID(int=0)

SeatFacts = tuple[uuid.UUID, str, str, int, uuid.UUID, bool]


def build_layout(
    event_id: uuid.UUID,
    categories: Iterable[LayoutCategory],
    seats: Iterable[SeatFacts],
    *,
    public: bool = True,
) -> SeatLayout:
    """The layout of `seats` (id, section, row, number, price category id, accessible);
    `categories` in the order the answer lists them."""
    ordered_categories = tuple(categories)
    category_number = {c.id: n for n, c in enumerate(ordered_categories)}
    seats = list(seats)
    # The few distinct rows are put in order by their labels, then the seats by row and
    # number: much cheaper than comparing the labels' keys for every seat.
    rows = sorted({(s[1], s[2]) for s in seats}, key=lambda r: seat_order(r[0], r[1], 0))
    rank = {row: n for n, row in enumerate(rows)}
    ordered = sorted(seats, key=lambda s: (rank[s[1], s[2]], s[3]))
    sections: list[str] = []
    section_of, category_of, numbers = array("H"), array("H"), array("I")
    accessible = bytearray()
    row_starts, row_sections = array("I"), array("H")
    row_labels: list[str] = []
    labels: dict[str, str] = {}
    digest = hashlib.blake2b(event_id.bytes, digest_size=8)
    for c in ordered_categories:
        digest.update(f"{c.id}\x1f{c.name}\x1f{c.price_minor}\x1f{c.currency}\x1e".encode())
    last_row: tuple[str, str] | None = None
    for index, (_, section, row, number, category_id, is_accessible) in enumerate(ordered):
        if last_row is None or section != last_row[0]:
            sections.append(section)
        if (section, row) != last_row:
            last_row = (section, row)
            row_starts.append(index)
            row_sections.append(len(sections) - 1)
            # Row labels repeat from section to section: one string each.
            row_labels.append(labels.setdefault(row, row))
            digest.update(f"{section}\x1f{row}\x1e".encode())
        section_of.append(len(sections) - 1)
        category_of.append(category_number[category_id])
        numbers.append(number)
        accessible.append(is_accessible)
    ids = [seat[0] for seat in ordered]
    for part in (row_starts, numbers, category_of, accessible):
        digest.update(part)
    digest.update(b"".join(seat_id.bytes for seat_id in ids))
    return SeatLayout(
        event_id=event_id,
        version=digest.hexdigest(),
        public=public,
        sections=tuple(sections),
        categories=ordered_categories,
        _section_of=section_of,
        _category_of=category_of,
        _numbers=numbers,
        _accessible=bytes(accessible),
        _row_starts=row_starts,
        _row_sections=row_sections,
        _row_labels=tuple(row_labels),
        _ids=_index_ids(ids),
        _per_section=_counts(section_of, len(sections)),
        _per_category=_counts(category_of, len(ordered_categories)),
    )


def _counts(numbers: array[int], size: int) -> tuple[int, ...]:
    counts = [0] * size
    for number in numbers:
        counts[number] += 1
    return tuple(counts)


class _Cached(NamedTuple):
    seat_map_version: int
    layout: SeatLayout


class LayoutCache:
    """The layouts of the events on sale, per process. An event's layout is read once per
    seat map version (one request reads it, the others wait for that read); other events'
    are read from PostgreSQL on every call."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_sale: OnSaleCache,
        max_events: int = MAX_EVENTS_WITH_LAYOUTS,
    ) -> None:
        self.sessions = sessions
        self.on_sale = on_sale
        self.max_events = max_events
        self._cached: dict[uuid.UUID, _Cached] = {}
        self._loading: SingleFlight[tuple[uuid.UUID, int], _Cached] = SingleFlight()

    async def layout(self, event_id: uuid.UUID, viewer: Principal | None = None) -> SeatLayout:
        """The event's layout as `viewer` (None: anonymous) may see it: a draft's only for
        its organizer and admins, NotFound for everybody else, as for any unknown event."""
        facts = await self.on_sale.event(event_id)
        if facts is None:
            self._cached.pop(event_id, None)
            raise NotFound("no such event")
        if facts.status is not EventStatus.ON_SALE:
            return (await self._read(event_id, viewer)).layout
        cached = self._cached.get(event_id)
        # A newer layout than the facts know of is as good: versions only grow.
        if cached is not None and cached.seat_map_version >= facts.seat_map_version:
            return cached.layout
        key = (event_id, facts.seat_map_version)
        return (await self._loading.join(key, partial(self._load, event_id))).layout

    async def aclose(self) -> None:
        """Waits for the reads whose callers gave up, so that none holds a connection of an
        engine about to be disposed."""
        await self._loading.wait()

    async def _load(self, event_id: uuid.UUID) -> _Cached:
        loaded = await self._read(event_id, None)
        if len(self._cached) >= self.max_events and event_id not in self._cached:
            del self._cached[next(iter(self._cached))]
        self._cached[event_id] = loaded
        return loaded

    async def _read(self, event_id: uuid.UUID, viewer: Principal | None) -> _Cached:
        async with self.sessions() as session:
            # One snapshot for the event, its categories and its seats, so that a change
            # committed between the reads cannot mix two seat maps.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            event = await visible_event(session, event_id, viewer)
            version, public = event.seat_map_version, event.status is not EventStatus.DRAFT
            categories = [_category(c) for c in await stored_categories(session, event_id)]
            seats = await session.execute(
                select(
                    Seat.id,
                    Seat.section,
                    Seat.row,
                    Seat.number,
                    Seat.price_category_id,
                    Seat.accessible,
                ).where(Seat.event_id == event_id)
            )
            rows = seats.tuples().all()
        # A large map takes a while to put in order (some 0.3 s for 100,000 seats): in a
        # thread, so that the other requests of the process keep being served meanwhile.
        layout = await asyncio.to_thread(build_layout, event_id, categories, rows, public=public)
        return _Cached(version, layout)


def _category(category: PriceCategory) -> LayoutCategory:
    return LayoutCategory(category.id, category.name, category.price_minor, category.currency)
