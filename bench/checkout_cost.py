"""What each step of a checkout costs the service: its CPU per request, one step at a time
(every buyer holds, then every buyer books, ...), on one worker, with no other load.

    .venv/bin/python bench/checkout_cost.py --buyers 1500

Steps: a hold of one chosen seat, its booking, the payment's initiation, the sandbox's
checkout page, the verification; then reads of the availability snapshot and of the seat
map of the same event. A warm-up of 100 buyers goes through every step first (statement
caches, connections). The CPU is that of the service's process tree, read from /proc.

With `--baseline`, the baseline app (`bench/baseline_app.py`, one worker too) is measured
as well: its locking transaction, on an event of its own, takes the place of Seatlock's
hold and booking; the payment steps after it are the service's, the same in both designs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import conditions, cpu, loadgen
from bench.wire import Connection
from seatlock.testing import accounts
from seatlock.testing.servers import NO_SHEDDING, SERVERS, Backends, app_server

WARM_UP = 100
CONNECTIONS = 16
READS = 300

# One request of a step for buyer `i`: whether it succeeded. What the next step needs is
# kept on the Checkout; a buyer whose step failed is left out of the steps after it.
Step = Callable[[Connection, int], Awaitable[bool]]


class Checkout:
    """The buyers' state between steps, and the requests of each step."""

    def __init__(self, event_id: str, seats: list[str], people: list[dict[str, str]]) -> None:
        self.event_id, self.seats, self.people = event_id, seats, people
        self.holds: dict[int, str] = {}
        self.bookings: dict[int, str] = {}
        self.payments: dict[int, dict[str, Any]] = {}
        self.callbacks: dict[int, dict[str, str]] = {}

    def keyed(self, i: int) -> dict[str, str]:
        return {**self.people[i], "Idempotency-Key": str(uuid.uuid4())}

    async def lock(self, conn: Connection, i: int) -> bool:
        """The baseline's checkout of seat i: its locking transaction, booking included."""
        path = f"/baseline/events/{self.event_id}/bookings"
        reply = await conn.request("POST", path, {"seat_ids": [self.seats[i]]}, self.people[i])
        return reply.status == 201

    async def hold(self, conn: Connection, i: int) -> bool:
        path = f"/api/events/{self.event_id}/holds"
        reply = await conn.request("POST", path, {"seat_ids": [self.seats[i]]}, self.people[i])
        if reply.status == 201:
            self.holds[i] = reply.json()["id"]
        return reply.status == 201

    async def book(self, conn: Connection, i: int) -> bool:
        body = {"hold_id": self.holds[i]}
        reply = await conn.request("POST", "/api/bookings", body, self.keyed(i))
        if reply.status == 201:
            self.bookings[i] = reply.json()["id"]
        return reply.status == 201

    async def initiate(self, conn: Connection, i: int) -> bool:
        body = {"booking_id": self.bookings[i], "method": "CARD"}
        reply = await conn.request("POST", "/api/payments/initiate", body, self.keyed(i))
        if reply.status == 201:
            self.payments[i] = reply.json()
        return reply.status == 201

    async def sandbox(self, conn: Connection, i: int) -> bool:
        page = urlsplit(self.payments[i]["checkout_url"])
        reply = await conn.request("POST", f"{page.path}/complete?{page.query}")
        if reply.status == 303:
            self.callbacks[i] = dict(parse_qsl(urlsplit(reply.headers["location"]).query))
        return reply.status == 303

    async def verify(self, conn: Connection, i: int) -> bool:
        body = {"payment_id": self.payments[i]["id"], "callback": self.callbacks[i]}
        reply = await conn.request("POST", "/api/payments/verify", body, self.people[i])
        return reply.status == 200 and reply.json()["status"] == "succeeded"

    async def snapshot(self, conn: Connection, i: int) -> bool:
        reply = await conn.request("GET", f"/api/events/{self.event_id}/availability")
        return reply.status == 200

    async def seat_map(self, conn: Connection, i: int) -> bool:
        reply = await conn.request("GET", f"/api/events/{self.event_id}/seats")
        return reply.status == 200

    def steps(self) -> list[tuple[str, Step]]:
        return [
            ("hold", self.hold),
            ("book", self.book),
            ("initiate", self.initiate),
            ("sandbox_complete", self.sandbox),
            ("verify", self.verify),
        ]

    def reads(self) -> list[tuple[str, Step]]:
        return [("snapshot", self.snapshot), ("seat_map", self.seat_map)]


