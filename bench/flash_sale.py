"""Flash-sale benchmark: Seatlock's Redis holds against plain PostgreSQL row locking, on
the same machine, the same buyers and the same event, in one run.

    .venv/bin/python bench/flash_sale.py --seats 2000 --buyers 256 --duration 30 --workers 2

Without --base-url it starts embedded PostgreSQL and Valkey in a throwaway directory and
the service (and, for the baseline, bench/baseline_app.py) under uvicorn or granian
(--server). Ends with the oracle straight from PostgreSQL; exits 1 if it fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import report, sale
from bench.buyers import Board, Shopper, baseline_reserve, buyer_loop, seatlock_reserve
from bench.recorder import Recorder
from seatlock.models import Role
from seatlock.testing import accounts, oracle
from seatlock.testing.servers import SERVERS, Backends, app_server, embedded_backends

MODES = ("redis", "baseline")
# Pending statistics of idle backends reach pg_stat_database within this many seconds.
STATS_IDLE_FLUSH_SECONDS = 11


@dataclass
class Options:
    seats: int = 2000
    buyers: int = 256
    duration: float = 30.0
    workers: int = 2
    server: str = "uvicorn"
    modes: tuple[str, ...] = MODES
    base_url: str | None = None
    baseline_url: str | None = None
    database_url: str | None = None
    jwt_secret: str | None = None
    seed: int = 1
    progress_seconds: float = 5.0


@dataclass
class Target:
    service: str
    baseline: str | None
    database_url: str
    jwt_secret: str | None
    owned: bool


async def pg_transactions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        )
    return int(value or 0)


async def flush_statistics(engine: AsyncEngine, owned: bool) -> None:
    """Make every backend's pending counts visible in pg_stat_database: backends flush
    them on exit, so on servers of our own we end them (the pools reconnect)."""
    if not owned:
        await asyncio.sleep(STATS_IDLE_FLUSH_SECONDS)
        return
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        )
    await asyncio.sleep(0.5)


def _client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60)


async def _warm(shoppers: list[Shopper], event_id: str) -> None:
    """Open the keep-alive connections and the servers' pools before the sale opens."""
    await asyncio.gather(*(s.service.get(f"/api/events/{event_id}") for s in shoppers))
    await asyncio.gather(*(s.baseline.get("/health/live") for s in shoppers if s.baseline))


