"""What the hold path costs above the framework: POST /api/events/{id}/holds against
GET /health/live of the same server, in one run, at the same concurrency, driven by wrk.

    .venv/bin/python bench/hold_vs_trivial.py --connections 64 --duration 10 --workers 2

The hold phase cycles over buyer i holding seat i (each request another buyer and seat)
and releasing that hold right after, so the seats never run out: half its requests are
holds, half releases, each one Lua script in Redis.

The two routes take turns, `--rounds` times each (the `--duration` of a route split over
its rounds, in whole seconds), so that a change in the machine's speed during the run weighs on both
alike: on the shared 2-core guest the same phase's rate moves by a third from one minute
to the next. Each round's holds are on seats of their own, so none starts on a seat the
round before left held.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import conditions, cpu, loadgen, wrk
from seatlock.testing import accounts
from seatlock.testing.servers import SERVERS, Backends

# Requests/s of the hold route against the trivial route that the project aims for, and
# the hold phase's p99 there.
TARGET_RATIO = 0.4
TARGET_HOLD_P99_MS = 50

PAIRS = 2000
ROUNDS = 5
# The warm-up has pairs of its own: a wrk run ends with holds it never released.
WARM_UP_PAIRS = 300
WARM_UP_SECONDS = 1.0


@dataclass(frozen=True)
class Options:
    connections: int = 64
    threads: int = 2
    duration: float = 10.0
    rounds: int = ROUNDS
    workers: int = 2
    server: str = "uvicorn"


async def files(
    base_url: str, backends: Backends, folder: Path, rounds: int
) -> tuple[str, tuple[str, ...], list[tuple[str, ...]]]:
    """An event on sale and buyers: the event id, the wrk files of the warm-up and those of
    each measured round. The rounds share their buyers (whose tokens the service verifies
    once and then knows, as it knows a buyer's over a sale) and hold seats of their own."""
    seat_count = WARM_UP_PAIRS + rounds * PAIRS
    async with loadgen.event_on_sale(base_url, backends, seat_count) as (engine, event_id, seats):
        people = await accounts.mint_accounts(engine, backends.jwt_secret, WARM_UP_PAIRS + PAIRS)
    ids = [s.id for s in seats]
    warm_up: tuple[str, ...] = (
        wrk.write_buyers(folder, people[:WARM_UP_PAIRS], "warm-buyers.txt"),
        wrk.write_seats(folder, ids[:WARM_UP_PAIRS], "warm-seats.txt"),
    )
    buyers = wrk.write_buyers(folder, people[WARM_UP_PAIRS:])
    measured: list[tuple[str, ...]] = [
        (buyers, wrk.write_seats(folder, ids[start : start + PAIRS], f"seats-{r}.txt"))
        for r, start in enumerate(range(WARM_UP_PAIRS, seat_count, PAIRS))
    ]
    return event_id, warm_up, measured


def wrk_env(event_id: str) -> dict[str, str]:
    """What the wrk script of the hold phase needs to know: the routes of the event's
    holds."""
    return {"BENCH_WRK_CLAIM": f"/api/events/{event_id}/holds", "BENCH_WRK_RELEASE": "/api/holds/"}


def measure(base_url: str, backends: Backends, options: Options) -> dict[str, Any]:
    roots = cpu.roots_by_url(
        {"service": base_url, "postgresql": backends.database_url, "valkey": backends.redis_url}
    )
    with tempfile.TemporaryDirectory(prefix="seatlock-wrk-") as folder:
        event_id, warm_up, measured = asyncio.run(
            files(base_url, backends, Path(folder), options.rounds)
        )
        env = wrk_env(event_id)

        def phase(mode: str, seconds: float, files: tuple[str, ...]) -> dict[str, Any]:
            url = f"{base_url}/health/live" if mode == "trivial" else base_url
            load = wrk.Load(mode, url, options.connections, seconds, options.threads, env, files)
            return wrk.run(load, roots)

        phase("trivial", WARM_UP_SECONDS, warm_up)
        phase("cycle", WARM_UP_SECONDS, warm_up)
        # wrk takes whole seconds.
        seconds = max(1, round(options.duration / options.rounds))
        rounds: list[dict[str, Any]] = []
        for pairs in measured:
            turn = {
                "trivial": phase("trivial", seconds, pairs),
                "hold": phase("cycle", seconds, pairs),
            }
            rounds.append({**turn, "ratio_hold_to_trivial": ratio(turn["hold"], turn["trivial"])})
    trivial = wrk.combined([r["trivial"] for r in rounds])
    hold = wrk.combined([r["hold"] for r in rounds])
    return {
        "trivial": trivial,
        "hold": hold,
        "rounds": rounds,
        "ratio_hold_to_trivial": ratio(hold, trivial),
    }


def ratio(hold: dict[str, Any], trivial: dict[str, Any]) -> float:
    return round(float(hold["requests_per_s"]) / float(trivial["requests_per_s"]), 3)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| route | requests/s | holds/s | p50 ms | p99 ms | non-2xx | wrk CPU | service CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (("trivial", "GET /health/live"), ("hold", "hold + release")):
        r = result[name]
        lines.append(
            f"| {label} | {r['requests_per_s']:,} | {r.get('won_per_s', '-')} | "
            f"{r['latency_ms']['p50']} | {r['latency_ms']['p99']} | "
            f"{r['socket_errors']['status']} | "
            f"{r['cpu_share']['client']:.0%} | {r['cpu_share']['service']:.0%} |"
        )
    each = ", ".join(str(r["ratio_hold_to_trivial"]) for r in result["rounds"])
    lines.append(
        f"\nhold route / trivial route, requests/s over the {len(result['rounds'])} rounds: "
        f"{result['ratio_hold_to_trivial']} (each round: {each}; "
        f"target >= {TARGET_RATIO}: "
        f"{'met' if result['ratio_hold_to_trivial'] >= TARGET_RATIO else 'MISSED'})"
    )
    p99 = result["hold"]["latency_ms"]["p99"]
    lines.append(
        f"hold p99, the highest of the rounds': {p99} ms (target < {TARGET_HOLD_P99_MS}: "
        f"{'met' if p99 < TARGET_HOLD_P99_MS else 'MISSED'})"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", "--concurrency", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of each route, over its rounds"
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="turns each route takes, alternating"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    if args.rounds < 1 or args.duration <= 0:
        parser.error("--rounds must be at least 1 and --duration above 0")
    options = Options(
        args.connections, args.threads, args.duration, args.rounds, args.workers, args.server
    )
    wrk.executable()
    machine = conditions.machine()
    with loadgen.service(options.workers, options.server) as (backends, url):
        result = measure(url, backends, options)
    print(markdown(result))
    conditions.save({**result, "config": vars(options), "machine": machine}, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
