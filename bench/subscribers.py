"""Many subscribers of one event's stream of seat changes while buyers hold and release
seats: how long a hold takes to reach every subscriber, whether any subscriber misses a
change, and what the stream costs the service.

Each subscriber is a raw HTTP/1.1 connection (asyncio streams, no client library: a
thousand of them must leave the cores to the service) that reads the chunked
`text/event-stream` answer. Versions are consecutive, so a subscriber lost a change exactly
when its versions have a gap or it never got the last one. A hold is matched to its change
by its seat: each buyer holds only seats of its own, one at a time, so the k-th hold of a
seat made the k-th `held` change naming it in the change log (read from Redis as the run
goes, so that trimming the log loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
import uuid
import zlib
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from bench import cpu, loadgen
from bench.loadgen import HoldCycles
from bench.recorder import summary
from bench.sale import SeatInfo
from bench.wire import Connection
from seatlock.availability.changes import Change, ChangeLog
from seatlock.redis_client import connect_redis
from seatlock.settings import Settings
from seatlock.testing import accounts
from seatlock.testing.servers import Backends

# Subscribers connecting at once.
OPENING = 64
# How often the change log is copied from Redis during the run.
LOG_READ_SECONDS = 0.5
DRAIN_STEP_SECONDS = 0.05
# zlib's window bits for a gzip wrapper.
GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True)
class Options:
    subscribers: int = 1000
    buyers: int = 50
    seats: int = 2000
    duration: float = 30.0
    # Each buyer waits about this long (±50 %) after a hold and after a release.
    pause: float = 0.5
    # How long subscribers may take to get the last change once the buyers stopped.
    drain: float = 10.0
    # Ask for a gzipped stream, as browsers' EventSource does.
    gzip: bool = True
    seed: int = 1


class ChangeIn(msgspec.Struct):
    version: int
    state: str
    cause: str
    seats: list[str]


class ChangesIn(msgspec.Struct):
    version: int
    changes: list[ChangeIn]


_decode_changes = msgspec.json.Decoder(ChangesIn).decode
Versions = tuple[int, ...]


class Frames:
    """The versions in each `changes` frame, decoded once however many subscribers get the
    same bytes."""

    def __init__(self) -> None:
        self._seen: dict[bytes, Versions] = {}

    def versions(self, data: bytes) -> Versions:
        found = self._seen.get(data)
        if found is None:
            found = self._seen[data] = tuple(c.version for c in _decode_changes(data).changes)
        return found


@dataclass(eq=False)
class Subscriber:
    """One EventSource-like client: every frame it received, with the time it arrived."""

    received: list[tuple[Versions, float]] = field(default_factory=list)
    resyncs: int = 0
    last: int = 0
    closed_by_server: bool = False
    failure: str | None = None
    _writer: asyncio.StreamWriter | None = None
    # Inflates a chunk of a gzipped stream.
    _inflate: Callable[[bytes], bytes] | None = None

    @property
    def gzipped(self) -> bool:
        return self._inflate is not None

    async def connect(self, base_url: str, path: str, gzip: bool) -> asyncio.StreamReader:
        url = urlsplit(base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        reader, self._writer = await asyncio.open_connection(host, port)
        self._writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
            f"{'Accept-Encoding: gzip' if gzip else ''}\r\n\r\n".encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if head.split(b" ", 2)[1] != b"200" or b"transfer-encoding: chunked" not in head:
            raise RuntimeError(f"the stream answered {head.decode('latin-1')!r}")
        if b"content-encoding: gzip" in head:
            # The service flushes its compressor after every event: each chunk inflates.
            self._inflate = zlib.decompressobj(GZIP_WBITS).decompress
        return reader

    async def listen(self, reader: asyncio.StreamReader, frames: Frames) -> None:
        """Read frames until the server ends the answer or the task is cancelled."""
        try:
            await self._read(reader, frames)
        except (OSError, EOFError, ValueError, zlib.error, msgspec.DecodeError) as exc:
            # asyncio.IncompleteReadError is an EOFError.
            self.failure = f"{type(exc).__name__}: {exc}"[:200]

    async def _read(self, reader: asyncio.StreamReader, frames: Frames) -> None:
        pending = b""
        while size_line := await reader.readline():
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            chunk = (await reader.readexactly(size + 2))[:-2]
            at = time.monotonic()
            if self._inflate is not None:
                chunk = self._inflate(chunk)
            # Events end with an empty line; the service ends lines with CRLF or LF.
            *events, pending = (pending + chunk).replace(b"\r\n", b"\n").split(b"\n\n")
            for event in events:
                self._take(event, at, frames)
        self.closed_by_server = True

    def _take(self, event: bytes, at: float, frames: Frames) -> None:
        kind, data = b"message", b""
        for line in event.split(b"\n"):
            name, _, value = line.partition(b":")
            if name == b"event":
                kind = value.strip()
            elif name == b"data":
                data = value.removeprefix(b" ")
        if kind == b"resync":
            self.resyncs += 1
        elif kind == b"changes":
            versions = frames.versions(data)
            self.received.append((versions, at))
            self.last = max(self.last, versions[-1])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def losses(self, first: int, last: int) -> tuple[int, int]:
        """(changes missing between `first` and `last`, changes received twice)."""
        missing = duplicates = 0
        expected = first
        for versions, _ in self.received:
            for version in versions:
                if version < expected:
                    duplicates += 1
                    continue
                missing += version - expected
                expected = version + 1
        return missing + max(0, last + 1 - expected), duplicates


async def _buyer(
    conn: Connection,
    headers: dict[str, str],
    event_id: str,
    seats: list[str],
    options: Options,
    holds: HoldCycles,
    deadline: float,
) -> None:
    """Hold and release seats of its own, one after the other, until the deadline."""
    rng = random.Random(f"{options.seed}-{seats[0]}")
    for seat in itertools.cycle(seats):
        if time.monotonic() >= deadline:
            return
        await holds.cycle(conn, headers, event_id, seat, options.pause * rng.uniform(0.5, 1.5))


def _shares(seats: list[SeatInfo], buyers: int) -> list[list[str]]:
    """Each buyer's own seats (the last seat is the warm-up's)."""
    return [[s.id for s in seats[i:-1:buyers]] for i in range(buyers)]


async def _copy_log(log: ChangeLog, event_id: uuid.UUID, after: int, into: list[Change]) -> None:
    """Copy the event's change log as it grows; runs until cancelled."""
    position = after
    while True:
        while batch := await log.after(event_id, position):
            into += batch
            position = batch[-1].version
        await asyncio.sleep(LOG_READ_SECONDS)


