"""The waiting room: a crowd joining an event's room before its sale, the places they read,
the pace and the cap of admission, and the order in which buyers are let in.

    .venv/bin/python bench/waiting_room.py --buyers 50000 --rate 6000 --minutes 2 --workers 2

One service on embedded servers, four parts one after the other:

1. joins: --buyers buyers (minted into PostgreSQL) join a room before its sale starts,
   driven by wrk (bench/wrk_queue.lua, mode `join`: each thread once through its share of
   the buyers); Redis must then hold exactly that many places;
2. reads: GET .../queue/me of random buyers, then the public GET .../queue/status, each for
   --duration seconds;
3. admission: the sale starts and the room lets in --rate buyers a minute, counted over
   --minutes whole minutes; then, while it runs, the room gets a cap of live passes and
   buyers who were let in leave, so that slots free up: the live passes, sampled every
   100 ms, must stay within the cap while the room keeps filling the slots;
4. fairness: on a second room, --early buyers join one after another before the start and
   --late after it; the order they were let in against the order they joined.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from redis.asyncio import Redis
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import conditions, loadgen, sale, targets, wrk
from seatlock import keys
from seatlock.holds.on_sale import DEFAULT_LIFETIME_SECONDS
from seatlock.models import Role
from seatlock.queue.admission import ROOMS_READ_EVERY_SECONDS
from seatlock.queue.figures import room_figures
from seatlock.redis_client import hash_fields
from seatlock.testing import accounts
from seatlock.testing.servers import SERVERS, Backends

SCRIPT = Path(__file__).with_name("wrk_queue.lua")

# The scenario: this many buyers join within this many seconds, whatever --buyers.
SCENARIO_BUYERS = 50_000
SCENARIO_SECONDS = 10.0
# Buyers let in per minute against the room's rate.
RATE_TOLERANCE = 0.05
# |rho| (Spearman's) of the pre-sale joiners; a true shuffle's standard error is
# 1/sqrt(n - 1), 0.022 for 2,000 buyers.
RHO_BOUND = 0.05
# Buyers let in over the cap part, against the slots that freed up: the room keeps filling
# them (the last second's leavers may still be waiting for the next step).
REFILL_TARGET = 0.9

ROOM_SEATS = 25
# The shortest pass: the cap part begins with fewer live passes to clear.
PASS_SECONDS = 60
# The fairness room lets everyone in at the next step: the highest rate a room accepts.
FAIR_RATE = 1_000_000
# The admission part keeps this share of the line; the cap part gets the rest.
ADMISSION_SHARE = 0.6
CAP_SECONDS = 30.0
SAMPLE_SECONDS = 0.1
# Every second of the cap part, this share of the cap leaves the room.
LEAVE_SHARE = 0.1
# A change of a room, or of a sale's start, reaches every worker within these.
ROOMS_SETTLE_SECONDS = ROOMS_READ_EVERY_SECONDS + 0.5
CACHE_SETTLE_SECONDS = DEFAULT_LIFETIME_SECONDS + 0.5
# The longest wait for the admission loop to step a room.
PATIENCE_SECONDS = 60.0
WARM_UP_SECONDS = 1.0


@dataclass(frozen=True)
class Options:
    buyers: int = 50_000
    duration: float = 10.0
    rate: int = 6000
    minutes: int = 2
    cap: int = 500
    early: int = 2000
    late: int = 500
    connections: int = 64
    threads: int = 2
    workers: int = 2
    server: str = "uvicorn"


@dataclass
class Bench:
    """What the parts of one run share."""

    options: Options
    url: str
    backends: Backends
    engine: AsyncEngine
    redis: Redis
    http: httpx.AsyncClient
    organizer: dict[str, str]
    folder: Path
    roots: dict[str, int]


def _paced(options: Options) -> int:
    """The admission part's rate: the one asked for, or less when the line would run out
    before the minutes end (a small run)."""
    return min(options.rate, int(options.buyers * ADMISSION_SHARE / (options.minutes + 0.1)))


def _room_path(event: uuid.UUID) -> str:
    return f"/api/events/{event}/queue"


async def _set_room(bench: Bench, event: uuid.UUID, rate: int, cap: int | None = None) -> None:
    body = {
        "enabled": True,
        "opens_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "admit_per_minute": rate,
        "max_shopping": cap,
        "pass_seconds": PASS_SECONDS,
    }
    answer = await bench.http.put(_room_path(event), json=body, headers=bench.organizer)
    answer.raise_for_status()


async def _sale_starts(bench: Bench, event: uuid.UUID, at: datetime) -> None:
    """Moves the sale's start: the benchmark owns the database, and a sale starts on cue."""
    async with bench.engine.begin() as conn:
        await conn.execute(
            text("UPDATE events SET sale_starts_at = :at WHERE id = :id"), {"at": at, "id": event}
        )


