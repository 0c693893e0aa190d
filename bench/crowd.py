"""The flash scenario: a crowd far larger than the event. Each buyer acts on what an
availability read tells it, not on what other buyers learnt, so many click the same best
seats at the same moment; after a refusal it reads again and picks again after a short
backoff. Some walk away after holding (releasing the hold or letting it run out), some
after booking without paying. The crowd keeps trying until every seat is sold.

A buyer's persona (how many seats, which ones it likes, how it ends, how long it thinks)
comes from the seed and its number alone, so both designs get the same crowd.
"""

from __future__ import annotations

import asyncio
import base64
import random
from dataclasses import dataclass
from itertools import groupby
from typing import Protocol

import msgspec

from bench.recorder import Recorder
from bench.sale import SeatInfo
from bench.steps import (
    Ask,
    Busy,
    Buyer,
    Claim,
    Conflicted,
    Design,
    Sale,
    busy_steps,
    pay,
    raise_if_busy,
    timed,
)
from bench.wire import WireError

QUANTITIES = ((1, 0.2), (2, 0.45), (3, 0.15), (4, 0.2))
# A snapshot read answered 304 is recorded as step `read_unchanged`.
READ_STEPS = {304: "read_unchanged", **busy_steps("read")}
# Windows of adjacent seats a front-row buyer chooses among: small, so buyers collide.
FRONT_CHOICES = 3
MAX_RETRY_SECONDS = 2.0
# How a buyer's time ran out: the sale ended while it was still trying.
STILL_TRYING = "still trying at the end"


@dataclass(frozen=True)
class Knobs:
    """The crowd's behaviour; fractions are of all buyers."""

    abandon_hold: float = 0.25  # hold, then walk away ...
    release_share: float = 0.5  # ... of whom these release the hold (the rest let it expire)
    abandon_booking: float = 0.10  # book, then never pay
    front_share: float = 0.7  # want the hot section's front rows
    best_share: float = 0.1  # ask for best available instead of choosing
    think_seconds: float = 1.0  # mean think time between claiming and booking
    arrival_seconds: float = 1.0  # buyers arrive over this long after the sale opens
    retry_seconds: float = 0.1  # first backoff after a refusal, doubling up to 2 s
    idle_poll_seconds: float = 8.0  # longest wait between reads while nothing is free


@dataclass(frozen=True)
class Persona:
    quantity: int
    taste: str  # front | anywhere | best
    fate: str  # complete | release | expire | unpaid
    think: float
    arrival: float


def persona(seed: int, index: int, knobs: Knobs) -> Persona:
    rng = random.Random(f"{seed}-{index}-persona")
    quantity = rng.choices([q for q, _ in QUANTITIES], [w for _, w in QUANTITIES])[0]
    roll = rng.random()
    taste = "best" if roll < knobs.best_share else "front"
    if roll >= knobs.best_share + knobs.front_share:
        taste = "anywhere"
    roll = rng.random()
    fate = "complete"
    if roll < knobs.abandon_hold:
        fate = "release" if roll < knobs.abandon_hold * knobs.release_share else "expire"
    elif roll < knobs.abandon_hold + knobs.abandon_booking:
        fate = "unpaid"
    think = knobs.think_seconds * rng.uniform(0.5, 1.5)
    return Persona(quantity, taste, fate, think, rng.uniform(0, knobs.arrival_seconds))


class _SeatState(msgspec.Struct):
    id: str
    state: str


class _SeatMap(msgspec.Struct):
    seats: list[_SeatState]


class _Row(msgspec.Struct):
    first_index: int
    seat_ids: list[str]


class _Layout(msgspec.Struct):
    seat_count: int
    rows: list[_Row]


class _SeatSet(msgspec.Struct):
    count: int
    # Sorted layout indexes, or base64 of one bit per seat (bit i % 8 of byte i // 8).
    data: list[int] | str


class _Snapshot(msgspec.Struct):
    seat_count: int
    held: _SeatSet
    reserved: _SeatSet
    sold: _SeatSet


_read_map = msgspec.json.Decoder(_SeatMap).decode
_read_layout = msgspec.json.Decoder(_Layout).decode
_read_snapshot = msgspec.json.Decoder(_Snapshot).decode


def seat_indexes(seat_set: _SeatSet) -> list[int]:
    """The layout indexes of a snapshot's seat set, in either encoding."""
    if not isinstance(seat_set.data, str):
        return seat_set.data
    found = []
    for at, byte in enumerate(base64.b64decode(seat_set.data)):
        if byte:
            found += [at * 8 + bit for bit in range(8) if byte >> bit & 1]
    return found


