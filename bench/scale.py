"""Costs against an event's size, in one run on one service worker:

- best available (`quantity: 4`) on a 2,000-seat and a 100,000-seat event, from one client
  and from 16 concurrent clients: p50 and p99 of the hold, and how many were served;
- a worker's memory (RSS) after holds on one 100,000-seat event and after holds on 20.

Usage: .venv/bin/python bench/scale.py --json scale.json
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from bench import conditions, cpu, loadgen
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


async def memory(base_url: str, backends: Backends) -> dict[str, float]:
    """RSS after chosen-seat and best-available holds on 1, then on 20, large events."""
    figures: dict[str, float] = {"before": rss_mib(base_url)}
    for number in range(1, LARGE_EVENTS + 1):
        async with loadgen.event_on_sale(base_url, backends, LARGE) as (engine, event_id, seats):
            buyer, other = await accounts.mint_accounts(engine, backends.jwt_secret, 2)
            async with loadgen.client(base_url) as http:
                chosen = await http.post(
                    f"/api/events/{event_id}/holds",
                    json={"seat_ids": [seats[-1].id]},
                    headers=buyer,
                )
                assert chosen.status_code == 201, chosen.text
                assert await _hold_best(http, event_id, other)
        if number in (1, LARGE_EVENTS):
            figures[f"after {number} events"] = rss_mib(base_url)
    return figures


async def measure(base_url: str, backends: Backends) -> dict[str, Any]:
    small = await best_available(base_url, backends, SMALL)
    large = await best_available(base_url, backends, LARGE)
    held = await memory(base_url, backends)
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