async def _queued_event(bench: Bench, title: str, rate: int) -> uuid.UUID:
    """An event whose sale starts in a day, its room open for joining already. No worker
    has read the event yet, so none caches the start it was created with."""
    created, _ = await sale.create_event(bench.http, bench.organizer, ROOM_SEATS, title)
    event = uuid.UUID(created)
    await _sale_starts(bench, event, datetime.now(UTC) + timedelta(days=1))
    await _set_room(bench, event, rate)
    return event


def _load(bench: Bench, mode: str, event: uuid.UUID, seconds: float, buyers: str) -> wrk.Load:
    options = bench.options
    env = {"BENCH_WRK_ROOM": _room_path(event)}
    return wrk.Load(
        mode, bench.url, options.connections, seconds, options.threads, env, (buyers,), SCRIPT
    )


async def _wrk(bench: Bench, load: wrk.Load) -> dict[str, Any]:
    return await asyncio.to_thread(wrk.run, load, bench.roots)


def _once_through_limit(buyers: int) -> float:
    """wrk's duration for a mode whose threads end on their own: a bound for a thread that
    waits for an answer which never comes (a request lost with its connection), which would
    otherwise hold the run up, at the cost of cutting off a service slower than 200/s."""
    return max(60.0, buyers / 200)


async def joins(bench: Bench, event: uuid.UUID, buyers: str) -> dict[str, Any]:
    count = bench.options.buyers
    found = await _wrk(bench, _load(bench, "join", event, _once_through_limit(count), buyers))
    joined = found["counts"].get("answered", 0)
    waiting = await bench.redis.zcard(keys.queue_waiting(event))
    return {
        **found,
        "buyers": count,
        "joined": joined,
        "joins_per_s": round(joined / found["seconds"], 1),
        "waiting_in_redis": waiting,
    }


async def reads(bench: Bench, event: uuid.UUID, buyers: str) -> dict[str, Any]:
    options = bench.options
    status = f"{bench.url}{_room_path(event)}/status"
    return {
        "me": await _wrk(bench, _load(bench, "me", event, options.duration, buyers)),
        "status": await _wrk(
            bench,
            wrk.Load("trivial", status, options.connections, options.duration, options.threads),
        ),
    }


async def _step(bench: Bench, event: uuid.UUID) -> tuple[int, int]:
    """When the room's last admission step ran (Redis ms) and the passes given so far."""
    # One read: the step writes both at once.
    state = await hash_fields(bench.redis, keys.queue_state(event))
    return int(state.get("stepped_at", 0)), int(state.get("served", 0))


async def _step_after(bench: Bench, event: uuid.UUID, after_ms: int) -> tuple[int, int]:
    """The first admission step later than `after_ms`, as soon as it ran."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        stepped, served = await _step(bench, event)
        if stepped > after_ms:
            return stepped, served
        await asyncio.sleep(0.02)
    raise RuntimeError("the admission loop stopped stepping the room")


async def admission(bench: Bench, event: uuid.UUID, rate: int) -> dict[str, Any]:
    """The sale starts; the passes given between admission steps a whole number of minutes
    apart. Credit grows with the time that really passed between two steps, so the count
    is set against the steps' own span."""
    await _sale_starts(bench, event, datetime.now(UTC))
    first = await _step_after(bench, event, 0)
    while first[1] == 0:  # until the loop has read the new start and let buyers in
        first = await _step_after(bench, event, first[0])
    marks = [await _step_after(bench, event, first[0])]
    for minute in range(1, bench.options.minutes + 1):
        due_ms = marks[0][0] + 60_000 * minute
        await asyncio.sleep(max(0.0, due_ms / 1000 - time.time() - 0.05))
        marks.append(await _step_after(bench, event, due_ms - 1))
    minutes = [
        {
            "admitted": served - served_before,
            "span_s": round((stepped - stepped_before) / 1000, 3),
            "per_minute": round((served - served_before) * 60_000 / (stepped - stepped_before), 1),
        }
        for (stepped_before, served_before), (stepped, served) in itertools.pairwise(marks)
    ]
    (start_ms, start_served), (end_ms, end_served) = marks[0], marks[-1]
    per_minute = (end_served - start_served) * 60_000 / (end_ms - start_ms)
    return {
        "rate": rate,
        "rate_asked": bench.options.rate,
        "minutes": minutes,
        "admitted": end_served - start_served,
        "per_minute": round(per_minute, 1),
        "off_by": round(per_minute / rate - 1, 4),
        "waiting_after": await bench.redis.zcard(keys.queue_waiting(event)),
    }