@dataclass(frozen=True)
class Availability:
    free: list[SeatInfo]
    sold: int
    total: int


class AvailabilityReads(Protocol):
    async def read(self, buyer: Buyer, recorder: Recorder) -> Availability | None:
        """What a buyer's page shows, or None when the read failed."""
        ...


class SeatMapReads:
    """The full seat map (`GET /api/events/{id}/seats`) on every look: what plain
    PostgreSQL offers."""

    def __init__(self, sale: Sale, seats: dict[str, SeatInfo]) -> None:
        self.path = f"/api/events/{sale.event_id}/seats"
        self.seats = seats

    async def read(self, buyer: Buyer, recorder: Recorder) -> Availability | None:
        reply = await timed(
            recorder, "read", buyer.service, "GET", self.path, None, buyer.headers, READ_STEPS
        )
        raise_if_busy(recorder, "read", reply)
        if reply.status != 200:
            recorder.error("read", f"HTTP {reply.status}")
            return None
        states = _read_map(reply.body).seats
        free = [self.seats[s.id] for s in states if s.state == "available"]
        return Availability(free, sum(1 for s in states if s.state == "sold"), len(states))


class SnapshotReads:
    """Seatlock's page: the layout once per client process, then the availability snapshot
    on every look, sent with the ETag of the buyer's last one: a 304 (recorded as step
    `read_unchanged`) means the buyer's previous view is still current."""

    def __init__(self, sale: Sale, seats: dict[str, SeatInfo]) -> None:
        self.layout_path = f"/api/events/{sale.event_id}/layout"
        self.path = f"/api/events/{sale.event_id}/availability"
        self.seats = seats
        self._by_index: list[SeatInfo] | None = None
        self._loading = asyncio.Lock()
        # Per buyer: the ETag of its last snapshot and what that showed.
        self._views: dict[int, tuple[str, Availability]] = {}

    async def _layout(self, buyer: Buyer, recorder: Recorder) -> list[SeatInfo] | None:
        async with self._loading:
            if self._by_index is None:
                path = self.layout_path
                reply = await timed(
                    recorder, "layout", buyer.service, "GET", path, None, None, busy_steps("layout")
                )
                raise_if_busy(recorder, "layout", reply)
                if reply.status != 200:
                    recorder.error("layout", f"HTTP {reply.status}")
                    return None
                layout = _read_layout(reply.body)
                by_index = [self.seats[seat_id] for row in layout.rows for seat_id in row.seat_ids]
                # Rows follow one another in layout order.
                assert len(by_index) == layout.seat_count
                assert all(by_index[r.first_index].id == r.seat_ids[0] for r in layout.rows)
                self._by_index = by_index
        return self._by_index

    async def read(self, buyer: Buyer, recorder: Recorder) -> Availability | None:
        by_index = await self._layout(buyer, recorder)
        if by_index is None:
            return None
        seen = self._views.get(buyer.index)
        headers = buyer.headers if seen is None else {**buyer.headers, "If-None-Match": seen[0]}
        reply = await timed(
            recorder, "read", buyer.service, "GET", self.path, None, headers, READ_STEPS
        )
        raise_if_busy(recorder, "read", reply)
        if reply.status == 304 and seen is not None:
            return seen[1]
        if reply.status != 200:
            recorder.error("read", f"HTTP {reply.status}")
            return None
        snapshot = _read_snapshot(reply.body)
        taken = {
            i for s in (snapshot.held, snapshot.reserved, snapshot.sold) for i in seat_indexes(s)
        }
        free = [seat for index, seat in enumerate(by_index) if index not in taken]
        view = Availability(free, snapshot.sold.count, snapshot.seat_count)
        if etag := reply.headers.get("etag"):
            self._views[buyer.index] = (etag, view)
        return view


def reads_for(design: Design, sale: Sale) -> AvailabilityReads:
    """The read a design's buyers make: the snapshot where the design has one."""
    seats = {s.id: s for s in sale.seats}
    return SnapshotReads(sale, seats) if design.reads == "snapshot" else SeatMapReads(sale, seats)


def _windows(pool: list[SeatInfo], size: int) -> list[list[SeatInfo]]:
    """Runs of `size` adjacent free seats in one row, in the pool's order of rows."""
    found = []
    for _, row in groupby(pool, key=lambda s: (s.section, s.row)):
        ordered = sorted(row, key=lambda s: s.number)
        for i in range(len(ordered) - size + 1):
            run = ordered[i : i + size]
            if run[-1].number - run[0].number == size - 1:
                found.append(run)
    return found


