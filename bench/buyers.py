"""Buyers of a flash sale: each loops over pick seats, reserve them, pay, until the sale
is over. Reserving is the step under comparison: a Redis hold then a booking (Seatlock),
or one locking PostgreSQL transaction (the baseline)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.recorder import Recorder

# How a buyer picks seats: chosen seats in the hot section, anywhere, or best available.
STRATEGIES = (("hot", 0.4), ("random", 0.3), ("best", 0.3))
MAX_SEATS_PER_TRY = 4


@dataclass(frozen=True)
class SeatInfo:
    id: str
    section: str
    row: str
    number: int


@dataclass(frozen=True)
class Ask:
    """One try: chosen seats, or a quantity (best available, in a section or anywhere)."""

    seat_ids: list[str] | None
    quantity: int
    section: str | None

    def body(self) -> dict[str, Any]:
        if self.seat_ids is not None:
            return {"seat_ids": self.seat_ids}
        body: dict[str, Any] = {"quantity": self.quantity}
        if self.section is not None:
            body["section"] = self.section
        return body


class Board:
    """What the buyers believe is still free, shared by all of them like a seat map that
    refreshes itself: seats leave it when a buyer gets them or learns they are taken."""

    def __init__(self, seats: list[SeatInfo], hot_section: str) -> None:
        self.seats = {s.id: s for s in seats}
        self.free = set(self.seats)
        self.hot_section = hot_section
        self.sections = sorted({s.section for s in seats})
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
        pool = list(self.free)
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


@dataclass(frozen=True)
class Shopper:
    """One buyer: its token and its own keep-alive connections (one client each, since
    httpx's connection pool costs time in its size on every request)."""

    headers: dict[str, str]
    service: httpx.AsyncClient
    baseline: httpx.AsyncClient | None = None


@dataclass(frozen=True)
class Reserved:
    booking_id: str
    seats: list[str]


Reserve = Callable[[Shopper, Ask, Recorder], Awaitable["Reserved | None"]]


def _conflicts(response: httpx.Response) -> list[str]:
    try:
        found = response.json().get("conflicts", [])
    except ValueError:
        return []
    return [str(s) for s in found] if isinstance(found, list) else []


def _failed(recorder: Recorder, step: str, response: httpx.Response) -> None:
    recorder.error(step, f"HTTP {response.status_code}")


def seatlock_reserve(event_id: str) -> Reserve:
    """Hold the seats in Redis, then book the hold (Seatlock's design)."""

    async def reserve(shopper: Shopper, ask: Ask, recorder: Recorder) -> Reserved | None:
        client, buyer = shopper.service, shopper.headers
        started = time.perf_counter()
        response = await client.post(
            f"/api/events/{event_id}/holds", json=ask.body(), headers=buyer
        )
        recorder.latency("hold", started)
        recorder.contended_step(started, response.status_code == 201)
        if response.status_code == 409:
            recorder.conflicts["hold"] += 1
            raise Conflicted(_conflicts(response))
        if response.status_code != 201:
            _failed(recorder, "hold", response)
            return None
        hold = response.json()
        started = time.perf_counter()
        response = await client.post(
            "/api/bookings",
            json={"hold_id": hold["id"]},
            headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
        )
        recorder.latency("book", started)
        if response.status_code == 409:
            recorder.conflicts["book"] += 1
            raise Conflicted(_conflicts(response), seats=hold["seats"])
        if response.status_code != 201:
            _failed(recorder, "book", response)
            return None
        return Reserved(response.json()["id"], [str(s) for s in hold["seats"]])

    return reserve


def baseline_reserve(event_id: str) -> Reserve:
    """One PostgreSQL transaction locking the seat rows (the baseline design)."""

    async def reserve(shopper: Shopper, ask: Ask, recorder: Recorder) -> Reserved | None:
        assert shopper.baseline is not None
        started = time.perf_counter()
        response = await shopper.baseline.post(
            f"/baseline/events/{event_id}/bookings", json=ask.body(), headers=shopper.headers
        )
        recorder.latency("lock_txn", started)
        recorder.contended_step(started, response.status_code == 201)
        if response.status_code == 409:
            recorder.conflicts["lock_txn"] += 1
            raise Conflicted(_conflicts(response))
        if response.status_code != 201:
            _failed(recorder, "lock_txn", response)
            return None
        booking = response.json()
        return Reserved(booking["id"], [str(s) for s in booking["seats"]])

    return reserve


class Conflicted(Exception):
    def __init__(self, taken: list[str], seats: list[str] | None = None) -> None:
        super().__init__("conflict")
        self.taken = taken
        self.seats = seats or []


async def pay(
    client: httpx.AsyncClient, buyer: dict[str, str], booking_id: str, recorder: Recorder
) -> bool:
    """Pay a booking through the sandbox provider, as a frontend would."""
    started = time.perf_counter()
    response = await client.post(
        "/api/payments/initiate",
        json={"booking_id": booking_id, "method": "CARD"},
        headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
    )
    recorder.latency("initiate", started)
    if response.status_code != 201:
        _failed(recorder, "initiate", response)
        return False
    payment = response.json()
    started = time.perf_counter()
    response = await client.post(f"{urlsplit(payment['checkout_url']).path}/complete")
    recorder.latency("sandbox_complete", started)
    if response.status_code != 200:
        _failed(recorder, "sandbox_complete", response)
        return False
    started = time.perf_counter()
    response = await client.post(
        "/api/payments/verify",
        json={"payment_id": payment["id"], "callback": response.json()},
        headers=buyer,
    )
    recorder.latency("verify", started)
    if response.status_code != 200 or response.json().get("status") != "succeeded":
        _failed(recorder, "verify", response)
        return False
    return True


async def buyer_loop(
    shopper: Shopper,
    board: Board,
    reserve: Reserve,
    recorder: Recorder,
    rng: random.Random,
    deadline: float,
    capacity: int,
) -> None:
    while time.perf_counter() < deadline:
        ask = board.pick(rng)
        if ask is None:
            if board.in_flight == 0:
                return
            await asyncio.sleep(0.02)
            continue
        board.take(ask.seat_ids or [])
        board.in_flight += 1
        try:
            reserved = await reserve(shopper, ask, recorder)
            if reserved is None:
                board.give_back(ask.seat_ids or [], [])
                continue
            board.take(reserved.seats)
            if await pay(shopper.service, shopper.headers, reserved.booking_id, recorder):
                recorder.checkout(len(reserved.seats), capacity)
        except Conflicted as conflict:
            board.give_back((ask.seat_ids or []) + conflict.seats, conflict.taken)
        except httpx.HTTPError as exc:
            recorder.error("transport", type(exc).__name__)
            board.give_back(ask.seat_ids or [], [])
        finally:
            board.in_flight -= 1
