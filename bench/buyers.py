"""The spread scenario: a few hundred buyers over a large event, sharing a board of the
seats they believe free (like a seat map that refreshes itself), each looping over pick
seats, claim them, pay, until the seats are gone or the time is up."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from bench.recorder import Recorder
from bench.sale import SeatInfo
from bench.steps import Ask, Busy, Buyer, Conflicted, Design, Sale, pay
from bench.wire import WireError

# How a buyer picks seats: chosen seats in the hot section, anywhere, or best available.
STRATEGIES = (("hot", 0.4), ("random", 0.3), ("best", 0.3))
MAX_SEATS_PER_TRY = 4


class Board:
    """What the buyers believe is still free: seats leave it when a buyer gets them or
    learns they are taken. Shared by the buyers of one client process."""

    def __init__(self, seats: list[SeatInfo], hot_section: str) -> None:
        self.seats = {s.id: s for s in seats}
        self.order = {s.id: n for n, s in enumerate(seats)}
        self.free = set(self.seats)
        self.hot_section = hot_section
        self.rows: defaultdict[tuple[str, str], dict[int, str]] = defaultdict(dict)
        for s in seats:
            self.rows[(s.section, s.row)][s.number] = s.id
        self.in_flight = 0

    def pick(self, rng: random.Random) -> Ask | None:
        if not self.free:
            return None
        want = min(rng.randint(1, MAX_SEATS_PER_TRY), len(self.free))
        strategy = rng.choices([s for s, _ in STRATEGIES], [w for _, w in STRATEGIES])[0]
        if strategy == "best":
            section = self.hot_section if rng.random() < 0.5 else None
            return Ask(None, want, section)
        # In seat order, not set order: the same seed then picks the same places in
        # both modes, whose events have different seat ids.
        pool = sorted(self.free, key=self.order.__getitem__)
        if strategy == "hot":
            hot = [i for i in pool if self.seats[i].section == self.hot_section]
            pool = hot or pool
        return Ask(self._adjacent(rng, pool, want), want, None)

    def _adjacent(self, rng: random.Random, pool: list[str], want: int) -> list[str]:
        """A random free seat and its free neighbours in the row, topped up from the pool."""
        first = self.seats[rng.choice(pool)]
        row = self.rows[(first.section, first.row)]
        chosen = [first.id]
        for number in range(first.number + 1, first.number + want):
            seat = row.get(number)
            if seat is None or seat not in self.free or len(chosen) == want:
                break
            chosen.append(seat)
        rest = [i for i in rng.sample(pool, min(len(pool), want * 3)) if i not in chosen]
        return (chosen + rest)[:want]

    def take(self, seat_ids: list[str]) -> None:
        self.free.difference_update(seat_ids)

    def give_back(self, seat_ids: list[str], taken: list[str]) -> None:
        """After a failed try: the seats it learnt are taken stay out, the others return."""
        lost = set(taken)
        self.free.update(s for s in seat_ids if s not in lost and s in self.seats)
        self.free.difference_update(lost)


async def _try_once(
    buyer: Buyer, board: Board, ask: Ask, design: Design, recorder: Recorder
) -> None:
    """Claim, book and pay; the board learns what the answers say."""
    try:
        claim = await design.claim(buyer, ask, recorder)
        if claim is None:
            board.give_back(ask.seat_ids or [], [])
            return
        board.take(claim.seats)
        booking_id = await design.book(buyer, claim, recorder)
        if booking_id is not None and await pay(buyer, booking_id, recorder):
            recorder.checkout(len(claim.seats))
    except Conflicted as conflict:
        board.give_back((ask.seat_ids or []) + conflict.seats, conflict.taken)
    except WireError:
        board.give_back(ask.seat_ids or [], [])
    except Busy as busy:
        board.give_back(ask.seat_ids or [], [])
        await asyncio.sleep(busy.retry_after)


async def buyer_loop(
    buyer: Buyer,
    board: Board,
    design: Design,
    recorder: Recorder,
    rng: random.Random,
    over: asyncio.Event,
) -> None:
    while not over.is_set():
        ask = board.pick(rng)
        if ask is None:
            if board.in_flight == 0:
                return
            await asyncio.sleep(0.02)
            continue
        board.take(ask.seat_ids or [])
        board.in_flight += 1
        try:
            await _try_once(buyer, board, ask, design, recorder)
        finally:
            board.in_flight -= 1


async def run(
    buyers: list[Buyer], sale: Sale, design: Design, recorder: Recorder, over: asyncio.Event
) -> None:
    board = Board(sale.seats, sale.hot_section)
    await asyncio.gather(
        *(
            buyer_loop(b, board, design, recorder, random.Random(f"{sale.seed}-{b.index}"), over)
            for b in buyers
        )
    )
