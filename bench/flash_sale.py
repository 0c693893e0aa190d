"""Flash-sale benchmark: Seatlock's Redis holds against plain PostgreSQL row locking, on
the same machine, with the same buyers and the same event, in one run.

    .venv/bin/python bench/flash_sale.py --scenario spread   # 256 buyers, 2,000 seats
    .venv/bin/python bench/flash_sale.py --scenario flash    # 2,000 buyers, 300 seats

Without --base-url it starts embedded PostgreSQL and Valkey in a throwaway directory and
the service (and, for the baseline, bench/baseline_app.py) under uvicorn or granian
(--server). Ends with the oracle straight from PostgreSQL; exits 1 if it fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import conditions, crowd, pgstats, plot, report, sale, targets
from bench.clients import Outcome, Plan, run_clients
from bench.cpu import Meter
from bench.steps import Sale
from seatlock.testing import oracle
from seatlock.testing.servers import SERVERS

MODES = ("redis", "baseline")


@dataclass(frozen=True)
class Scenario:
    seats: int
    buyers: int
    duration: float
    # Event settings: None keeps the service's defaults (10 min holds, 15 min to pay).
    policy: dict[str, int] | None


SCENARIOS = {
    "spread": Scenario(2000, 256, 30.0, None),
    # Seats come back 30 s after an abandoned hold and 60-65 s after an unpaid booking,
    # and some of them are abandoned again: the last ones sell after minutes.
    "flash": Scenario(300, 2000, 300.0, sale.SHORT_POLICY),
}


@dataclass
class Options:
    scenario: str = "spread"
    seats: int = 2000
    buyers: int = 256
    duration: float = 30.0
    workers: int = 2
    server: str = "uvicorn"
    modes: tuple[str, ...] = MODES
    clients: int = 1
    separate_holds: bool = False
    knobs: crowd.Knobs = field(default_factory=crowd.Knobs)
    base_url: str | None = None
    baseline_url: str | None = None
    database_url: str | None = None
    jwt_secret: str | None = None
    seed: int = 1
    progress_seconds: float = 5.0

    @property
    def policy(self) -> dict[str, int] | None:
        return SCENARIOS[self.scenario].policy


def _plans(options: Options, target: targets.Target, mode: str, event: Sale) -> list[Plan]:
    people = list(enumerate(target.buyers))
    return [
        Plan(
            number=k,
            scenario=options.scenario,
            mode=mode,
            service_url=target.service,
            contended_url=target.baseline if mode == "baseline" else target.holds,
            sale=event,
            buyers=people[k :: options.clients],
            duration=options.duration,
            knobs=options.knobs,
            progress_seconds=options.progress_seconds,
        )
        for k in range(options.clients)
    ]


def _progress(mode: str, capacity: int) -> Callable[[Counter[str], float], None]:
    def show(counts: Counter[str], at: float) -> None:
        print(
            f"[{mode:8} {at:6.1f}s] attempts {counts['attempts']} "
            f"won {counts['won']} checkouts {counts['checkouts']} seats {counts['seats']}/"
            f"{capacity} 409s {counts['conflicts']} errors {counts['errors']}",
            file=sys.stderr,
            flush=True,
        )

    return show


async def run_mode(
    mode: str, options: Options, target: targets.Target, engine: AsyncEngine
) -> dict[str, Any]:
    # Statistics first: ending the backends empties the servers' pools, which warm up
    # again before the event is made. (The few transactions of both may be counted.)
    await pgstats.flush_statistics(engine, target.owned)
    services = [url for url in (target.service, target.holds) if url]
    await targets.warm(services, target.baseline, target.organizer, options.workers)
    event_id, seats = await targets.new_event(target, options.seats, mode, options.policy)
    event = Sale(event_id, seats, sale.HOT_SECTION, options.seed)
    meter = Meter(target.process_roots())
    before = pgstats.Transactions(0, 0)

    async def start() -> None:
        nonlocal before
        before = await pgstats.transactions(engine)
        meter.start()

    outcome: Outcome = await run_clients(
        _plans(options, target, mode, event), start, _progress(mode, options.seats)
    )
    cpu = meter.stop(outcome.elapsed, outcome.cpu_seconds)
    await pgstats.flush_statistics(engine, target.owned)
    spent = await pgstats.transactions(engine) - before
    verdict = await oracle.check(engine, uuid.UUID(event_id), options.seats)
    measured = report.Measured(
        mode, outcome.recorder, outcome.elapsed, options.seats, spent, verdict, cpu, options.clients
    )
    return report.mode_report(measured)


def _config(options: Options, target: targets.Target) -> dict[str, Any]:
    return {
        "scenario": options.scenario,
        "seats": options.seats,
        "buyers": options.buyers,
        "duration_s": options.duration,
        "workers": options.workers,
        "server": options.server,
        "modes": list(options.modes),
        "client_processes": options.clients,
        "separate_holds": options.separate_holds,
        "event_policy": options.policy or "service defaults",
        "crowd": vars(options.knobs) if options.scenario == "flash" else None,
        "seed": options.seed,
        "target": "embedded" if target.owned else target.service,
    }


async def measure(options: Options, target: targets.Target) -> dict[str, Any]:
    engine = create_async_engine(target.database_url, poolclass=NullPool)
    try:
        machine = {
            **conditions.machine(),
            "servers": await conditions.server_versions(engine, target.redis_url),
        }
        await targets.sign_up(target, engine, options.buyers)
        modes = {}
        for mode in options.modes:
            print(
                f"{options.scenario} / {mode}: {options.buyers} buyers, {options.seats} seats",
                file=sys.stderr,
            )
            modes[mode] = await run_mode(mode, options, target, engine)
    finally:
        await engine.dispose()
    return {
        "config": _config(options, target),
        "machine": machine,
        "modes": modes,
        "comparison": report.comparison(modes, options.scenario),
        "oracle_passed": all(m["oracle"]["passed"] for m in modes.values()),
    }


def run(options: Options) -> dict[str, Any]:
    """One benchmark run: start what is needed, measure every design, stop everything."""
    with ExitStack() as stack:
        target = targets.start(stack, options)
        return asyncio.run(measure(options, target))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="spread")
    parser.add_argument("--seats", type=int, help="seats of the event (spread 2000, flash 300)")
    parser.add_argument("--buyers", type=int, help="buyers (spread 256, flash 2000)")
    parser.add_argument(
        "--duration", type=float, help="time limit per design, seconds (spread 30, flash 300)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server")
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument("--mode", choices=["both", *MODES], default="both")
    parser.add_argument("--clients", type=int, default=1, help="load client processes")
    parser.add_argument(
        "--separate-holds",
        action="store_true",
        help="Seatlock's holds go to a second service server of their own, as the baseline's "
        "locking transactions go to the baseline app",
    )
    crowd_knobs = crowd.Knobs()
    for name, value in vars(crowd_knobs).items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=value,
            help=f"flash crowd, see bench/README.md (default {value:g})",
        )
    parser.add_argument("--base-url", help="a running service; default: start one here")
    parser.add_argument("--database-url", help="its database (with --base-url)")
    parser.add_argument("--jwt-secret", help="its SEATLOCK_JWT_SECRET (baseline with --base-url)")
    parser.add_argument("--baseline-url", help="a running bench/baseline_app.py")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_path", help="write the report as JSON here")
    parser.add_argument("--plot", dest="plot_path", help="write a timeline PNG (matplotlib)")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    scenario = SCENARIOS[args.scenario]
    knobs = crowd.Knobs(**{name: getattr(args, name) for name in vars(crowd.Knobs())})
    return Options(
        scenario=args.scenario,
        seats=args.seats or scenario.seats,
        buyers=args.buyers or scenario.buyers,
        duration=args.duration or scenario.duration,
        workers=args.workers,
        server=args.server,
        modes=MODES if args.mode == "both" else (args.mode,),
        clients=args.clients,
        separate_holds=args.separate_holds,
        knobs=knobs,
        base_url=args.base_url,
        baseline_url=args.baseline_url,
        database_url=args.database_url,
        jwt_secret=args.jwt_secret,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    result = run(options_from(args))
    print(report.markdown(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    if args.plot_path and not plot.plot(result, args.plot_path):
        print("matplotlib is not installed (the `bench` extra): no plot", file=sys.stderr)
    if not result["oracle_passed"]:
        for mode in result["modes"].values():
            for violation in mode["oracle"]["violations"]:
                print(f"ORACLE {mode['mode']}: {violation}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
