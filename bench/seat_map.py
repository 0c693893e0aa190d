"""GET /api/events/{id}/seats on a 20,000-seat event while other buyers' holds change.

    .venv/bin/python bench/seat_map.py --readers 16 --churners 16 --duration 10 --workers 2

Readers fetch the whole seat map back to back; churners hold a random seat and release
it again, so the map's held seats keep changing under the readers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import conditions, loadgen
from seatlock.testing import accounts
from seatlock.testing.servers import SERVERS, Backends

SEATS = 20_000


async def measure(
    base_url: str, backends: Backends, readers: int, churners: int, seconds: float
) -> dict[str, Any]:
    async with loadgen.event_on_sale(base_url, backends, SEATS) as (engine, event_id, seats):
        buyers = await accounts.mint_accounts(engine, backends.jwt_secret, churners)
        sizes: list[int] = []
        held_seen: list[int] = []

        async def read(http: httpx.AsyncClient, index: int) -> bool:
            response = await http.get(f"/api/events/{event_id}/seats")
            if response.status_code != 200:
                return False
            sizes.append(len(response.content))
            held_seen.append(response.content.count(b'"state":"held"'))
            return True

        rng = random.Random(1)

        async def churn(http: httpx.AsyncClient, index: int) -> bool:
            buyer = buyers[index]
            held = await http.post(
                f"/api/events/{event_id}/holds",
                json={"seat_ids": [rng.choice(seats).id]},
                headers=buyer,
            )
            if held.status_code != 201:
                return held.status_code == 409
            released = await http.delete(f"/api/holds/{held.json()['id']}", headers=buyer)
            return released.status_code == 204

        async with AsyncExitStack() as stack:
            reader_clients = [
                await stack.enter_async_context(loadgen.client(base_url)) for _ in range(readers)
            ]
            churn_clients = [
                await stack.enter_async_context(loadgen.client(base_url)) for _ in range(churners)
            ]
            started = time.perf_counter()
            read_phase, churn_phase = await asyncio.gather(
                loadgen.phase("read", reader_clients, seconds, read),
                loadgen.phase("churn", churn_clients, seconds, churn),
            )
            elapsed = time.perf_counter() - started
    return {
        "seats": SEATS,
        "seconds": round(elapsed, 2),
        "seat_map_reads": read_phase.figures(),
        "hold_release_cycles": churn_phase.figures(),
        "response_bytes": int(sum(sizes) / len(sizes)) if sizes else 0,
        "held_seats_seen_mean": round(sum(held_seen) / len(held_seen), 1) if held_seen else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--churners", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with loadgen.service(args.workers, args.server) as (backends, base_url):
        result = asyncio.run(
            measure(base_url, backends, args.readers, args.churners, args.duration)
        )
    result["config"] = vars(args)
    reads, churn = result["seat_map_reads"], result["hold_release_cycles"]
    print("| what | per second | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    print(
        f"| GET seats ({SEATS} seats, {result['response_bytes']} bytes) | "
        f"{reads['requests_per_s']} | {reads['latency_ms']['p50']} | "
        f"{reads['latency_ms']['p95']} | {reads['latency_ms']['p99']} |"
    )
    print(
        f"| hold + release cycles | {churn['requests_per_s']} | {churn['latency_ms']['p50']} | "
        f"{churn['latency_ms']['p95']} | {churn['latency_ms']['p99']} |"
    )
    print(f"\nheld seats seen per read, mean: {result['held_seats_seen_mean']}")
    conditions.save(result, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
