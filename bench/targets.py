"""Where a flash-sale run sends its load: the service and the baseline app (started here on
embedded servers, or running already), their database, and the accounts that buy."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import cpu, sale
from bench.sale import SeatInfo
from seatlock.models import Role
from seatlock.testing import accounts
from seatlock.testing.servers import Backends, app_server, embedded_backends

# Concurrent requests that open the servers' database connections before the start.
WARM_UP_PER_WORKER = 16
WARM_UP_ROUNDS = 10


class Wanted(Protocol):
    base_url: str | None
    baseline_url: str | None
    database_url: str | None
    jwt_secret: str | None
    modes: tuple[str, ...]
    workers: int
    server: str
    separate_holds: bool


@dataclass
class Target:
    service: str
    baseline: str | None
    database_url: str
    redis_url: str | None
    jwt_secret: str | None
    owned: bool
    # A second service server that takes only the holds (`--separate-holds`).
    holds: str | None = None
    organizer: dict[str, str] = field(default_factory=dict)
    buyers: list[dict[str, str]] = field(default_factory=list)

    def process_roots(self) -> dict[str, int]:
        """The processes whose CPU a run reports, found by the ports they listen on."""
        return cpu.roots_by_url(
            {
                "service": self.service,
                "holds": self.holds,
                "baseline": self.baseline,
                "postgresql": self.database_url,
                "valkey": self.redis_url,
            }
        )


def _local(url: str | None) -> None:
    if url and not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("load tests only target this machine (127.0.0.1)")


def start(stack: ExitStack, wanted: Wanted) -> Target:
    """Start what `wanted` does not name as running; stopped when `stack` closes."""
    _local(wanted.base_url)
    _local(wanted.baseline_url)
    if wanted.base_url is None:
        backends = stack.enter_context(embedded_backends())
        service = stack.enter_context(
            app_server("seatlock.app:create_app", backends, wanted.workers, server=wanted.server)
        )
        target = Target(
            service, None, backends.database_url, backends.redis_url, backends.jwt_secret, True
        )
    else:
        if wanted.database_url is None:
            raise SystemExit("--base-url needs --database-url (oracle and pg_stat_database)")
        target = Target(wanted.base_url, None, wanted.database_url, None, wanted.jwt_secret, False)
        backends = Backends(wanted.database_url, "", wanted.jwt_secret or "", False)
    if "baseline" in wanted.modes:
        if wanted.baseline_url:
            target.baseline = wanted.baseline_url
        elif not backends.jwt_secret:
            raise SystemExit("baseline mode against --base-url needs --jwt-secret")
        else:
            target.baseline = stack.enter_context(
                app_server(
                    "bench.baseline_app:create_app", backends, wanted.workers, server=wanted.server
                )
            )
    if wanted.separate_holds and "redis" in wanted.modes:
        if not target.owned:
            raise SystemExit("--separate-holds starts its servers here: not with --base-url")
        target.holds = stack.enter_context(
            app_server("seatlock.app:create_app", backends, wanted.workers, server=wanted.server)
        )
    return target


def setup_client(base_url: str) -> httpx.AsyncClient:
    """For the set-up only; the load goes through bench/wire.py."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120)


async def sign_up(target: Target, engine: AsyncEngine, buyers: int) -> None:
    """The organizer and the buyers: minted straight into PostgreSQL when the benchmark
    knows the JWT secret of servers it started, else registered through the API."""
    if target.owned and target.jwt_secret:
        secret = target.jwt_secret
        (target.organizer,) = await accounts.mint_accounts(engine, secret, 1, Role.ORGANIZER)
        target.buyers = await accounts.mint_accounts(engine, secret, buyers)
        return
    async with setup_client(target.service) as client:
        (target.organizer,) = await accounts.register_accounts(client, engine, 1, Role.ORGANIZER)
        target.buyers = await accounts.register_accounts(client, engine, buyers)


async def new_event(
    target: Target, seats: int, mode: str, policy: dict[str, int] | None
) -> tuple[str, list[SeatInfo]]:
    async with setup_client(target.service) as client:
        return await sale.create_event(
            client, target.organizer, seats, f"Flash sale ({mode})", policy
        )


async def _statuses(
    base_url: str, requests: int, method: str, path: str, headers: dict[str, str], json: Any = None
) -> set[int]:
    async with setup_client(base_url) as client:
        replies = await asyncio.gather(
            *(client.request(method, path, headers=headers, json=json) for _ in range(requests))
        )
    return {r.status_code for r in replies}


async def warm(
    services: list[str], baseline: str | None, headers: dict[str, str], workers: int
) -> None:
    """Open the servers' database pools, until every request of a round succeeds: a pool
    whose connections were ended answers once 503 (or 500, the baseline), then reconnects."""
    requests = WARM_UP_PER_WORKER * workers
    for _ in range(WARM_UP_ROUNDS):
        ok = True
        for service in services:
            ok &= await _statuses(service, requests, "GET", "/api/events", {}) == {200}
        if baseline:
            # An unknown event: one query each, answered 404.
            path = f"/baseline/events/{uuid.uuid4()}/bookings"
            body = {"quantity": 1}
            ok &= await _statuses(baseline, requests, "POST", path, headers, body) == {404}
        if ok:
            return
    raise RuntimeError("the servers keep failing after their pools were emptied")
