"""Prometheus metrics: the objects the domain counts with, and `GET /metrics`.

Several uvicorn workers answer one scrape through prometheus-client's multiprocess mode:
with `PROMETHEUS_MULTIPROC_DIR` set when this module is first imported, every process
writes its values to memory-mapped files in that directory, and `/metrics`, whichever
worker serves it, merges the files of all of them (counters of dead workers included, so
totals never go back). `seatlock serve` sets the directory up, emptied, before its workers
start. Gauges of a process's own state (its connection pool) are summed over the live
processes; a worker that stops marks itself dead, and one that starts forgets the workers
that were killed. What is read at scrape time (live holds per event on sale) is computed
by the worker that answers, from Redis and PostgreSQL, and cached for a few seconds.

No label carries an unbounded value: routes are templates, events on sale are capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from litestar import Litestar, Response, get
from litestar.datastructures import State
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from seatlock import keys
from seatlock.auth.access import ADMINS
from seatlock.models import Event, EventStatus
from seatlock.queue.figures import room_figures
from seatlock.queue.rules import rooms_open
from seatlock.redis_client import REDIS_DOWN, RedisClient
from seatlock.settings import Settings

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Read once, like prometheus-client itself decides at import whether values go to files.
MULTIPROCESS_DIR = os.environ.get(MULTIPROCESS_ENV)

REGISTRY = CollectorRegistry()

# A hold script takes about 0.2 ms inside Redis; the round trip adds as much again.
SCRIPT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "seatlock_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "seatlock_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template, method and status.",
    ["route", "method", "status"],
    buckets=HTTP_BUCKETS,
    registry=REGISTRY,
)

HOLDS_CREATED = Counter(
    "seatlock_holds_created",
    "Holds placed, by kind: chosen seats or best available.",
    ["kind"],
    registry=REGISTRY,
)
HOLDS_REFUSED = Counter(
    "seatlock_holds_refused",
    "Hold requests refused by the hold layer, by reason: held, reserved, sold, limit, "
    "unavailable (no adjacent seats for best available).",
    ["reason"],
    registry=REGISTRY,
)
HOLDS_EXTENDED = Counter("seatlock_holds_extended", "Holds extended.", registry=REGISTRY)
HOLDS_RELEASED = Counter(
    "seatlock_holds_released",
    "Holds released before they ran out, by who: their owner or ops.",
    ["by"],
    registry=REGISTRY,
)
HOLDS_CONVERTED = Counter(
    "seatlock_holds_converted", "Holds turned into bookings.", registry=REGISTRY
)

BOOKINGS = Counter(
    "seatlock_bookings",
    "Booking transitions: created, confirmed, expired, cancelled.",
    ["transition"],
    registry=REGISTRY,
)
PAYMENTS = Counter(
    "seatlock_payments",
    "Payments settled, by provider and outcome: succeeded, failed, amount_mismatch, "
    "undeliverable (paid, but no seat could be had: refunded).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
LATE_PAYMENTS = Counter(
    "seatlock_late_payments",
    "Successful payments that arrived after their booking expired, by outcome: confirmed "
    "(the seats were still free) or refunded.",
    ["outcome"],
    registry=REGISTRY,
)
REFUNDS = Counter(
    "seatlock_refunds",
    "Refunds asked of a provider, by provider and outcome: refunded or failed (left "
    "refund_required).",
    ["provider", "outcome"],
    registry=REGISTRY,
)

SCRIPT_SECONDS = Histogram(
    "seatlock_redis_script_duration_seconds",
    "Round trip of a Redis Lua script call, by script.",
    ["script"],
    buckets=SCRIPT_BUCKETS,
    registry=REGISTRY,
)
SCRIPT_PIPELINE_CALLS = Histogram(
    "seatlock_redis_script_pipeline_calls",
    "Lua script calls sent to Redis together, in one pipeline (1: a call sent alone).",
    buckets=(1, 2, 3, 4, 6, 8),
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "seatlock_redis_errors",
    "Redis script calls that failed, by script and kind: timeout, connection, error.",
    ["script", "kind"],
    registry=REGISTRY,
)

POOL_IN_USE = Gauge(
    "seatlock_db_pool_in_use",
    "PostgreSQL connections checked out, over all workers.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
POOL_WAITING = Gauge(
    "seatlock_db_pool_waiting",
    "Requests waiting for a PostgreSQL connection, over all workers.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
POOL_CAPACITY = Gauge(
    "seatlock_db_pool_capacity",
    "PostgreSQL connections the workers may open (pool size plus overflow), over all workers.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

# Shedding is decided per worker, so the busiest worker is what tells how close it is.
BACKLOG_PEAK = Gauge(
    "seatlock_backlog_peak",
    "The most holds and reads one worker had in hand at once in the last second (the "
    "busiest live worker); a worker sheds while seatlock_backlog_limit are in hand (with "
    "SEATLOCK_SHED_WAIT_MS, half as many once the oldest has waited that long).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
BACKLOG_LIMIT = Gauge(
    "seatlock_backlog_limit",
    "Holds and reads in hand at which a worker sheds the next ones (SEATLOCK_SHED_BACKLOG; "
    "0: never).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

IDEMPOTENT_REPLAYS = Counter(
    "seatlock_idempotent_replays",
    "Requests answered with the stored answer of their Idempotency-Key, by route template.",
    ["route"],
    registry=REGISTRY,
)
UNAVAILABLE = Counter(
    "seatlock_unavailable",
    "503 answers by cause: redis, provider, database, db_pool, db_conflict, overloaded.",
    ["cause"],
    registry=REGISTRY,
)

# Events on sale whose live holds are reported one by one; more are left out (and
# `seatlock_events_on_sale` says how many there are).
MAX_EVENTS_REPORTED = 50
HOLD_GAUGES_SECONDS = 5.0
POOL_REFRESH_SECONDS = 1.0


class ScriptCalls(Protocol):
    """Where a script's calls go instead of each to a connection of its own
    (`seatlock.script_batches`)."""

    def call(
        self, script: TimedScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> Awaitable[Any]: ...


class TimedScript(AsyncScript):
    """A registered Lua script whose calls are timed, and failures counted, under its name:
    the one place the hold layer's Redis latency is measured. With `batches`, its calls go
    out with the others of the same turn of the event loop (`seatlock.script_batches`)."""

    def __init__(
        self, name: str, client: Any, script: str, batches: ScriptCalls | None = None
    ) -> None:
        super().__init__(client, script)
        self._seconds = SCRIPT_SECONDS.labels(name)
        self._name = name
        self._batches = batches

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        started = time.perf_counter()
        try:
            if client is None and self._batches is not None:
                return await self._batches.call(self, keys or (), args or ())
            return await super().__call__(keys, args, client)
        except RedisError as exc:
            REDIS_ERRORS.labels(self._name, _error_kind(exc)).inc()
            raise
        except OSError:
            REDIS_ERRORS.labels(self._name, "connection").inc()
            raise
        finally:
            self._seconds.observe(time.perf_counter() - started)

    async def call_alone(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script on a connection of its own (EVALSHA, loading it again on NOSCRIPT)."""
        return await super().__call__(keys, args)


