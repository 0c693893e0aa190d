"""Small pieces the micro-benchmarks share: a service on embedded servers with an event on
sale, and a closed-loop load phase of C concurrent callers, one connection each."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import cpu, sale
from bench.recorder import summary
from bench.sale import SeatInfo
from bench.wire import Connection, WireError
from seatlock.models import Role
from seatlock.testing import accounts
from seatlock.testing.servers import NO_SHEDDING, Backends, app_server, embedded_backends

_STARTED = time.monotonic()


def progress(line: str) -> None:
    """A progress line on stderr, with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {line}", file=sys.stderr, flush=True)


# A caller's connection: an httpx client, or a bench/wire.py connection.
C = TypeVar("C")


@dataclass
class Phase:
    name: str
    ok: int
    failed: int
    seconds: float
    latencies: list[float]

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.ok + self.failed,
            "ok": self.ok,
            "failed": self.failed,
            "requests_per_s": round((self.ok + self.failed) / self.seconds, 1),
            "latency_ms": summary(self.latencies),
        }


@dataclass
class HoldCycles:
    """Holds and releases through bench/wire.py connections: each hold's seat and the
    moment its 201 arrived, in order, and how many answers were anything else."""

    made: list[tuple[str, float]] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)

    async def cycle(
        self, conn: Connection, headers: dict[str, str], event_id: str, seat: str, pause: float
    ) -> bool:
        """Hold one seat, wait `pause`, release it, wait `pause`. True when both went
        through, or the seat was taken (409)."""
        try:
            reply = await conn.request(
                "POST", f"/api/events/{event_id}/holds", {"seat_ids": [seat]}, headers
            )
            ok = reply.status == 409
            if reply.status == 201:
                self.made.append((seat, time.monotonic()))
                await asyncio.sleep(pause)
                path = f"/api/holds/{reply.json()['id']}"
                released = await conn.request("DELETE", path, None, headers)
                ok = released.status == 204
                if not ok:
                    self.tally[f"release HTTP {released.status}"] += 1
            elif not ok:
                self.tally[f"hold HTTP {reply.status}"] += 1
        except WireError as exc:
            ok = False
            self.tally[f"transport {exc}"] += 1
        await asyncio.sleep(pause)
        return ok


def combined(name: str, phases: list[Phase]) -> Phase:
    """Phases of the same calls (e.g. rounds of a run) as one."""
    return Phase(
        name,
        sum(p.ok for p in phases),
        sum(p.failed for p in phases),
        sum(p.seconds for p in phases),
        [ms for p in phases for ms in p.latencies],
    )


def client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60)


async def phase(
    name: str,
    clients: list[C],
    seconds: float,
    call: Callable[[C, int], Awaitable[bool]],
    stop_when: Callable[[], bool] = lambda: False,
) -> Phase:
    """Every client calls back to back for `seconds` (or until `stop_when`)."""
    result = Phase(name, 0, 0, 0.0, [])
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(index: int, http: C) -> None:
        while time.perf_counter() < deadline and not stop_when():
            begun = time.perf_counter()
            ok = await call(http, index)
            result.latencies.append((time.perf_counter() - begun) * 1000)
            result.ok += ok
            result.failed += not ok

    await asyncio.gather(*(loop(i, c) for i, c in enumerate(clients)))
    result.seconds = time.perf_counter() - started
    return result


@asynccontextmanager
async def event_on_sale(
    base_url: str, backends: Backends, seats: int
) -> AsyncIterator[tuple[AsyncEngine, str, list[SeatInfo]]]:
    engine = create_async_engine(backends.database_url, poolclass=NullPool)
    try:
        (organizer,) = await accounts.mint_accounts(engine, backends.jwt_secret, 1, Role.ORGANIZER)
        async with client(base_url) as http:
            event_id, seat_list = await sale.create_event(http, organizer, seats, "Micro")
        yield engine, event_id, seat_list
    finally:
        await engine.dispose()


def roots(base_url: str, backends: Backends) -> dict[str, int]:
    """The processes whose CPU a phase reports: the service, PostgreSQL and Valkey."""
    return cpu.roots_by_url(
        {"service": base_url, "postgresql": backends.database_url, "valkey": backends.redis_url}
    )


@contextmanager
def service(workers: int, server: str) -> Iterator[tuple[Backends, str]]:
    """Embedded PostgreSQL and Valkey, and the service on `workers` workers: its URL. It
    sheds no load: these benchmarks measure what a path costs, every request queued."""
    with (
        embedded_backends() as backends,
        app_server("seatlock.app:create_app", backends, workers, NO_SHEDDING, server) as url,
    ):
        yield backends, url