def delivery_ms(
    holds: HoldCycles, log: list[Change], subscribers: list[Subscriber]
) -> array[float]:
    """Per subscriber and hold: from the hold's 201 to the frame naming its seat held."""
    made_at: dict[tuple[str, int], float] = {}
    times: Counter[str] = Counter()
    for seat, at in holds.made:
        made_at[(seat, times[seat])] = at
        times[seat] += 1
    held_at: dict[int, float] = {}
    times.clear()
    for change in log:
        if change.state == "held" and change.cause == "hold":
            seat = change.seats[0]
            if (key := (seat, times[seat])) in made_at:
                held_at[change.version] = made_at[key]
            times[seat] += 1
    latencies = array("d")
    for subscriber in subscribers:
        for versions, at in subscriber.received:
            latencies.extend((at - held_at[v]) * 1000 for v in versions if v in held_at)
    return latencies


async def _connect_all(
    base_url: str, path: str, options: Options, frames: Frames
) -> tuple[list[Subscriber], list[asyncio.Task[None]]]:
    gate = asyncio.Semaphore(OPENING)
    subscribers = [Subscriber() for _ in range(options.subscribers)]
    listening: list[asyncio.Task[None]] = []

    async def one(subscriber: Subscriber) -> None:
        async with gate:
            reader = await subscriber.connect(base_url, path, options.gzip)
        listening.append(asyncio.create_task(subscriber.listen(reader, frames)))

    await asyncio.gather(*(one(s) for s in subscribers))
    return subscribers, listening


async def _drain(subscribers: list[Subscriber], last: int, seconds: float) -> float:
    """Wait until every subscriber got version `last` (or `seconds` passed): how long."""
    started = time.monotonic()
    for _ in range(int(seconds / DRAIN_STEP_SECONDS)):
        if all(s.last >= last for s in subscribers):
            break
        await asyncio.sleep(DRAIN_STEP_SECONDS)
    return round(time.monotonic() - started, 2)