def choose(free: list[SeatInfo], who: Persona, hot: str, rng: random.Random) -> Ask:
    """The seats a buyer clicks, given what it sees free (never empty)."""
    want = min(who.quantity, len(free))
    in_hot = [s for s in free if s.section == hot]
    if who.taste == "best":
        return Ask(None, want, hot if len(in_hot) >= want else None)
    if who.taste == "front" and len(in_hot) >= want:
        pool = sorted(in_hot, key=lambda s: (s.row_number, s.row, s.number))
        windows = _windows(pool, want)[:FRONT_CHOICES] or [pool[:want]]
    else:
        pool = sorted(free, key=lambda s: (s.section, s.row_number, s.row, s.number))
        windows = _windows(pool, want) or [rng.sample(pool, want)]
    return Ask([s.id for s in rng.choice(windows)], want, None)


class Crowd:
    """The buyers of one client process and what they share: the sale, the design under
    test, the recorder, and `over` (set at the time limit or once a read shows every
    seat sold)."""

    def __init__(
        self, sale: Sale, design: Design, recorder: Recorder, knobs: Knobs, over: asyncio.Event
    ) -> None:
        self.sale, self.design, self.recorder, self.knobs = sale, design, recorder, knobs
        self.over = over
        self.reads = reads_for(design, sale)

    async def nap(self, seconds: float) -> bool:
        """Wait, or less if the sale ends meanwhile; True once it has ended."""
        try:
            await asyncio.wait_for(self.over.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def shop(self, buyer: Buyer) -> None:
        who = persona(self.sale.seed, buyer.index, self.knobs)
        rng = random.Random(f"{self.sale.seed}-{buyer.index}-picks")
        refusals = idle = 0
        if await self.nap(who.arrival):
            self.recorder.outcomes[STILL_TRYING] += 1
            return
        while not self.over.is_set():
            try:
                outcome = await self._try(buyer, who, rng)
            except Conflicted:
                refusals, outcome = refusals + 1, "refused"
            except Busy as busy:
                # Back after Retry-After, spread out so that the crowd does not return at once.
                if await self.nap(busy.retry_after * rng.uniform(1.0, 2.0)):
                    break
                continue
            except WireError:
                outcome = "refused"
            if outcome not in ("refused", "nothing free"):
                self.recorder.outcomes[outcome] += 1
                return
            idle = idle + 1 if outcome == "nothing free" else 0
            if await self.nap(self._backoff(rng, refusals, idle)):
                break
        self.recorder.outcomes[STILL_TRYING] += 1

    def _backoff(self, rng: random.Random, refusals: int, idle: int) -> float:
        """Short after a refusal (seats were there a moment ago), longer and longer while
        nothing is free (seats come back only when holds and bookings run out)."""
        if idle:
            return min(self.knobs.idle_poll_seconds, 0.5 * 2.0**idle) * rng.uniform(0.5, 1.0)
        backoff = self.knobs.retry_seconds * 2.0 ** max(0, refusals - 1)
        return min(MAX_RETRY_SECONDS, backoff) * rng.uniform(0.5, 1.5)

    async def _try(self, buyer: Buyer, who: Persona, rng: random.Random) -> str:
        """One look at the page and one click; the outcome, or "refused"/"nothing free"
        to try again."""
        seen = await self.reads.read(buyer, self.recorder)
        if seen is None:
            return "refused"
        if seen.sold == seen.total:
            self.over.set()
            return "sold out"
        if not seen.free:
            return "nothing free"
        ask = choose(seen.free, who, self.sale.hot_section, rng)
        claim = await self.design.claim(buyer, ask, self.recorder)
        if claim is None:
            return "refused"
        if await self.nap(who.think):
            return "over while thinking"
        return await self._finish(buyer, who, claim)

    async def _finish(self, buyer: Buyer, who: Persona, claim: Claim) -> str:
        design, recorder = self.design, self.recorder
        if who.fate == "release":
            await design.let_go(buyer, claim, recorder)
            return "released"
        if who.fate == "expire":
            return "walked away holding"
        booking_id = await design.book(buyer, claim, recorder)
        if booking_id is None:
            return "refused"
        if who.fate == "unpaid":
            return "booked, never paid"
        if not await pay(buyer, booking_id, recorder):
            return "payment failed"
        recorder.checkout(len(claim.seats))
        return "completed"


async def run(
    buyers: list[Buyer],
    sale: Sale,
    design: Design,
    recorder: Recorder,
    over: asyncio.Event,
    knobs: Knobs,
) -> None:
    crowd = Crowd(sale, design, recorder, knobs, over)
    await asyncio.gather(*(crowd.shop(b) for b in buyers))
