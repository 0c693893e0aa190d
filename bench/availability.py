"""Live availability: the snapshot against the full seat map, and the stream of changes
under many subscribers, on one service.

    .venv/bin/python bench/availability.py --workers 2 --json availability.json
    .venv/bin/python bench/availability.py --part snapshot --sizes 20000 100000 --revalidate
    .venv/bin/python bench/availability.py --part stream --subscribers 1000 --buyers 50

Part `snapshot`: for events of 20,000 and 100,000 seats with 10 % of their seats taken
(sold and reserved straight in PostgreSQL before the first read, a fifth of them held
through the API), the bytes on the wire of one read of `GET /api/events/{id}/availability`
and of `GET /api/events/{id}/seats` with `Accept-Encoding: gzip`; then reads/s and latency
of 16 readers on each endpoint, side by side in one run (rounds in alternating order),
while 16 churners hold and release seats so that the version keeps moving. Readers send no
If-None-Match, as a browser with nothing cached; `--revalidate` adds a phase of snapshot
reads that do (the seat map has no ETag).

Part `stream`: see bench/subscribers.py.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import resource
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from sqlalchemy import NullPool, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import conditions, cpu, loadgen, subscribers, targets
from bench.loadgen import HoldCycles, Phase
from bench.sale import SeatInfo
from bench.wire import Connection, WireError
from seatlock.availability.changes import ChangeLog
from seatlock.models import Seat, SeatState
from seatlock.redis_client import connect_redis
from seatlock.settings import Settings
from seatlock.testing import accounts
from seatlock.testing.servers import SERVERS, Backends

PARTS = ("snapshot", "stream")
ENDPOINTS = {
    "snapshot": "/api/events/{}/availability",
    "seat_map": "/api/events/{}/seats",
}
LAYOUT = "/api/events/{}/layout"
GZIP = {"Accept-Encoding": "gzip"}
# 16 readers of a 100,000-seat map wait tens of seconds each in turn.
READ_TIMEOUT_SECONDS = 300.0
# The most seats one buyer may hold of an event (its max_seats_per_booking).
SEATS_PER_HOLDER = 10
# The targets.
MAX_SNAPSHOT_BYTES = {100_000: 100_000}
MIN_READS_RATIO = {20_000: 50.0}
MAX_DELIVERY_P99_MS = 1000.0


@dataclass(frozen=True)
class SnapshotOptions:
    sizes: tuple[int, ...] = (20_000, 100_000)
    taken_share: float = 0.1
    # Of all seats, held through the API (part of the taken share).
    held_share: float = 0.02
    readers: int = 16
    churners: int = 16
    duration: float = 10.0
    rounds: int = 2
    revalidate: bool = False
    seed: int = 1


@dataclass
class Reads:
    """One phase of readers on one endpoint."""

    phase: Phase
    cpu_share: dict[str, float]
    versions_seen: set[str] = field(default_factory=set)
    not_modified: int = 0


async def _mark_taken(engine: AsyncEngine, event_id: str, seats: list[SeatInfo]) -> None:
    """Half of `seats` sold, half reserved, straight in PostgreSQL (no booking): done
    before anything reads the event's states, so that Redis's cache starts from them."""
    half = len(seats) // 2
    async with engine.begin() as conn:
        for state, part in ((SeatState.SOLD, seats[:half]), (SeatState.RESERVED, seats[half:])):
            await conn.execute(
                update(Seat)
                .where(Seat.event_id == uuid.UUID(event_id))
                .where(Seat.id.in_([uuid.UUID(s.id) for s in part]))
                .values(state=state)
            )


async def _hold(
    base_url: str, event_id: str, seats: list[SeatInfo], people: list[dict[str, str]]
) -> None:
    """Hold `seats` through the API, SEATS_PER_HOLDER to a buyer, for the rest of the run."""
    async with targets.setup_client(base_url) as http:
        replies = await asyncio.gather(
            *(
                http.post(
                    f"/api/events/{event_id}/holds",
                    json={"seat_ids": [s.id for s in seats[at : at + SEATS_PER_HOLDER]]},
                    headers=buyer,
                )
                for buyer, at in zip(people, range(0, len(seats), SEATS_PER_HOLDER), strict=True)
            )
        )
    refused = [r.status_code for r in replies if r.status_code != 201]
    if refused:
        raise RuntimeError(f"holding the taken seats failed: {refused[:5]}")


async def _wire_sizes(base_url: str, event_id: str) -> dict[str, Any]:
    """One read of each endpoint (and of the layout, read once per page) with gzip."""
    sizes: dict[str, Any] = {}
    async with targets.setup_client(base_url) as http:
        for name, path in {**ENDPOINTS, "layout": LAYOUT}.items():
            reply = await http.get(path.format(event_id), headers=GZIP)
            reply.raise_for_status()
            sizes[name] = {
                "bytes_on_wire": reply.num_bytes_downloaded,
                "bytes_decoded": len(reply.content),
                "content_encoding": reply.headers.get("content-encoding", "identity"),
            }
            if name == "snapshot":
                body = reply.json()
                sizes[name]["seat_sets"] = {
                    state: {"encoding": body[state]["encoding"], "count": body[state]["count"]}
                    for state in ("held", "reserved", "sold")
                }
    return sizes


async def _reads(
    path: str, conns: list[Connection], seconds: float, roots: dict[str, int], revalidate: bool
) -> Reads:
    """Every reader GETs `path` back to back, sending the ETag of its last answer when
    `revalidate`."""
    etags: list[str | None] = [None] * len(conns)
    found = Reads(Phase(path, 0, 0, 0.0, []), {})

    async def read(conn: Connection, index: int) -> bool:
        headers = dict(GZIP)
        if revalidate and (etag := etags[index]) is not None:
            headers["If-None-Match"] = etag
        try:
            reply = await conn.request("GET", path, None, headers)
        except WireError:
            return False
        if etag := reply.headers.get("etag"):
            etags[index] = etag
            found.versions_seen.add(etag)
        found.not_modified += reply.status == 304
        return reply.status in (200, 304)

    meter = cpu.Meter(roots)
    meter.start()
    found.phase = await loadgen.phase(path, conns, seconds, read)
    found.cpu_share = meter.stop(found.phase.seconds)
    return found


def _mean_share(reads: list[Reads]) -> dict[str, float]:
    """CPU shares of several phases, weighted by their length."""
    total = sum(r.phase.seconds for r in reads)
    names = {name for r in reads for name in r.cpu_share}
    return {
        name: round(sum(r.cpu_share.get(name, 0.0) * r.phase.seconds for r in reads) / total, 3)
        for name in sorted(names)
    }


def _figures(reads: list[Reads]) -> dict[str, Any]:
    phase = loadgen.combined(reads[0].phase.name, [r.phase for r in reads])
    return {
        **phase.figures(),
        # Answered reads only (200 or 304), per second.
        "reads_per_s": round(phase.ok / phase.seconds, 1),
        "not_modified": sum(r.not_modified for r in reads),
        "versions_seen": len(set().union(*(r.versions_seen for r in reads))),
        "cpu_share": _mean_share(reads),
    }


async def _side_by_side(
    event_id: str,
    readers: list[Connection],
    options: SnapshotOptions,
    order: int,
    roots: dict[str, int],
) -> dict[str, list[Reads]]:
    """Rounds of a phase on each endpoint, the order alternating from round to round (and
    from one event size to the next: `order`)."""
    reads: dict[str, list[Reads]] = {name: [] for name in ENDPOINTS}
    for number in range(options.rounds):
        names = list(ENDPOINTS)
        for name in names if (number + order) % 2 == 0 else reversed(names):
            path = ENDPOINTS[name].format(event_id)
            found = await _reads(path, readers, options.duration, roots, False)
            reads[name].append(found)
            loadgen.progress(
                f"round {number + 1}, {name}: {found.phase.ok / found.phase.seconds:.1f} "
                f"reads/s in {found.phase.seconds:.1f} s"
            )
    return reads


async def _one_size(
    base_url: str, backends: Backends, size: int, order: int, options: SnapshotOptions
) -> dict[str, Any]:
    rng = random.Random(f"{options.seed}-{size}")
    roots = loadgen.roots(base_url, backends)
    loadgen.progress(f"{size:,} seats: creating the event")
    async with loadgen.event_on_sale(base_url, backends, size) as (engine, event_id, seats):
        loadgen.progress(f"{size:,} seats: event created; taking {options.taken_share:.0%}")
        taken = rng.sample(seats, round(size * options.taken_share))
        held = taken[: round(size * options.held_share)]
        await _mark_taken(engine, event_id, taken[len(held) :])
        holders = math.ceil(len(held) / SEATS_PER_HOLDER)
        people = await accounts.mint_accounts(
            engine, backends.jwt_secret, holders + options.churners
        )
        await _hold(base_url, event_id, held, people[:holders])
        wire = await _wire_sizes(base_url, event_id)
        loadgen.progress(f"{size:,} seats: seats taken, sizes read; reading")
        taken_ids = {s.id for s in taken}
        free = [s.id for s in seats if s.id not in taken_ids]
        churners, churn = people[holders:], HoldCycles()
        readers = [Connection(base_url, READ_TIMEOUT_SECONDS) for _ in range(options.readers)]
        churning = [Connection(base_url) for _ in churners]
        stopped = False

        async def cycle(conn: Connection, index: int) -> bool:
            return await churn.cycle(conn, churners[index], event_id, rng.choice(free), 0.0)

        log = ChangeLog(connect_redis(Settings(redis_url=backends.redis_url)))
        first = await log.version(uuid.UUID(event_id)) or 0
        churned = asyncio.create_task(
            loadgen.phase("churn", churning, math.inf, cycle, lambda: stopped)
        )
        reads = await _side_by_side(event_id, readers, options, order, roots)
        revalidated = None
        if options.revalidate:
            path = ENDPOINTS["snapshot"].format(event_id)
            revalidated = await _reads(path, readers, options.duration, roots, True)
        stopped = True
        churn_phase = await churned
        last = await log.version(uuid.UUID(event_id)) or first
        await log.redis.aclose()
        for conn in readers + churning:
            conn.close()
    figures = {name: _figures(found) for name, found in reads.items()}
    snapshot, seat_map = (figures[name]["reads_per_s"] for name in ENDPOINTS)
    return {
        "seats": size,
        "taken": {"sold_or_reserved": len(taken) - len(held), "held": len(held)},
        "wire": wire,
        "reads": figures,
        "reads_ratio_snapshot_over_seat_map": round(snapshot / seat_map, 1) if seat_map else None,
        "revalidated_snapshot_reads": _figures([revalidated]) if revalidated else None,
        "churn": {
            **churn_phase.figures(),
            "other_answers": dict(churn.tally),
            "versions_per_s": round((last - first) / churn_phase.seconds, 1),
        },
    }


def targets_met(result: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's targets, True or False; None when this run did not measure one."""
    sizes = {r["seats"]: r for r in result.get("snapshot", [])}
    found: dict[str, bool | None] = {}
    for size, most in MAX_SNAPSHOT_BYTES.items():
        measured = sizes.get(size)
        found[f"snapshot of {size:,} seats <= {most:,} bytes on the wire"] = (
            measured["wire"]["snapshot"]["bytes_on_wire"] <= most if measured else None
        )
    for size, least in MIN_READS_RATIO.items():
        measured = sizes.get(size)
        ratio = measured["reads_ratio_snapshot_over_seat_map"] if measured else None
        found[f"snapshot reads/s >= {least:g} x seat map, {size:,} seats"] = (
            ratio >= least if ratio is not None else None
        )
    stream = result.get("stream")
    found[f"delivery p99 <= {MAX_DELIVERY_P99_MS:g} ms"] = (
        stream["delivery_ms"]["p99"] <= MAX_DELIVERY_P99_MS if stream else None
    )
    found["0 changes lost"] = (
        stream["changes_lost"] == 0 and stream["resyncs"] == 0 if stream else None
    )
    return found


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for run in result.get("snapshot", []):
        wire, reads, churn = run["wire"], run["reads"], run["churn"]
        lines += [
            f"### {run['seats']:,} seats ({run['taken']['sold_or_reserved']:,} sold or reserved, "
            f"{run['taken']['held']:,} held)",
            "",
            "| endpoint | bytes on the wire (gzip) | decoded | reads/s | p50 ms | p99 ms | "
            "failed | service CPU | client CPU |",
            "|---" * 9 + "|",
        ]
        for name in ENDPOINTS:
            r, share = reads[name], reads[name]["cpu_share"]
            lines.append(
                f"| {name} | {wire[name]['bytes_on_wire']:,} | {wire[name]['bytes_decoded']:,} "
                f"| {r['reads_per_s']:,} | {r['latency_ms']['p50']} | "
                f"{r['latency_ms']['p99']} | {r['failed']} | {share.get('service', 0):.0%} | "
                f"{share.get('client', 0):.0%} |"
            )
        if (again := run["revalidated_snapshot_reads"]) is not None:
            lines.append(
                f"| snapshot, If-None-Match ({again['not_modified']:,} of {again['requests']:,} "
                f"answered 304) | | | {again['reads_per_s']:,} | {again['latency_ms']['p50']} "
                f"| {again['latency_ms']['p99']} | {again['failed']} | "
                f"{again['cpu_share'].get('service', 0):.0%} | "
                f"{again['cpu_share'].get('client', 0):.0%} |"
            )
        lines += [
            "",
            f"- reads/s, snapshot / seat map: {run['reads_ratio_snapshot_over_seat_map']}",
            f"- layout (read once): {wire['layout']['bytes_on_wire']:,} bytes on the wire",
            f"- snapshot versions seen by readers: {reads['snapshot']['versions_seen']:,}; "
            f"churn {churn['requests_per_s']} hold+release cycles/s, "
            f"{churn['versions_per_s']} versions/s",
            "",
        ]
    if (stream := result.get("stream")) is not None:
        d, share = stream["delivery_ms"], stream["cpu_share"]
        lines += [
            f"### Stream: {stream['config']['subscribers']:,} subscribers "
            f"(per worker: {stream['subscribers_per_worker']}), "
            f"{stream['config']['buyers']} buyers, {stream['seconds']} s, "
            f"{stream['streams_gzipped']:,} streams gzipped",
            "",
            f"- holds: {stream['holds']:,} ({stream['holds_per_s']}/s); changes made: "
            f"{stream['changes_made']:,} ({stream['changes_per_s']}/s); received per "
            f"subscriber, mean: {stream['changes_received_mean']:,}",
            f"- delivery, hold's 201 to subscriber: p50 {d['p50']} ms, p95 {d['p95']} ms, "
            f"p99 {d['p99']} ms, max {d['max']} ms over {stream['delivery_pairs']:,} pairs "
            f"(expected {stream['delivery_pairs_expected']:,})",
            f"- lost: {stream['changes_lost']} changes at {stream['subscribers_with_loss']} "
            f"subscribers; received twice: {stream['changes_received_twice']}; resyncs: "
            f"{stream['resyncs']}; streams ended by the server: "
            f"{stream['streams_ended_by_server']}; failed: {stream['streams_failed'] or 0}",
            f"- CPU share: service {share.get('service', 0):.0%} "
            f"({stream['service_cores']} cores), client {share.get('client', 0):.0%}, "
            f"valkey {share.get('valkey', 0):.0%}, postgresql {share.get('postgresql', 0):.0%}, "
            f"other {share.get('other', 0):.0%}",
            "",
        ]
    for name, met in result["targets"].items():
        lines.append(
            f"- target {name}: {'not measured' if met is None else 'met' if met else 'MISSED'}"
        )
    return "\n".join(lines)