@dataclass
class Outcome:
    """What one run saw: the subscribers, the buyers' holds and the change log."""

    options: Options
    subscribers: list[Subscriber]
    per_worker: list[int]
    first: int
    holds: HoldCycles = field(default_factory=HoldCycles)
    changes: list[Change] = field(default_factory=list)
    last: int = 0
    elapsed: float = 0.0
    drained: float = 0.0
    cpu_share: dict[str, float] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        subscribers, elapsed, made = self.subscribers, self.elapsed, self.last - self.first
        losses = [s.losses(self.first + 1, self.last) for s in subscribers]
        latencies = delivery_ms(self.holds, self.changes, subscribers)
        received = sum(len(v) for s in subscribers for v, _ in s.received)
        return {
            "config": vars(self.options),
            "subscribers_per_worker": self.per_worker,
            "seconds": round(elapsed, 2),
            "holds": len(self.holds.made),
            "holds_per_s": round(len(self.holds.made) / elapsed, 1),
            "other_answers": dict(self.holds.tally),
            "changes_made": made,
            "changes_per_s": round(made / elapsed, 1),
            "changes_logged": len(self.changes),
            "delivery_ms": summary(list(latencies)),
            "delivery_pairs": len(latencies),
            "delivery_pairs_expected": len(self.holds.made) * len(subscribers),
            "changes_received_mean": round(received / len(subscribers), 1),
            "subscribers_with_loss": sum(1 for missing, _ in losses if missing),
            "changes_lost": sum(missing for missing, _ in losses),
            "changes_received_twice": sum(twice for _, twice in losses),
            "resyncs": sum(s.resyncs for s in subscribers),
            "streams_ended_by_server": sum(s.closed_by_server for s in subscribers),
            "streams_gzipped": sum(s.gzipped for s in subscribers),
            "streams_failed": Counter(s.failure for s in subscribers if s.failure),
            "drain_s": self.drained,
            "cpu_share": self.cpu_share,
            "service_cores": round(self.cpu_share.get("service", 0.0) * (os.cpu_count() or 1), 2),
        }


async def _run(
    base_url: str,
    backends: Backends,
    options: Options,
    log: ChangeLog,
    event: str,
    seats: list[SeatInfo],
    people: list[dict[str, str]],
    conns: list[Connection],
) -> Outcome:
    event_id = uuid.UUID(event)
    # A first hold loads the event's caches into Redis (and starts its change log).
    warm = HoldCycles()
    if not await warm.cycle(conns[0], people[0], event, seats[-1].id, 0.0):
        raise RuntimeError(f"the warm-up hold failed: {dict(warm.tally)}")
    # Closed, so that the service's connections counted below are the subscribers'.
    conns[0].close()
    first = await log.version(event_id) or 0
    path = f"/api/events/{event}/availability/stream?since={first}"
    frames = Frames()
    loadgen.progress(f"stream: connecting {options.subscribers} subscribers")
    subscribers, listening = await _connect_all(base_url, path, options, frames)
    loadgen.progress(f"stream: {options.buyers} buyers for {options.duration:g} s")
    per_worker = cpu.connections_by_process(urlsplit(base_url).port or 80).values()
    outcome = Outcome(options, subscribers, sorted(per_worker, reverse=True), first)
    copying = asyncio.create_task(_copy_log(log, event_id, first, outcome.changes))
    meter = cpu.Meter(loadgen.roots(base_url, backends))
    meter.start()
    started = time.monotonic()
    deadline = started + options.duration
    await asyncio.gather(
        *(
            _buyer(conn, headers, event, own, options, outcome.holds, deadline)
            for conn, headers, own in zip(
                conns, people, _shares(seats, options.buyers), strict=True
            )
        )
    )
    outcome.elapsed = time.monotonic() - started
    outcome.cpu_share = meter.stop(outcome.elapsed)
    outcome.last = await log.version(event_id) or first
    outcome.drained = await _drain(subscribers, outcome.last, options.drain)
    loadgen.progress(f"stream: buyers done, subscribers caught up in {outcome.drained} s")
    # The log's last entries are copied.
    await asyncio.sleep(2 * LOG_READ_SECONDS)
    for task in [copying, *listening]:
        task.cancel()
    for task in [copying, *listening]:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for subscriber in subscribers:
        subscriber.close()
    return outcome


async def measure(base_url: str, backends: Backends, options: Options) -> dict[str, Any]:
    if options.seats <= options.buyers:
        raise SystemExit("the stream's event needs more seats than buyers")
    log = ChangeLog(connect_redis(Settings(redis_url=backends.redis_url)))
    try:
        async with loadgen.event_on_sale(base_url, backends, options.seats) as (
            engine,
            event,
            seats,
        ):
            people = await accounts.mint_accounts(engine, backends.jwt_secret, options.buyers)
            conns = [Connection(base_url) for _ in people]
            try:
                outcome = await _run(base_url, backends, options, log, event, seats, people, conns)
            finally:
                for conn in conns:
                    conn.close()
    finally:
        await log.redis.aclose()
    return outcome.figures()