async def _run(conns: list[Connection], step: Step, buyers: list[int]) -> list[int]:
    """Every buyer's request of `step`, over the connections; the buyers it succeeded for."""
    queue = list(buyers)
    succeeded: list[int] = []

    async def drain(conn: Connection) -> None:
        while queue:
            buyer = queue.pop()
            if await step(conn, buyer):
                succeeded.append(buyer)

    await asyncio.gather(*(drain(c) for c in conns))
    return succeeded


@asynccontextmanager
async def _connections(base_url: str) -> AsyncIterator[list[Connection]]:
    conns = [Connection(base_url) for _ in range(CONNECTIONS)]
    try:
        for conn in conns:
            await conn.open()
        yield conns
    finally:
        for conn in conns:
            conn.close()


async def measure(
    base_url: str,
    backends: Backends,
    buyers: int,
    warm_up: int = WARM_UP,
    reads: int = READS,
    baseline_url: str | None = None,
) -> list[dict[str, Any]]:
    """Each step's figures; with `baseline_url`, then those of the baseline's locking
    transaction (step `baseline_lock_txn`)."""
    total = warm_up + buyers
    async with loadgen.event_on_sale(base_url, backends, total) as (engine, event_id, seats):
        people = await accounts.mint_accounts(engine, backends.jwt_secret, total)
    checkout = Checkout(event_id, [s.id for s in seats], people)
    service = cpu.roots_by_url({"service": base_url})["service"]
    figures = []
    async with _connections(base_url) as conns:
        warming = list(range(warm_up))
        for _, step in checkout.steps():
            warming = await _run(conns, step, warming)
        for _, step in checkout.reads():
            await _run(conns, step, list(range(warm_up)))
        going_on = list(range(warm_up, total))
        for name, step in checkout.steps():
            found, going_on = await _measured(conns, service, name, step, going_on)
            figures.append(found)
        for name, step in checkout.reads():
            figures.append((await _measured(conns, service, name, step, list(range(reads))))[0])
    if baseline_url is not None:
        figures.append(await _baseline_lock(base_url, baseline_url, backends, people, warm_up))
    return figures


async def _baseline_lock(
    base_url: str,
    baseline_url: str,
    backends: Backends,
    people: list[dict[str, str]],
    warm_up: int,
) -> dict[str, Any]:
    """The baseline's locking transaction for every buyer, each on a seat of its own of a
    fresh event, after a warm-up: its figures, on the baseline app's process tree."""
    async with loadgen.event_on_sale(base_url, backends, len(people)) as (_, event_id, seats):
        checkout = Checkout(event_id, [s.id for s in seats], people)
    baseline = cpu.roots_by_url({"baseline": baseline_url})["baseline"]
    measured = list(range(warm_up, len(people)))
    async with _connections(baseline_url) as conns:
        await _run(conns, checkout.lock, list(range(warm_up)))
        found, _ = await _measured(conns, baseline, "baseline_lock_txn", checkout.lock, measured)
    return found


async def _measured(
    conns: list[Connection], service: int, name: str, step: Step, buyers: list[int]
) -> tuple[dict[str, Any], list[int]]:
    """A step's figures, and the buyers it succeeded for (the only ones the next step
    takes)."""
    ticks, started = cpu.tree_ticks(service), time.monotonic()
    succeeded = await _run(conns, step, buyers)
    seconds = time.monotonic() - started
    used = (cpu.tree_ticks(service) - ticks) / cpu.TICK
    found = {
        "step": name,
        "requests": len(buyers),
        "ok": len(succeeded),
        "cpu_ms_per_request": round(1000 * used / max(1, len(buyers)), 2),
        "requests_per_s": round(len(buyers) / seconds, 1),
    }
    loadgen.progress(f"{name}: {found}")
    return found, succeeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=1500)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument(
        "--baseline", action="store_true", help="measure the baseline's locking transaction too"
    )
    parser.add_argument("--json", dest="json_path", help="write the result as JSON here")
    args = parser.parse_args()
    before = conditions.machine()
    with ExitStack() as stack:
        backends, base_url = stack.enter_context(loadgen.service(1, args.server))
        baseline_url = None
        if args.baseline:
            baseline_url = stack.enter_context(
                app_server("bench.baseline_app:create_app", backends, 1, NO_SHEDDING, args.server)
            )
        figures = asyncio.run(measure(base_url, backends, args.buyers, baseline_url=baseline_url))
    print(f"One {args.server} worker, {CONNECTIONS} connections, {args.buyers} buyers.")
    print("| step | requests | ok | service CPU per request (ms) | requests/s |")
    print("|---|---|---|---|---|")
    for f in figures:
        print(
            f"| {f['step']} | {f['requests']} | {f['ok']} | {f['cpu_ms_per_request']} "
            f"| {f['requests_per_s']} |"
        )
    conditions.save({"machine": before, "steps": figures}, args.json_path)


if __name__ == "__main__":
    main()