async def measure(
    base_url: str,
    backends: Backends,
    parts: tuple[str, ...],
    snapshot: SnapshotOptions,
    stream: subscribers.Options,
) -> dict[str, Any]:
    engine = create_async_engine(backends.database_url, poolclass=NullPool)
    try:
        servers = await conditions.server_versions(engine, backends.redis_url)
    finally:
        await engine.dispose()
    result: dict[str, Any] = {"machine": {**conditions.machine(), "servers": servers}}
    if "snapshot" in parts:
        result["snapshot"] = [
            await _one_size(base_url, backends, size, order, snapshot)
            for order, size in enumerate(snapshot.sizes)
        ]
    if "stream" in parts:
        result["stream"] = await subscribers.measure(base_url, backends, stream)
    result["targets"] = targets_met(result)
    return result


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_path")
    given = SnapshotOptions()
    part = parser.add_argument_group("part snapshot")
    part.add_argument("--sizes", type=int, nargs="+", default=list(given.sizes))
    part.add_argument("--taken-share", type=float, default=given.taken_share)
    part.add_argument("--held-share", type=float, default=given.held_share)
    part.add_argument("--readers", type=int, default=given.readers)
    part.add_argument("--churners", type=int, default=given.churners)
    part.add_argument(
        "--duration", type=float, default=given.duration, help="seconds per endpoint and round"
    )
    part.add_argument("--rounds", type=int, default=given.rounds)
    part.add_argument("--revalidate", action="store_true", help="a phase with If-None-Match")
    streamed = subscribers.Options()
    part = parser.add_argument_group("part stream")
    part.add_argument("--subscribers", type=int, default=streamed.subscribers)
    part.add_argument("--buyers", type=int, default=streamed.buyers)
    part.add_argument("--stream-seats", type=int, default=streamed.seats)
    part.add_argument("--stream-duration", type=float, default=streamed.duration)
    part.add_argument(
        "--pause", type=float, default=streamed.pause, help="a buyer's wait after each step"
    )
    part.add_argument("--drain", type=float, default=streamed.drain)
    part.add_argument(
        "--stream-encoding",
        choices=["gzip", "identity"],
        default="gzip" if streamed.gzip else "identity",
        help="what subscribers accept (browsers: gzip)",
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    snapshot = SnapshotOptions(
        sizes=tuple(args.sizes),
        taken_share=args.taken_share,
        held_share=args.held_share,
        readers=args.readers,
        churners=args.churners,
        duration=args.duration,
        rounds=args.rounds,
        revalidate=args.revalidate,
        seed=args.seed,
    )
    stream = subscribers.Options(
        subscribers=args.subscribers,
        buyers=args.buyers,
        seats=args.stream_seats,
        duration=args.stream_duration,
        pause=args.pause,
        drain=args.drain,
        gzip=args.stream_encoding == "gzip",
        seed=args.seed,
    )
    parts = PARTS if args.part == "both" else (args.part,)
    # A socket per subscriber, here and in the service (which inherits the limit).
    _, most = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))
    with loadgen.service(args.workers, args.server) as (backends, base_url):
        result = uvloop.run(measure(base_url, backends, parts, snapshot, stream))
    result["config"] = vars(args)
    print(markdown(result))
    conditions.save(result, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
