"""Costs against an event's size, in one run on one service worker:

- best available (`quantity: 4`) on a 2,000-seat and a 100,000-seat event, from one client
  and from 16 concurrent clients: p50 and p99 of the hold, and how many were served;
- a worker's memory (RSS) after holds on one 100,000-seat event and after holds on 20
  (those events are written straight into PostgreSQL, so that building their seat maps is
  not counted against the worker).

Usage: .venv/bin/python bench/scale.py --json scale.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
from sqlalchemy import NullPool, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import conditions, cpu, loadgen, sale
from seatlock.auth.tokens import Principal
from seatlock.events import events
from seatlock.events.events import EventCreate
from seatlock.models import Event, EventStatus, Role, User
from seatlock.testing import accounts
from seatlock.testing.servers import Backends

SMALL, LARGE = 2_000, 100_000
QUANTITY = 4
SEQUENTIAL_HOLDS = 40
CONCURRENT_CLIENTS, HOLDS_PER_CLIENT = 16, 10
LARGE_EVENTS = 20


def rss_mib(base_url: str) -> float:
    pid = cpu.listening_root(int(base_url.rsplit(":", 1)[1]))
    assert pid is not None, "the service's process was not found"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS line")


async def _hold_best(http: httpx.AsyncClient, event_id: str, buyer: dict[str, str]) -> bool:
    response = await http.post(
        f"/api/events/{event_id}/holds", json={"quantity": QUANTITY}, headers=buyer
    )
    return response.status_code == 201


async def best_available(base_url: str, backends: Backends, seats: int) -> dict[str, Any]:
    """One client holding one after another, then 16 at once, on a fresh event."""
    async with loadgen.event_on_sale(base_url, backends, seats) as (engine, event_id, _):
        total = 1 + SEQUENTIAL_HOLDS + CONCURRENT_CLIENTS * HOLDS_PER_CLIENT
        buyers = iter(await accounts.mint_accounts(engine, backends.jwt_secret, total))
        async with loadgen.client(base_url) as http:
            await _hold_best(http, event_id, next(buyers))  # loads the layout into Redis

        async def call(http: httpx.AsyncClient, index: int) -> bool:
            return await _hold_best(http, event_id, next(buyers))

        one = [loadgen.client(base_url)]
        sixteen = [loadgen.client(base_url) for _ in range(CONCURRENT_CLIENTS)]
        sequential = await loadgen.phase("1 client", one, 600, call, _after(SEQUENTIAL_HOLDS))
        concurrent = await loadgen.phase(
            "16 clients", sixteen, 600, call, _after(CONCURRENT_CLIENTS * HOLDS_PER_CLIENT)
        )
        for http in one + sixteen:
            await http.aclose()
    return {"1 client": sequential.figures(), "16 clients": concurrent.figures()}


def _after(count: int) -> Any:
    calls = iter(range(count))
    return lambda: next(calls, None) is None


async def _event_in_postgresql(engine: AsyncEngine, title: str) -> tuple[str, str]:
    """A large event on sale written from here, not through the service: the worker's
    memory is to show what holds cost it, not what building a 100,000-seat map did."""
    organizer = Principal(uuid.uuid4(), Role.ORGANIZER, f"{uuid.uuid4().hex}@bench.example")
    body = msgspec.convert(sale.event_body(LARGE, title), EventCreate)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add(
            User(
                id=organizer.id,
                email=organizer.email,
                password_hash="-",
                full_name="Bench",
                role=Role.ORGANIZER,
            )
        )
        await session.flush()
        view, seats = await events.create_event(session, organizer, body, LARGE)
        await session.execute(
            update(Event).where(Event.id == view.event.id).values(status=EventStatus.ON_SALE)
        )
        await session.commit()
    return str(view.event.id), str(seats[-1].id)


async def memory(base_url: str, backends: Backends) -> dict[str, float]:
    """RSS after chosen-seat and best-available holds on 1, then on 20, large events."""
    figures: dict[str, float] = {"before": rss_mib(base_url)}
    engine = create_async_engine(backends.database_url, poolclass=NullPool)
    buyers = iter(await accounts.mint_accounts(engine, backends.jwt_secret, 2 * LARGE_EVENTS))
    async with loadgen.client(base_url) as http:
        for number in range(1, LARGE_EVENTS + 1):
            event_id, last_seat = await _event_in_postgresql(engine, f"Scale {number}")
            chosen = await http.post(
                f"/api/events/{event_id}/holds",
                json={"seat_ids": [last_seat]},
                headers=next(buyers),
            )
            assert chosen.status_code == 201, chosen.text
            assert await _hold_best(http, event_id, next(buyers))
            if number in (1, LARGE_EVENTS):
                figures[f"after {number} events"] = rss_mib(base_url)
    await engine.dispose()
    return figures


async def measure(base_url: str, backends: Backends) -> dict[str, Any]:
    held = await memory(base_url, backends)
    small = await best_available(base_url, backends, SMALL)
    large = await best_available(base_url, backends, LARGE)
    small_p50 = small["1 client"]["latency_ms"]["p50"]
    large_p50 = large["1 client"]["latency_ms"]["p50"]
    return {
        "best_available": {f"{SMALL} seats": small, f"{LARGE} seats": large},
        "best_available_large_over_small_p50": round(large_p50 / small_p50, 2),
        "worker_rss_mib": held,
        "rss_20_over_1": round(held[f"after {LARGE_EVENTS} events"] / held["after 1 events"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with loadgen.service(1, "uvicorn") as (backends, base_url):
        result = asyncio.run(measure(base_url, backends))
    result["conditions"] = conditions.machine()
    conditions.save(result, args.json_path)
    ratio, growth = result["best_available_large_over_small_p50"], result["rss_20_over_1"]
    print(f"best available p50, {LARGE} over {SMALL} seats: {ratio} (target <= 1.5)")
    print(f"worker RSS after {LARGE_EVENTS} large events over after 1: {growth} (target <= 1.5)")
    for size, phases in result["best_available"].items():
        for name, figures in phases.items():
            print(size, name, figures["ok"], "ok", figures["latency_ms"])
    print(result["worker_rss_mib"])


if __name__ == "__main__":
    main()
