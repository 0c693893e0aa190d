"""The requests of one checkout, for both designs under comparison. Claiming seats is the
contended step: a Redis hold (Seatlock), or one PostgreSQL transaction that locks the
seat rows and books them (the baseline, bench/baseline_app.py). Paying goes through the
service's sandbox provider in both."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import msgspec

from bench.recorder import Recorder
from bench.sale import SeatInfo
from bench.wire import Connection, Reply, WireError


@dataclass(frozen=True)
class Sale:
    """What every buyer of one run knows: the event and its seats."""

    event_id: str
    seats: list[SeatInfo]
    hot_section: str
    seed: int


@dataclass(frozen=True)
class Buyer:
    """One buyer: its token and its own keep-alive connections: to the service, and to
    the server of the contended step where it has one of its own (the baseline app; with
    `--separate-holds`, a second Seatlock server that takes the holds)."""

    index: int
    headers: dict[str, str]
    service: Connection
    contended: Connection | None = None


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


@dataclass(frozen=True)
class Claim:
    """Seats a buyer got in the contended step: a hold, or the baseline's booking."""

    id: str
    seats: list[str]


class Conflicted(Exception):
    """A 409: `taken` are the seats the answer named, `seats` those the buyer had."""

    def __init__(self, taken: list[str], seats: list[str] | None = None) -> None:
        super().__init__("conflict")
        self.taken = taken
        self.seats = seats or []