async def _progress(
    mode: str, recorder: Recorder, capacity: int, every: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            print(
                f"[{mode:8} {recorder.now():6.1f}s] attempts {len(recorder.contended)} "
                f"ok {recorder.contended_ok} checkouts {len(recorder.checkouts)} "
                f"seats {recorder.seats_sold}/{capacity} conflicts "
                f"{sum(recorder.conflicts.values())} errors {sum(recorder.errors.values())}",
                file=sys.stderr,
                flush=True,
            )


async def run_mode(
    mode: str,
    options: Options,
    target: Target,
    engine: AsyncEngine,
    organizer: dict[str, str],
    buyers: list[dict[str, str]],
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        setup = await stack.enter_async_context(_client(target.service, 4))
        event_id, seats = await sale.create_event(
            setup, organizer, options.seats, f"Flash sale ({mode})"
        )
        board = Board(seats, sale.HOT_SECTION)
        baseline = mode == "baseline"
        reserve = baseline_reserve(event_id) if baseline else seatlock_reserve(event_id)
        shoppers = []
        for headers in buyers:
            service = await stack.enter_async_context(_client(target.service, 2))
            other = None
            if baseline:
                assert target.baseline is not None
                other = await stack.enter_async_context(_client(target.baseline, 2))
            shoppers.append(Shopper(headers, service, other))
        # Statistics first (ending backends empties the pools), then warm the pools up.
        await flush_statistics(engine, target.owned)
        await _warm(shoppers, event_id)
        before = await pg_transactions(engine)

        recorder = Recorder()
        deadline = time.perf_counter() + options.duration
        stop = asyncio.Event()
        ticker = asyncio.create_task(
            _progress(mode, recorder, options.seats, options.progress_seconds, stop)
        )
        await asyncio.gather(
            *(
                buyer_loop(
                    shopper,
                    board,
                    reserve,
                    recorder,
                    random.Random(f"{options.seed}-{n}"),
                    deadline,
                    options.seats,
                )
                for n, shopper in enumerate(shoppers)
            )
        )
        elapsed = recorder.now()
        stop.set()
        await ticker
    await flush_statistics(engine, target.owned)
    spent = await pg_transactions(engine) - before
    verdict = await oracle.check(engine, uuid.UUID(event_id), options.seats)
    return report.mode_report(mode, recorder, elapsed, options.seats, spent, verdict)


async def measure(options: Options, target: Target) -> dict[str, Any]:
    engine = create_async_engine(target.database_url, poolclass=NullPool)
    try:
        async with _client(target.service, 32) as client:
            if target.owned and target.jwt_secret:
                secret = target.jwt_secret
                (organizer,) = await accounts.mint_accounts(engine, secret, 1, Role.ORGANIZER)
                buyers = await accounts.mint_accounts(engine, secret, options.buyers)
            else:
                (organizer,) = await accounts.register_accounts(client, engine, 1, Role.ORGANIZER)
                buyers = await accounts.register_accounts(client, engine, options.buyers)
        modes = {}
        for mode in options.modes:
            print(f"{mode}: {options.buyers} buyers, {options.seats} seats", file=sys.stderr)
            modes[mode] = await run_mode(mode, options, target, engine, organizer, buyers)
    finally:
        await engine.dispose()
    return {
        "config": {
            "seats": options.seats,
            "buyers": options.buyers,
            "duration_s": options.duration,
            "workers": options.workers,
            "server": options.server,
            "modes": list(options.modes),
            "target": "embedded" if target.owned else target.service,
        },
        "machine": report.machine(),
        "modes": modes,
        "comparison": report.comparison(modes),
        "oracle_passed": all(m["oracle"]["passed"] for m in modes.values()),
    }


def run(options: Options) -> dict[str, Any]:
    """One benchmark run: start what is needed, measure every mode, stop everything."""
    with ExitStack() as stack:
        if options.base_url is None:
            backends = stack.enter_context(embedded_backends())
            service = stack.enter_context(
                app_server(
                    "seatlock.app:create_app", backends, options.workers, server=options.server
                )
            )
            target = Target(service, None, backends.database_url, backends.jwt_secret, True)
        else:
            if options.database_url is None:
                raise SystemExit("--base-url needs --database-url (oracle and pg_stat_database)")
            target = Target(options.base_url, None, options.database_url, options.jwt_secret, False)
            backends = Backends(options.database_url, "", options.jwt_secret or "", False)
        if "baseline" in options.modes:
            if options.baseline_url:
                target.baseline = options.baseline_url
            elif not backends.jwt_secret:
                raise SystemExit("baseline mode against --base-url needs --jwt-secret")
            else:
                target.baseline = stack.enter_context(
                    app_server(
                        "bench.baseline_app:create_app",
                        backends,
                        options.workers,
                        server=options.server,
                    )
                )
        return asyncio.run(measure(options, target))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=2000, help="seats of the event (S)")
    parser.add_argument("--buyers", type=int, default=256, help="concurrent buyers (C)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds at most per mode")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server")
    parser.add_argument(
        "--server", choices=SERVERS, default="uvicorn", help="ASGI server of both apps"
    )
    parser.add_argument("--mode", choices=["both", *MODES], default="both")
    parser.add_argument("--base-url", help="a running service; default: start one here")
    parser.add_argument("--database-url", help="its database (with --base-url)")
    parser.add_argument("--jwt-secret", help="its SEATLOCK_JWT_SECRET (baseline with --base-url)")
    parser.add_argument("--baseline-url", help="a running bench/baseline_app.py")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_path", help="write the report as JSON here")
    parser.add_argument("--plot", dest="plot_path", help="write a PNG here (needs matplotlib)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    for url in (args.base_url, args.baseline_url):
        if url and not url.startswith(("http://127.0.0.1", "http://localhost")):
            raise SystemExit("load tests only target this machine (127.0.0.1)")
    options = Options(
        seats=args.seats,
        buyers=args.buyers,
        duration=args.duration,
        workers=args.workers,
        server=args.server,
        modes=MODES if args.mode == "both" else (args.mode,),
        base_url=args.base_url,
        baseline_url=args.baseline_url,
        database_url=args.database_url,
        jwt_secret=args.jwt_secret,
        seed=args.seed,
    )
    result = run(options)
    print(report.markdown(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    if args.plot_path and not report.plot(result, args.plot_path):
        print("matplotlib is not installed: no plot", file=sys.stderr)
    if not result["oracle_passed"]:
        for mode in result["modes"].values():
            for violation in mode["oracle"]["violations"]:
                print(f"ORACLE {mode['mode']}: {violation}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
