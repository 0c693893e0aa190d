"""What the hold path costs above the framework: POST /api/events/{id}/holds against
GET /health/live of the same server, in one run, with the same concurrency.

    .venv/bin/python bench/hold_vs_trivial.py --concurrency 64 --duration 10 --workers 2

Each hold takes one chosen seat of a 20,000-seat event; callers rotate over enough buyers
that no one reaches the per-buyer seat limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import loadgen
from seatlock.testing import accounts
from seatlock.testing.servers import SERVERS, Backends, app_server, embedded_backends

SEATS = 20_000
SEATS_PER_BUYER = 10  # the event's default max_seats_per_booking


async def measure(base_url: str, backends: Backends, concurrency: int, seconds: float) -> Any:
    async with loadgen.event_on_sale(base_url, backends, SEATS) as (engine, event_id, seats):
        buyers = await accounts.mint_accounts(engine, backends.jwt_secret, SEATS // SEATS_PER_BUYER)
        free = iter(range(len(seats)))
        used_up: list[bool] = []

        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(loadgen.client(base_url))
                for _ in range(concurrency)
            ]

            async def trivial(http: httpx.AsyncClient, index: int) -> bool:
                return (await http.get("/health/live")).status_code == 200

            async def hold(http: httpx.AsyncClient, index: int) -> bool:
                n = next(free, None)
                if n is None:
                    used_up.append(True)
                    return False
                response = await http.post(
                    f"/api/events/{event_id}/holds",
                    json={"seat_ids": [seats[n].id]},
                    headers=buyers[n // SEATS_PER_BUYER],
                )
                return response.status_code == 201

            await loadgen.phase("warm-up", clients, 1.0, trivial)
            trivial_phase = await loadgen.phase("trivial", clients, seconds, trivial)
            hold_phase = await loadgen.phase(
                "hold", clients, seconds, hold, stop_when=lambda: bool(used_up)
            )
    out = {"trivial": trivial_phase.figures(), "hold": hold_phase.figures()}
    out["ratio_hold_to_trivial"] = round(
        out["hold"]["requests_per_s"] / out["trivial"]["requests_per_s"], 3
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with (
        embedded_backends() as backends,
        app_server(
            "seatlock.app:create_app", backends, args.workers, server=args.server
        ) as base_url,
    ):
        result = asyncio.run(measure(base_url, backends, args.concurrency, args.duration))
    result["config"] = vars(args)
    print("| route | requests/s | ok | failed | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for name in ("trivial", "hold"):
        r = result[name]
        print(
            f"| {name} | {r['requests_per_s']} | {r['ok']} | {r['failed']} | "
            f"{r['latency_ms']['p50']} | {r['latency_ms']['p99']} |"
        )
    print(f"\nhold / trivial requests/s: {result['ratio_hold_to_trivial']} (target >= 0.5)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
