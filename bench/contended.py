"""The contended step alone: many buyers on few seats, Seatlock's Redis hold against the
baseline's locking transaction, driven by wrk at 64 and 256 connections.

    .venv/bin/python bench/contended.py --duration 10 --workers 2

Each request is a random buyer asking for a random one of 100 hot seats; a winner lets
its seat go after a moment (--keep-ms), so the contention goes on for the whole phase.
Redis mode: POST /api/events/{id}/holds, then DELETE /api/holds/{id}. Baseline mode:
POST /baseline/events/{id}/bookings (SELECT ... FOR UPDATE), then DELETE
/baseline/bookings/{id}. Every phase gets a fresh event, so they all start alike. The
service sheds no load here (SEATLOCK_SHED_BACKLOG=0): this is the step's own capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import conditions, cpu, pgstats, sale, targets, wrk
from seatlock.models import Role
from seatlock.testing import accounts
from seatlock.testing.servers import NO_SHEDDING, SERVERS, app_server, embedded_backends

HOT_SEATS = 100
BUYERS = 1000
WARM_UP_SECONDS = 1.0
# Per design: the claim's path (for an event id), the release's path prefix, the server.
ROUTES = {
    "redis": ("/api/events/{}/holds", "/api/holds/", "service"),
    "baseline": ("/baseline/events/{}/bookings", "/baseline/bookings/", "baseline"),
}


@dataclass(frozen=True)
class Options:
    connections: tuple[int, ...] = (64, 256)
    duration: float = 10.0
    keep_ms: int = 50
    threads: int = 2
    workers: int = 2
    server: str = "uvicorn"
    seed: int = 1


@dataclass
class Bench:
    """The servers, the database and the wrk files one run shares."""

    urls: dict[str, str]
    engine: AsyncEngine
    organizer: dict[str, str]
    folder: Path
    buyers: str
    roots: dict[str, int]


async def _phase(
    bench: Bench, options: Options, design: str, connections: int, seconds: float
) -> dict[str, Any]:
    claim, release, server = ROUTES[design]
    # Statistics first: ending the backends empties the pools, which warm up again here.
    await pgstats.flush_statistics(bench.engine, owned=True)
    await targets.warm(
        [bench.urls["service"]], bench.urls["baseline"], bench.organizer, options.workers
    )
    async with targets.setup_client(bench.urls["service"]) as client:
        event_id, seats = await sale.create_event(client, bench.organizer, HOT_SEATS, "Hot seats")
    seat_file = wrk.write_seats(bench.folder, [s.id for s in seats])
    env = {
        "BENCH_WRK_CLAIM": claim.format(event_id),
        "BENCH_WRK_RELEASE": release,
        "BENCH_WRK_DELAY_MS": str(options.keep_ms),
        "BENCH_WRK_SEED": str(options.seed),
    }
    load = wrk.Load(
        "contend",
        bench.urls[server],
        connections,
        seconds,
        options.threads,
        env,
        (bench.buyers, seat_file),
    )
    before = await pgstats.transactions(bench.engine)
    figures = await asyncio.to_thread(wrk.run, load, bench.roots)
    await pgstats.flush_statistics(bench.engine, owned=True)
    spent = await pgstats.transactions(bench.engine) - before
    claims = figures["counts"].get("claims", 0)
    figures["pg_transactions"] = spent.total
    figures["pg_transactions_per_attempt"] = round(spent.total / claims, 3) if claims else None
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


async def measure(bench: Bench, options: Options) -> dict[str, Any]:
    for design in ROUTES:
        await _phase(bench, options, design, options.connections[0], WARM_UP_SECONDS)
    runs: dict[str, Any] = {}
    for connections in options.connections:
        found = {d: await _phase(bench, options, d, connections, options.duration) for d in ROUTES}
        redis, baseline = found["redis"], found["baseline"]
        found["ratios"] = {
            "attempts_per_s": _ratio(redis["claims_per_s"], baseline["claims_per_s"]),
            "p50": _ratio(redis["latency_ms"]["p50"], baseline["latency_ms"]["p50"]),
            "p99": _ratio(redis["latency_ms"]["p99"], baseline["latency_ms"]["p99"]),
        }
        runs[str(connections)] = found
    return runs


def markdown(runs: dict[str, Any]) -> str:
    lines = [
        "| connections | design | attempts/s | won/s | 409s | p50 ms | p99 ms | PG txns/attempt "
        "| service CPU | baseline CPU | PostgreSQL CPU | Valkey CPU | wrk CPU |",
        "|---" * 13 + "|",
    ]
    for connections, found in runs.items():
        for design in ROUTES:
            r, share = found[design], found[design]["cpu_share"]
            lines.append(
                f"| {connections} | {design} | {r['claims_per_s']:,} | {r['won_per_s']:,} | "
                f"{r['counts'].get('refused', 0)} | {r['latency_ms']['p50']} | "
                f"{r['latency_ms']['p99']} | {r['pg_transactions_per_attempt']} | "
                + " | ".join(
                    f"{share.get(g, 0):.0%}"
                    for g in ("service", "baseline", "postgresql", "valkey", "client")
                )
                + " |"
            )
        ratios = found["ratios"]
        lines.append(
            f"| {connections} | redis / baseline | {ratios['attempts_per_s']} | | | "
            f"{ratios['p50']} | {ratios['p99']} | | | | | | |"
        )
    return "\n".join(lines)


async def _run(
    urls: dict[str, str], database_url: str, redis_url: str, secret: str, options: Options
) -> dict[str, Any]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        (organizer,) = await accounts.mint_accounts(engine, secret, 1, Role.ORGANIZER)
        people = await accounts.mint_accounts(engine, secret, BUYERS)
        with tempfile.TemporaryDirectory(prefix="seatlock-wrk-") as folder:
            roots = cpu.roots_by_url({**urls, "postgresql": database_url, "valkey": redis_url})
            buyers = wrk.write_buyers(Path(folder), people)
            bench = Bench(urls, engine, organizer, Path(folder), buyers, roots)
            return await measure(bench, options)
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--keep-ms", type=int, default=50, help="how long a winner keeps its seat")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="workers of each server")
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    options = Options(
        tuple(args.connections),
        args.duration,
        args.keep_ms,
        args.threads,
        args.workers,
        args.server,
        args.seed,
    )
    wrk.executable()
    machine = conditions.machine()
    with ExitStack() as stack:
        backends = stack.enter_context(embedded_backends())
        urls = {
            name: stack.enter_context(
                app_server(app, backends, options.workers, NO_SHEDDING, options.server)
            )
            for name, app in (
                ("service", "seatlock.app:create_app"),
                ("baseline", "bench.baseline_app:create_app"),
            )
        }
        runs = asyncio.run(
            _run(urls, backends.database_url, backends.redis_url, backends.jwt_secret, options)
        )
    print(markdown(runs))
    conditions.save({"config": vars(options), "machine": machine, "runs": runs}, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
