"""The hold path's Redis client: redis-py asyncio against coredis, running the real
lua/hold.lua and lua/release.lua by EVALSHA on an embedded Valkey, in one process.

    .venv/bin/python bench/redis_clients.py --callers 64 --duration 10 --seats 1 --rounds 2
    .venv/bin/python bench/redis_clients.py --cluster   # the same on a 3-node Valkey cluster

C callers, each its own owner with its own seats, hold their seats and release them again,
back to back, for a fixed time. redis-py is set up exactly as the service sets it up
(`connect_redis`, `register_scripts`); coredis registers the same two files with
`register_script` (EVALSHA, SCRIPT LOAD on NOSCRIPT). Rounds alternate the order of the
clients. With --cluster both run their cluster client against three cluster-mode Valkey
nodes; the keys of one event share a hash tag, so every call of a run goes to one node, as
in a flash sale of one event. Needs coredis: `.venv/bin/pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import coredis
import uvloop

from bench import conditions
from bench.recorder import summary
from seatlock import keys
from seatlock.embedded.host import exit_on_sigterm
from seatlock.embedded.valkey import EmbeddedValkey, create_cluster
from seatlock.holds.scripts import load_scripts, register_scripts
from seatlock.holds.store import HoldStore, new_hold_id
from seatlock.redis_client import connect_redis
from seatlock.script_sources import script_source
from seatlock.settings import Settings

# One script call: keys and arguments in, the script's answer out.
ScriptCall = Callable[[list[str], list[str | int]], Awaitable[Any]]
# The service's hold policy defaults: 10 minutes, 2 extensions, 30 minutes at most.
HOLD_ARGS: list[str | int] = [600_000, 2, 1_800_000]
SEAT_CAP = 10
# The caller's deadline on Redis's clock (ms): never reached in a benchmark.
NO_DEADLINE = 2**52


@dataclass(frozen=True)
class HoldScripts:
    hold: ScriptCall
    release: ScriptCall


@asynccontextmanager
async def redis_py(settings: Settings, callers: int) -> AsyncIterator[HoldScripts]:
    """redis-py as the service configures it; its pool opens a connection per caller."""
    redis = connect_redis(settings)
    scripts = register_scripts(redis)
    await load_scripts(redis, scripts)

    async def hold(script_keys: list[str], args: list[str | int]) -> Any:
        return await scripts.hold(keys=script_keys, args=args)

    async def release(script_keys: list[str], args: list[str | int]) -> Any:
        return await scripts.release(keys=script_keys, args=args)

    try:
        yield HoldScripts(hold, release)
    finally:
        await redis.aclose()


@asynccontextmanager
async def core_redis(settings: Settings, callers: int) -> AsyncIterator[HoldScripts]:
    """coredis with the service's timeouts and a pool of one connection per caller."""
    timeout = settings.redis_timeout_seconds
    client: coredis.Redis[str] | coredis.RedisCluster[str] = (
        coredis.RedisCluster if settings.redis_cluster else coredis.Redis
    ).from_url(
        settings.redis_url,
        decode_responses=True,
        stream_timeout=timeout,
        connect_timeout=timeout,
        max_connections=callers,
    )
    async with client:
        hold_script = client.register_script(script_source("hold"))
        release_script = client.register_script(script_source("release"))
        for script in (hold_script, release_script):
            await client.script_load(script.script)

        async def hold(script_keys: list[str], args: list[str | int]) -> Any:
            return await hold_script(keys=script_keys, args=args)

        async def release(script_keys: list[str], args: list[str | int]) -> Any:
            return await release_script(keys=script_keys, args=args)

        yield HoldScripts(hold, release)


CLIENTS: dict[str, Callable[[Settings, int], AbstractAsyncContextManager[HoldScripts]]] = {
    "redis-py": redis_py,
    "coredis": core_redis,
}


@dataclass
class Tally:
    seconds: float = 0.0
    failures: int = 0
    hold_ms: list[float] = field(default_factory=list)
    release_ms: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        calls = len(self.hold_ms) + len(self.release_ms)
        return {
            "seconds": round(self.seconds, 2),
            "holds": len(self.hold_ms),
            "holds_per_s": round(len(self.hold_ms) / self.seconds, 1),
            "script_calls_per_s": round(calls / self.seconds, 1),
            "failures": self.failures,
            "hold_ms": summary(self.hold_ms),
            "release_ms": summary(self.release_ms),
        }


async def _mark_ready(settings: Settings, event_id: uuid.UUID) -> None:
    # Without __ready__ the hold script asks for the reserved/sold cache to be rebuilt.
    admin = connect_redis(settings)
    try:
        fresh_until = int(time.time() * 1000) + 3_600_000
        await cast(
            "Awaitable[int]", admin.hset(keys.taken_seats(event_id), "__ready__", str(fresh_until))
        )
    finally:
        await admin.aclose()