def _error_kind(exc: RedisError) -> str:
    if isinstance(exc, RedisTimeoutError):
        return "timeout"
    return "connection" if isinstance(exc, REDIS_DOWN) else "error"


def _waiting(pool: QueuePool) -> int:
    """Requests waiting for a connection. SQLAlchemy does not count them; the asyncio queue
    under its async pool does (a private attribute, read only where present)."""
    queue = getattr(getattr(pool, "_pool", None), "__dict__", {}).get("_queue")
    getters: Iterable[asyncio.Future[Any]] = getattr(queue, "_getters", ())
    return sum(1 for waiter in getters if not waiter.done())


def refresh_pool(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        POOL_IN_USE.set(pool.checkedout())
        POOL_WAITING.set(_waiting(pool))
        POOL_CAPACITY.set(pool.size() + pool._max_overflow)


def prepare_multiprocess_dir(settings: Settings) -> None:
    """Before several workers start: `PROMETHEUS_MULTIPROC_DIR` (`<data dir>/metrics` unless
    set) emptied of an earlier run's files, in the environment the workers inherit. One
    worker needs none: its own values are all there is."""
    if settings.workers < 2 and MULTIPROCESS_ENV not in os.environ:
        return
    path = Path(os.environ.setdefault(MULTIPROCESS_ENV, str(settings.state_dir / "metrics")))
    path.mkdir(parents=True, exist_ok=True)
    for left in path.glob("*.db"):
        left.unlink()


def forget_dead_workers() -> None:
    """Drop the live gauges of processes that are gone (killed, so they could not say so)."""
    if MULTIPROCESS_DIR is None:
        return
    for path in Path(MULTIPROCESS_DIR).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not Path(f"/proc/{pid}").exists():
            multiprocess.mark_process_dead(pid, MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]


@asynccontextmanager
async def metrics_lifespan(app: Litestar) -> AsyncIterator[None]:
    """What this process keeps for its metrics: the hold gauges' cache, and its pool and
    backlog gauges, refreshed every second (a scrape may be answered by another worker) and
    removed when the process stops. Runs after the lifespan that opens the engine."""
    forget_dead_workers()
    app.state.hold_gauges = HoldGauges()
    engine: AsyncEngine = app.state.engine
    # The backlog's (seatlock.shedding, which counts its refusals here).
    read_peak: Callable[[], int] = app.state.backlog.read_peak
    settings: Settings = app.state.settings
    BACKLOG_LIMIT.set(settings.shed_backlog)
    stop = asyncio.Event()

    async def refresh() -> None:
        while not stop.is_set():
            refresh_pool(engine)
            BACKLOG_PEAK.set(read_peak())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POOL_REFRESH_SECONDS)

    refresher = asyncio.create_task(refresh())
    try:
        yield
    finally:
        stop.set()
        await refresher
        if MULTIPROCESS_DIR is not None:
            multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]