class Busy(Exception):
    """A 503 that says when to come back (Retry-After): the buyer waits, then tries again."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


# A step answered 503 is recorded under the step's name and this suffix, so that the
# step's own latencies are those of its answers.
BUSY_SUFFIX = "_busy"


def busy_steps(step: str) -> dict[int, str]:
    return {503: step + BUSY_SUFFIX}


# The problem type of a request a worker shed (seatlock/shedding.py).
SHED = "/problems/overloaded"


def raise_if_busy(recorder: Recorder, step: str, reply: Reply) -> None:
    """A 503 with Retry-After is raised as Busy: the buyer comes back then. A shed request
    is counted as such, any other 503 (an outage, no free database connection) as an
    error."""
    retry_after = reply.headers.get("retry-after")
    if reply.status != 503 or retry_after is None:
        return
    if _problem_type(reply) == SHED:
        recorder.busy[step] += 1
    else:
        recorder.error(step, "HTTP 503")
    raise Busy(float(retry_after))


def _problem_type(reply: Reply) -> str | None:
    try:
        found = reply.json().get("type")
    except (msgspec.DecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


async def timed(
    recorder: Recorder,
    step: str,
    conn: Connection,
    method: str,
    path: str,
    json: Any = None,
    headers: dict[str, str] | None = None,
    steps_by_status: Mapping[int, str] | None = None,
) -> Reply:
    """One request, its latency recorded under `step` (or the step `steps_by_status` names
    for the answer's status); a failed transport counts as an error of `step` and is
    raised again."""
    started = time.monotonic()
    try:
        reply = await conn.request(method, path, json, headers)
    except WireError as exc:
        recorder.error(step, f"transport {exc}")
        raise
    recorder.latency((steps_by_status or {}).get(reply.status, step), started)
    return reply


# A booking or a payment step answered 503 with Retry-After (no database connection free
# in time, say) is sent again as it was, Idempotency-Key included, once that wait is over,
# as a frontend does: at most this many times.
MAX_RESENDS = 5


async def sent_until_answered(
    recorder: Recorder,
    step: str,
    conn: Connection,
    method: str,
    path: str,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """A request of a step that the buyer does not give up when told to come back: each
    503 with Retry-After is counted (`resent`) and waited out, and the same request sent
    again, up to MAX_RESENDS times; the last answer is returned as it is."""
    for _ in range(MAX_RESENDS):
        reply = await timed(recorder, step, conn, method, path, json, headers, busy_steps(step))
        retry_after = reply.headers.get("retry-after")
        if reply.status != 503 or retry_after is None:
            return reply
        recorder.resent[step] += 1
        await asyncio.sleep(float(retry_after))
    return await timed(recorder, step, conn, method, path, json, headers, busy_steps(step))


def _conflicts(reply: Reply) -> list[str]:
    try:
        found = reply.json().get("conflicts", [])
    except (msgspec.DecodeError, AttributeError):
        return []
    return [str(s) for s in found] if isinstance(found, list) else []


def settled(recorder: Recorder, step: str, reply: Reply, ok: int) -> bool:
    """True on the expected status; a 409 counts as a conflict, anything else an error."""
    if reply.status == ok:
        return True
    if reply.status == 409:
        recorder.conflicts[step] += 1
    else:
        recorder.error(step, f"HTTP {reply.status}")
    return False


def refused(reply: Reply, seats: list[str] | None = None) -> None:
    """A refusal of a step that buyers compete for: raise it, with the seats it names."""
    if reply.status == 409:
        raise Conflicted(_conflicts(reply), seats)


async def contend(
    recorder: Recorder, step: str, conn: Connection, path: str, buyer: Buyer, ask: Ask
) -> Claim | None:
    """The contended step of either design: POST the ask, get an id and seats."""
    started = time.monotonic()
    reply = await timed(
        recorder, step, conn, "POST", path, ask.body(), buyer.headers, busy_steps(step)
    )
    raise_if_busy(recorder, step, reply)
    recorder.contended_step(started, reply.status == 201)
    if not settled(recorder, step, reply, 201):
        refused(reply)
        return None
    answer = reply.json()
    return Claim(answer["id"], [str(s) for s in answer["seats"]])


# What a buyer's page reads to learn which seats are free: Seatlock's availability
# snapshot (with the layout, once), or the full seat map, which plain PostgreSQL serves.
Reads = Literal["snapshot", "seat_map"]


class Design(Protocol):
    @property
    def mode(self) -> str: ...

    @property
    def contended_step(self) -> str: ...

    @property
    def reads(self) -> Reads: ...

    async def claim(self, buyer: Buyer, ask: Ask, recorder: Recorder) -> Claim | None: ...

    async def book(self, buyer: Buyer, claim: Claim, recorder: Recorder) -> str | None: ...

    async def let_go(self, buyer: Buyer, claim: Claim, recorder: Recorder) -> None: ...


@dataclass(frozen=True)
class HoldThenBook:
    """Seatlock: hold the seats in Redis, then book the hold in PostgreSQL."""

    event_id: str
    mode: str = "redis"
    contended_step: str = "hold"
    reads: Reads = "snapshot"

    async def claim(self, buyer: Buyer, ask: Ask, recorder: Recorder) -> Claim | None:
        path = f"/api/events/{self.event_id}/holds"
        return await contend(recorder, "hold", buyer.contended or buyer.service, path, buyer, ask)

    async def book(self, buyer: Buyer, claim: Claim, recorder: Recorder) -> str | None:
        headers = {**buyer.headers, "Idempotency-Key": str(uuid.uuid4())}
        body = {"hold_id": claim.id}
        reply = await sent_until_answered(
            recorder, "book", buyer.service, "POST", "/api/bookings", body, headers
        )
        if not settled(recorder, "book", reply, 201):
            refused(reply, claim.seats)
            return None
        return str(reply.json()["id"])

    async def let_go(self, buyer: Buyer, claim: Claim, recorder: Recorder) -> None:
        path = f"/api/holds/{claim.id}"
        reply = await timed(recorder, "release", buyer.service, "DELETE", path, None, buyer.headers)
        settled(recorder, "release", reply, 204)


@dataclass(frozen=True)
class LockAndBook:
    """The baseline: one transaction locks the free seat rows and books them; letting go
    is cancelling that booking through the service."""

    event_id: str
    mode: str = "baseline"
    contended_step: str = "lock_txn"
    reads: Reads = "seat_map"

    async def claim(self, buyer: Buyer, ask: Ask, recorder: Recorder) -> Claim | None:
        assert buyer.contended is not None
        path = f"/baseline/events/{self.event_id}/bookings"
        return await contend(recorder, "lock_txn", buyer.contended, path, buyer, ask)

    async def book(self, buyer: Buyer, claim: Claim, recorder: Recorder) -> str | None:
        return claim.id

    async def let_go(self, buyer: Buyer, claim: Claim, recorder: Recorder) -> None:
        path = f"/api/bookings/{claim.id}"
        reply = await timed(recorder, "cancel", buyer.service, "DELETE", path, None, buyer.headers)
        settled(recorder, "cancel", reply, 200)


def design(mode: str, event_id: str) -> Design:
    return LockAndBook(event_id) if mode == "baseline" else HoldThenBook(event_id)


async def pay(buyer: Buyer, booking_id: str, recorder: Recorder) -> bool:
    """Pay a booking through the sandbox provider, as a frontend would."""
    conn, headers = buyer.service, buyer.headers
    body = {"booking_id": booking_id, "method": "CARD"}
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    path = "/api/payments/initiate"
    reply = await sent_until_answered(recorder, "initiate", conn, "POST", path, body, keyed)
    if not settled(recorder, "initiate", reply, 201):
        return False
    payment = reply.json()
    page = urlsplit(payment["checkout_url"])
    path = f"{page.path}/complete?{page.query}"
    reply = await sent_until_answered(recorder, "sandbox_complete", conn, "POST", path)
    if not settled(recorder, "sandbox_complete", reply, 303):
        return False
    # The sandbox sends the browser back with the signed callback in the query string.
    callback = dict(parse_qsl(urlsplit(reply.headers["location"]).query))
    verify: dict[str, Any] = {"payment_id": payment["id"], "callback": callback}
    path = "/api/payments/verify"
    reply = await sent_until_answered(recorder, "verify", conn, "POST", path, verify, headers)
    if not settled(recorder, "verify", reply, 200):
        return False
    if reply.json().get("status") != "succeeded":
        recorder.error("verify", "not succeeded")
        return False
    return True