async def _caller(
    scripts: HoldScripts, event_id: uuid.UUID, seats: Sequence[str], deadline: float, tally: Tally
) -> None:
    owner = uuid.uuid4()
    event_keys = HoldStore.event_keys(event_id, owner)
    while time.perf_counter() < deadline:
        hold_id = new_hold_id(event_id)
        hold_key = keys.hold(event_id, hold_id)
        begun = time.perf_counter()
        reply = await scripts.hold(
            [*event_keys, hold_key],
            [hold_id, str(owner), *HOLD_ARGS, SEAT_CAP, NO_DEADLINE, *seats],
        )
        held = time.perf_counter()
        tally.hold_ms.append((held - begun) * 1000)
        if reply[0] != "ok":
            tally.failures += 1
            continue
        reply = await scripts.release(
            HoldStore.release_keys(event_id, owner, hold_id),
            [hold_id, str(owner), "", secrets.token_hex(8)],
        )
        tally.release_ms.append((time.perf_counter() - held) * 1000)
        if reply[0] != "ok":
            tally.failures += 1


async def _phase(
    scripts: HoldScripts, settings: Settings, callers: int, seats: int, seconds: float
) -> Tally:
    event_id = uuid.uuid4()
    await _mark_ready(settings, event_id)
    tally = Tally()
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _caller(
                scripts,
                event_id,
                [str(uuid.uuid4()) for _ in range(seats)],
                started + seconds,
                tally,
            )
            for _ in range(callers)
        )
    )
    tally.seconds = time.perf_counter() - started
    return tally


async def measure(
    settings: Settings, name: str, callers: int, seats: int, seconds: float, warm_up: float
) -> dict[str, Any]:
    async with CLIENTS[name](settings, callers) as scripts:
        await _phase(scripts, settings, callers, seats, warm_up)
        tally = await _phase(scripts, settings, callers, seats, seconds)
    return tally.figures()


def _rounds(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every client once a round, in alternating order; each round's figures."""
    rounds: list[dict[str, Any]] = []
    for index in range(args.rounds):
        order = list(CLIENTS) if index % 2 == 0 else list(reversed(CLIENTS))
        for name in order:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                figures = runner.run(
                    measure(settings, name, args.callers, args.seats, args.duration, args.warm_up)
                )
            rounds.append({"round": index + 1, "client": name, **figures})
            print(f"round {index + 1} {name}: {figures['holds_per_s']} holds/s", file=sys.stderr)
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=64, help="concurrent callers (C)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per client")
    parser.add_argument("--seats", type=int, default=1, help="seats per hold (1..10)")
    parser.add_argument("--rounds", type=int, default=2, help="client order alternates")
    parser.add_argument("--warm-up", type=float, default=1.0, help="seconds, not counted")
    parser.add_argument("--cluster", action="store_true", help="a 3-node Valkey cluster")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    if not 1 <= args.seats <= SEAT_CAP:
        raise SystemExit(f"--seats must be 1..{SEAT_CAP}")

    state = Path(tempfile.mkdtemp(prefix="seatlock-bench-", dir="/var/tmp"))
    nodes = [
        EmbeddedValkey(state / f"valkey-{i}", cluster=args.cluster)
        for i in range(3 if args.cluster else 1)
    ]
    # A SIGTERM unwinds like Ctrl-C: the Valkey nodes are stopped, their state removed.
    with exit_on_sigterm(status=128 + signal.SIGTERM):
        try:
            urls = [node.start() for node in nodes]
            if args.cluster:
                create_cluster([node.port for node in nodes])
            rounds = _rounds(Settings(redis_url=urls[0], redis_cluster=args.cluster), args)
        finally:
            for node in nodes:
                node.stop()
            shutil.rmtree(state, ignore_errors=True)

    print(
        "| round | client | holds/s | script calls/s | hold p50 ms | hold p99 ms | "
        "release p50 ms | release p99 ms | failures |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in rounds:
        print(
            f"| {r['round']} | {r['client']} | {r['holds_per_s']} | {r['script_calls_per_s']} | "
            f"{r['hold_ms']['p50']} | {r['hold_ms']['p99']} | {r['release_ms']['p50']} | "
            f"{r['release_ms']['p99']} | {r['failures']} |"
        )
    mean = {
        name: sum(r["holds_per_s"] for r in rounds if r["client"] == name)
        / sum(1 for r in rounds if r["client"] == name)
        for name in CLIENTS
    }
    print(
        f"\nmean holds/s: {', '.join(f'{n} {v:.1f}' for n, v in mean.items())}; "
        f"coredis / redis-py: {mean['coredis'] / mean['redis-py']:.2f}"
    )
    result = {"config": vars(args), "rounds": rounds, "mean_holds_per_s": mean}
    conditions.save(result, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