async def _live_holders(bench: Bench, event: uuid.UUID) -> list[str]:
    now_ms = int(time.time() * 1000)
    found = await bench.redis.zrangebyscore(keys.queue_admitted(event), f"({now_ms}", "+inf")
    return list(found)


async def _sample(bench: Bench, event: uuid.UUID, until: float) -> list[dict[str, float]]:
    """The room's figures every SAMPLE_SECONDS until `until` (monotonic)."""
    samples = []
    while (now := time.monotonic()) < until:
        figures = await room_figures(bench.redis, event)
        samples.append(
            {
                "at": now,
                "live": figures.shopping,
                "served": figures.served,
                "waiting": figures.waiting,
            }
        )
        await asyncio.sleep(max(0.0, now + SAMPLE_SECONDS - time.monotonic()))
    return samples


async def capped(
    bench: Bench, event: uuid.UUID, rate: int, token_of: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """A cap while the room runs: every buyer holding a live pass leaves at once (wrk), then
    a share of the cap every second; the live passes, sampled, against the cap."""
    waiting = await bench.redis.zcard(keys.queue_waiting(event))
    # The line must outlast the part: the refill and some three times the cap of leavers.
    cap = max(1, min(bench.options.cap, waiting // 5))
    await _set_room(bench, event, 2 * rate, cap)
    await asyncio.sleep(ROOMS_SETTLE_SECONDS)
    started = time.monotonic()
    sampling = asyncio.create_task(_sample(bench, event, started + CAP_SECONDS))
    holders = [token_of[account] for account in await _live_holders(bench, event)]
    leavers = wrk.write_buyers(bench.folder, holders, "holders.txt")
    drain = await _wrk(
        bench, _load(bench, "leave", event, _once_through_limit(len(holders)), leavers)
    )
    drained = time.monotonic()
    chooser, left, per_second = random.Random(1), 0, max(1, round(cap * LEAVE_SHARE))
    while (now := time.monotonic()) < started + CAP_SECONDS - 1:
        live = await _live_holders(bench, event)
        chosen = chooser.sample(live, min(per_second, len(live)))
        answers = await asyncio.gather(
            *(bench.http.delete(f"{_room_path(event)}/me", headers=token_of[a]) for a in chosen)
        )
        left += sum(answer.status_code == 204 for answer in answers)
        await asyncio.sleep(max(0.0, now + 1 - time.monotonic()))
    samples = await sampling
    settled = next((i for i, s in enumerate(samples) if s["live"] <= cap), len(samples))
    after = next((s for s in samples if s["at"] >= drained), samples[-1])
    freed = cap - after["live"] + left
    let_in = samples[-1]["served"] - after["served"]
    return {
        "cap": cap,
        "rate": 2 * rate,
        "drained": drain["counts"].get("answered", 0),
        "drain_seconds": drain["seconds"],
        "left_after_drain": left,
        "samples": len(samples),
        "highest_live_once_within_cap": max((s["live"] for s in samples[settled:]), default=None),
        "within_cap_after_s": round(samples[settled]["at"] - started, 2)
        if settled < len(samples)
        else None,
        "slots_freed_after_drain": freed,
        "let_in_after_drain": let_in,
        "refilled": round(let_in / freed, 3) if freed else None,
        "waiting_after": samples[-1]["waiting"],
        # Seconds into the part.
        "timeline": [{**s, "at": round(s["at"] - started, 2)} for s in samples],
    }


def spearman(numbers: Sequence[int]) -> float:
    """Rank correlation between the order of `numbers` (the order buyers joined) and the
    numbers' own order (the order they were let in); two or more distinct numbers."""
    ranks = [0] * len(numbers)
    for rank, index in enumerate(sorted(range(len(numbers)), key=numbers.__getitem__)):
        ranks[index] = rank
    return round(statistics.correlation(list(range(len(numbers))), ranks), 4)


async def fairness(bench: Bench) -> dict[str, Any]:
    options = bench.options
    event = await _queued_event(bench, "Fair draw", FAIR_RATE)
    people = await accounts.mint_accounts(
        bench.engine, bench.backends.jwt_secret, options.early + options.late
    )
    early, late = people[: options.early], people[options.early :]

    async def join_in_turn(group: list[dict[str, str]]) -> None:
        # One after another, so that the order of joining is known exactly.
        for headers in group:
            answer = await bench.http.post(f"{_room_path(event)}/join", headers=headers)
            answer.raise_for_status()

    await join_in_turn(early)
    await _sale_starts(bench, event, datetime.now(UTC))
    # Every worker's cached start is the new one: the later buyers queue by arrival.
    await asyncio.sleep(CACHE_SETTLE_SECONDS)
    await join_in_turn(late)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while (await _step(bench, event))[1] < len(people):
        if time.monotonic() > deadline:
            raise RuntimeError("the fairness room did not let every buyer in")
        await asyncio.sleep(0.1)
    passes = await hash_fields(bench.redis, keys.queue_passes(event))
    numbers = {account: int(number) for account, number in passes.items()}
    early_numbers = [numbers[wrk.owner(h)] for h in early]
    late_numbers = [numbers[wrk.owner(h)] for h in late]
    return {
        "early": len(early),
        "late": len(late),
        "rho_early": spearman(early_numbers),
        "rho_early_standard_error": round(1 / math.sqrt(len(early) - 1), 4),
        "rho_late": spearman(late_numbers),
        "early_all_first": max(early_numbers) < min(late_numbers),
    }


def _targets(result: dict[str, Any], options: Options) -> dict[str, dict[str, Any]]:
    """Each target with what was found and whether it was met (None: not measured)."""
    joined, admitted, cap, fair = (
        result["joins"],
        result["admission"],
        result["cap"],
        result["fairness"],
    )
    all_joined = joined["joined"] == options.buyers and not joined["counts"].get("other")
    line_lasted = admitted["waiting_after"] > 0
    return {
        "joins": {
            "wanted": f"{SCENARIO_BUYERS:,} buyers within {SCENARIO_SECONDS:g} s: "
            f"{SCENARIO_BUYERS / SCENARIO_SECONDS:,.0f} joins/s, every one answered 200",
            "found": f"{joined['joins_per_s']:,} joins/s; {joined['joined']:,} of "
            f"{options.buyers:,} in {joined['seconds']} s",
            "met": all_joined and joined["joins_per_s"] >= SCENARIO_BUYERS / SCENARIO_SECONDS,
        },
        "waiting": {
            "wanted": f"exactly {options.buyers:,} waiting in Redis",
            "found": f"{joined['waiting_in_redis']:,}",
            "met": joined["waiting_in_redis"] == options.buyers,
        },
        "rate": {
            "wanted": f"{admitted['rate']:,} a minute, within ±{RATE_TOLERANCE:.0%}",
            "found": f"{admitted['per_minute']:,} ({admitted['off_by']:+.1%})",
            "met": abs(admitted["off_by"]) <= RATE_TOLERANCE if line_lasted else None,
        },
        "cap": {
            "wanted": f"live passes never above the cap ({cap['cap']})",
            "found": f"highest {cap['highest_live_once_within_cap']}",
            "met": cap["highest_live_once_within_cap"] is not None
            and cap["highest_live_once_within_cap"] <= cap["cap"],
        },
        "refill": {
            "wanted": f"freed slots filled again (≥ {REFILL_TARGET:.0%})",
            "found": f"{cap['let_in_after_drain']} let in, {cap['slots_freed_after_drain']} freed",
            "met": cap["refilled"] >= REFILL_TARGET
            if cap["refilled"] is not None and cap["waiting_after"]
            else None,
        },
        "shuffle": {
            "wanted": f"pre-sale joiners: rho within ±{RHO_BOUND}",
            "found": f"rho = {fair['rho_early']}",
            "met": abs(fair["rho_early"]) < RHO_BOUND,
        },
        "arrival_order": {
            "wanted": "later joiners: rho = 1.0",
            "found": f"rho = {fair['rho_late']}",
            "met": fair["rho_late"] == 1.0,
        },
        "draw_first": {
            "wanted": "every pre-sale joiner let in before any later one",
            "found": "yes" if fair["early_all_first"] else "no",
            "met": fair["early_all_first"],
        },
    }


async def measure(url: str, backends: Backends, options: Options) -> dict[str, Any]:
    engine = create_async_engine(backends.database_url, poolclass=NullPool)
    redis = Redis.from_url(backends.redis_url, decode_responses=True)
    try:
        async with targets.setup_client(url) as http:
            (organizer,) = await accounts.mint_accounts(
                engine, backends.jwt_secret, 1, Role.ORGANIZER
            )
            loadgen.progress(f"minting {options.buyers:,} buyers")
            people = await accounts.mint_accounts(engine, backends.jwt_secret, options.buyers)
            with tempfile.TemporaryDirectory(prefix="seatlock-wrk-") as folder:
                roots = loadgen.roots(url, backends)
                bench = Bench(
                    options, url, backends, engine, redis, http, organizer, Path(folder), roots
                )
                return await _parts(bench, people)
    finally:
        await redis.aclose()
        await engine.dispose()


async def _parts(bench: Bench, people: list[dict[str, str]]) -> dict[str, Any]:
    options = bench.options
    rate = _paced(options)
    event = await _queued_event(bench, "Waiting room", rate)
    buyers = wrk.write_buyers(bench.folder, people)
    await targets.warm([bench.url], None, bench.organizer, options.workers)
    status = f"{bench.url}{_room_path(event)}/status"
    await _wrk(bench, wrk.Load("trivial", status, options.connections, WARM_UP_SECONDS))
    loadgen.progress(f"{options.buyers:,} buyers join")
    result: dict[str, Any] = {"joins": await joins(bench, event, buyers)}
    loadgen.progress("reading places and the room's status")
    result["reads"] = await reads(bench, event, buyers)
    loadgen.progress(f"the sale starts: {rate:,} a minute for {options.minutes} min")
    result["admission"] = await admission(bench, event, rate)
    loadgen.progress("a cap while the room runs")
    token_of = {wrk.owner(headers): headers for headers in people}
    result["cap"] = await capped(bench, event, rate, token_of)
    loadgen.progress(f"fairness: {options.early:,} + {options.late:,} buyers in turn")
    result["fairness"] = await fairness(bench)
    result["servers"] = await conditions.server_versions(bench.engine, bench.backends.redis_url)
    result["targets"] = _targets(result, options)
    return result


def _cpu(share: dict[str, float]) -> str:
    return " | ".join(
        f"{share.get(group, 0):.0%}"
        for group in ("service", "postgresql", "valkey", "client", "other")
    )


def _refused(figures: dict[str, Any]) -> int:
    """Answers other than 200: wrk's plain request counts only those from 400 on."""
    if figures["mode"] == "trivial":
        refused: int = figures["socket_errors"]["status"]
        return refused
    other: int = figures["counts"].get("other", 0)
    return other


CPU_COLUMNS = "service CPU | PostgreSQL CPU | Valkey CPU | wrk CPU | other CPU"


def markdown(result: dict[str, Any]) -> str:
    joined, reads_, admitted, cap, fair = (
        result["joins"],
        result["reads"],
        result["admission"],
        result["cap"],
        result["fairness"],
    )
    errors = sum(joined["socket_errors"].values()) - joined["socket_errors"].get("status", 0)
    lines = [
        "### Joins before the sale",
        "",
        f"| buyers | took s | joins/s | p50 ms | p99 ms | socket errors | non-200 | "
        f"waiting in Redis | {CPU_COLUMNS} |",
        "|---" * 13 + "|",
        f"| {joined['buyers']:,} | {joined['seconds']} | {joined['joins_per_s']:,} | "
        f"{joined['latency_ms']['p50']} | {joined['latency_ms']['p99']} | {errors} | "
        f"{joined['counts'].get('other', 0)} | {joined['waiting_in_redis']:,} | "
        f"{_cpu(joined['cpu_share'])} |",
        "",
        "### Place reads",
        "",
        f"| route | reads/s | p50 ms | p99 ms | non-200 | {CPU_COLUMNS} |",
        "|---" * 10 + "|",
    ]
    for name, label in (("me", "GET .../queue/me"), ("status", "GET .../queue/status")):
        r = reads_[name]
        lines.append(
            f"| {label} | {r['requests_per_s']:,} | {r['latency_ms']['p50']} | "
            f"{r['latency_ms']['p99']} | {_refused(r)} | "
            f"{_cpu(r['cpu_share'])} |"
        )
    lines += [
        "",
        f"### Admission at {admitted['rate']:,} a minute",
        "",
        *(
            [
                f"(--rate {admitted['rate_asked']:,} was lowered: {joined['buyers']:,} buyers "
                f"would not last {len(admitted['minutes'])} min at that pace.)",
                "",
            ]
            if admitted["rate"] != admitted["rate_asked"]
            else []
        ),
        "| minute | admitted | between steps s | per 60 s |",
        "|---|---|---|---|",
        *(
            f"| {n} | {m['admitted']:,} | {m['span_s']} | {m['per_minute']:,} |"
            for n, m in enumerate(admitted["minutes"], 1)
        ),
        f"| all | {admitted['admitted']:,} | | {admitted['per_minute']:,} |",
        "",
        f"Cap {cap['cap']} at {cap['rate']:,} a minute: {cap['drained']:,} holders left at once "
        f"({cap['drain_seconds']} s), then {cap['left_after_drain']} more a share at a time; "
        f"within the cap {cap['within_cap_after_s']} s into the part, highest then "
        f"{cap['highest_live_once_within_cap']} over {cap['samples']} samples; "
        f"{cap['let_in_after_drain']} let in for {cap['slots_freed_after_drain']} slots freed.",
        "",
        f"Fairness: {fair['early']:,} pre-sale joiners rho = {fair['rho_early']} (a true "
        f"shuffle's standard error: {fair['rho_early_standard_error']}), "
        f"{fair['late']:,} later joiners rho = {fair['rho_late']}.",
        "",
        "### Targets",
        "",
        "| target | found | |",
        "|---|---|---|",
    ]
    verdicts = {True: "met", False: "MISSED", None: "not measured"}
    lines += [
        f"| {t['wanted']} | {t['found']} | {verdicts[t['met']]} |"
        for t in result["targets"].values()
    ]
    return "\n".join(lines)


def parse(argv: Sequence[str]) -> tuple[Options, str | None]:
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=defaults.buyers, help="buyers who join")
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="seconds per read phase"
    )
    parser.add_argument("--rate", type=int, default=defaults.rate, help="buyers let in a minute")
    parser.add_argument(
        "--minutes", type=int, default=defaults.minutes, help="whole minutes of admission counted"
    )
    parser.add_argument("--cap", type=int, default=defaults.cap, help="live passes at most")
    parser.add_argument("--early", type=int, default=defaults.early, help="pre-sale joiners")
    parser.add_argument("--late", type=int, default=defaults.late, help="joiners after the start")
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="wrk threads")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--server", choices=SERVERS, default=defaults.server)
    parser.add_argument("--json", dest="json_path")
    args = vars(parser.parse_args(argv))
    json_path = args.pop("json_path")
    options = Options(**args)
    if min(options.buyers, options.minutes, options.cap, options.rate) < 1:
        parser.error("--buyers, --minutes, --cap and --rate must be at least 1")
    if min(options.early, options.late) < 2:
        parser.error("--early and --late need two buyers or more: they are ranked")
    return options, json_path


def main() -> int:
    options, json_path = parse(sys.argv[1:])
    wrk.executable()
    machine = conditions.machine()
    with loadgen.service(options.workers, options.server) as (backends, url):
        result = asyncio.run(measure(url, backends, options))
    print(markdown(result))
    machine["servers"] = result.pop("servers")
    conditions.save({"config": asdict(options), "machine": machine, **result}, json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