class _Families:
    """A collector of metric families computed beforehand (collectors are synchronous,
    Redis and PostgreSQL are not)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


class HoldGauges:
    """Live holds and held seats per event on sale, read at scrape time at a bounded cost:
    one PostgreSQL query for the events (at most MAX_EVENTS_REPORTED, soonest sale end
    first) and one Redis round trip (a ZCOUNT and an HLEN per event), reused for a few
    seconds."""

    def __init__(self) -> None:
        self._families: list[Metric] = []
        self._read_at = -HOLD_GAUGES_SECONDS

    async def families(
        self, sessions: async_sessionmaker[AsyncSession], redis: RedisClient
    ) -> list[Metric]:
        now = time.monotonic()
        if now - self._read_at >= HOLD_GAUGES_SECONDS:
            self._read_at = now
            # With PostgreSQL or Redis down the scrape still answers, with what it read last.
            with contextlib.suppress(SQLAlchemyError, *REDIS_DOWN):
                self._families = await self._read(sessions, redis)
        return self._families

    async def _read(
        self, sessions: async_sessionmaker[AsyncSession], redis: RedisClient
    ) -> list[Metric]:
        async with sessions() as session:
            events = list(
                await session.scalars(
                    select(Event.id)
                    .where(Event.status == EventStatus.ON_SALE)
                    .order_by(Event.sale_ends_at)
                    .limit(MAX_EVENTS_REPORTED + 1)
                )
            )
            total = len(events)
            if total > MAX_EVENTS_REPORTED:
                counted = select(func.count()).select_from(Event)
                total = (
                    await session.scalar(counted.where(Event.status == EventStatus.ON_SALE)) or 0
                )
        reported = events[:MAX_EVENTS_REPORTED]
        on_sale = GaugeMetricFamily("seatlock_events_on_sale", "Events on sale.")
        on_sale.add_metric([], total)
        holds = GaugeMetricFamily(
            "seatlock_live_holds",
            f"Live holds per event on sale (the {MAX_EVENTS_REPORTED} whose sale ends first).",
            labels=["event"],
        )
        seats = GaugeMetricFamily(
            "seatlock_held_seats",
            f"Seats under a hold per event on sale (the {MAX_EVENTS_REPORTED} whose sale ends "
            "first).",
            labels=["event"],
        )
        expired = CounterMetricFamily(
            "seatlock_holds_expired",
            "Holds that ran out, per event on sale, counted in Redis by whichever step freed "
            "them (the sweep, or a hold or read that came first).",
            labels=["event"],
        )
        for event_id, (live, held, ran_out) in zip(
            reported, await _hold_counts(redis, reported), strict=True
        ):
            holds.add_metric([str(event_id)], live)
            seats.add_metric([str(event_id)], held)
            expired.add_metric([str(event_id)], ran_out)
        return [on_sale, holds, seats, expired, *await _queue_families(sessions, redis)]


async def _queue_families(
    sessions: async_sessionmaker[AsyncSession], redis: RedisClient
) -> list[Metric]:
    """Per open waiting room (at most MAX_EVENTS_REPORTED): one Redis round trip each."""
    waiting = GaugeMetricFamily(
        "seatlock_queue_waiting", "Buyers waiting in an event's queue.", labels=["event"]
    )
    shopping = GaugeMetricFamily(
        "seatlock_queue_shopping",
        "Buyers holding a live pass of an event's queue (the active shoppers).",
        labels=["event"],
    )
    admitted = CounterMetricFamily(
        "seatlock_queue_admitted", "Buyers an event's queue let in so far.", labels=["event"]
    )
    for rules in (await rooms_open(sessions))[:MAX_EVENTS_REPORTED]:
        figures = await room_figures(redis, rules.event_id)
        waiting.add_metric([str(rules.event_id)], figures.waiting)
        shopping.add_metric([str(rules.event_id)], figures.shopping)
        admitted.add_metric([str(rules.event_id)], figures.served)
    return [waiting, shopping, admitted]


async def _hold_counts(redis: RedisClient, events: list[uuid.UUID]) -> list[tuple[int, int, int]]:
    """Per event: live holds, held seats, and holds that ran out so far."""
    if not events:
        return []
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for event_id in events:
            pipe.zcount(keys.event_holds(event_id), f"({now_ms}", "+inf")
            pipe.hlen(keys.held_seats(event_id))
            pipe.hget(keys.hold_seats(event_id), "__expired__")
        counts = await pipe.execute()
    return [
        (int(live), int(held), int(ran_out or 0))
        for live, held, ran_out in zip(counts[0::3], counts[1::3], counts[2::3], strict=True)
    ]


def exposition(extra: list[Metric]) -> bytes:
    """Every worker's metrics (or this process's alone), then those computed at scrape time."""
    if MULTIPROCESS_DIR is None:
        merged = generate_latest(REGISTRY)
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
        merged = generate_latest(registry)
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Families(extra))
    return merged + generate_latest(scraped)


@get(
    "/metrics",
    roles=ADMINS,
    # Besides an admin's token, the metrics token (a scraper's) opens this route alone.
    metrics_token=True,
    include_in_schema=False,
    media_type=CONTENT_TYPE_LATEST,
)
async def metrics(state: State) -> Response[bytes]:
    gauges: HoldGauges = state.hold_gauges
    refresh_pool(state.engine)
    extra = await gauges.families(state.sessions, state.redis)
    return Response(exposition(extra), media_type=CONTENT_TYPE_LATEST)
