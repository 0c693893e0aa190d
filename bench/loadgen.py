"""Small pieces the micro-benchmarks share: a service on embedded servers with an event on
sale, and a closed-loop load phase of C concurrent callers, one connection each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import sale
from bench.recorder import summary
from bench.sale import SeatInfo
from seatlock.models import Role
from seatlock.testing import accounts
from seatlock.testing.servers import Backends, app_server, embedded_backends

Call = Callable[[httpx.AsyncClient, int], Awaitable[bool]]


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


def client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60)


async def phase(
    name: str,
    clients: list[httpx.AsyncClient],
    seconds: float,
    call: Call,
    stop_when: Callable[[], bool] = lambda: False,
) -> Phase:
    """Every client calls back to back for `seconds` (or until `stop_when`)."""
    result = Phase(name, 0, 0, 0.0, [])
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(index: int, http: httpx.AsyncClient) -> None:
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


@contextmanager
def service(workers: int, server: str) -> Iterator[tuple[Backends, str]]:
    """Embedded PostgreSQL and Valkey, and the service on `workers` workers: its URL."""
    with (
        embedded_backends() as backends,
        app_server("seatlock.app:create_app", backends, workers, server=server) as url,
    ):
        yield backends, url
