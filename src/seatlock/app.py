"""The Litestar application: routes, dependencies, errors and the resources' lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar, Router
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler

from seatlock import db, deps
from seatlock.auth.access import authorize
from seatlock.auth.account_stamps import StampCache
from seatlock.auth.admin_routes import admin_router
from seatlock.auth.routes import auth_router
from seatlock.availability.changes import Fanout
from seatlock.availability.layout import LayoutCache
from seatlock.availability.routes import availability_router
from seatlock.availability.snapshot import AvailabilityCache
from seatlock.bookings.expiry import sweep_until
from seatlock.bookings.routes import bookings_router
from seatlock.events.images import LocalImageStore
from seatlock.events.routes import events_router
from seatlock.health import health_router
from seatlock.heap import settled_heap
from seatlock.holds.expiry import sweep_holds_until
from seatlock.holds.on_sale import OnSaleCache
from seatlock.holds.placement import taken_snapshot
from seatlock.holds.repair import repair_until
from seatlock.holds.routes import holds_router
from seatlock.holds.scripts import load_scripts, register_scripts
from seatlock.holds.store import HoldStore
from seatlock.inputs import require_json
from seatlock.openapi import openapi_config
from seatlock.ops.dashboard import dashboard_router
from seatlock.ops.metrics import SCRIPT_PIPELINE_CALLS, metrics, metrics_lifespan
from seatlock.ops.request_log import RequestObserver, configure_logging
from seatlock.ops.routes import ops_router
from seatlock.payments.providers.registry import build_providers
from seatlock.payments.providers.sandbox_routes import sandbox_router
from seatlock.payments.routes import payments_router
from seatlock.problems import problem_details_plugin
from seatlock.queue.admission import AdmissionLoop
from seatlock.queue.gate import QueueGate
from seatlock.queue.line import QueueLine
from seatlock.queue.passes import Passes
from seatlock.queue.room_routes import room_router
from seatlock.queue.routes import queue_router
from seatlock.rate_limits import RateLimits
from seatlock.redis_client import Breaker, connect_redis
from seatlock.script_batches import script_batches
from seatlock.settings import Settings, current_settings
from seatlock.shedding import Backlog, ShedRoutes, count_in_hand, refuse_if_busy

# The name of every task a worker runs besides its requests, before what the task does.
BACKGROUND = "seatlock background: "


@asynccontextmanager
async def resources(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = db.create_engine(settings.database_url, settings.db_pool_size)
    redis = connect_redis(settings)
    batches = script_batches(redis, SCRIPT_PIPELINE_CALLS.observe)
    scripts = register_scripts(redis, batches)
    await load_scripts(redis, scripts)
    queue_line = QueueLine(redis, batches)
    await load_scripts(redis, queue_line.scripts)
    app.state.engine = engine
    app.state.sessions = db.session_factory(engine)
    app.state.redis = redis
    app.state.redis_breaker = Breaker(settings.redis_breaker_seconds)
    app.state.holds = HoldStore(redis, scripts)
    app.state.rate_limits = RateLimits(redis, settings, app.state.redis_breaker)
    app.state.account_stamps = StampCache(redis, app.state.sessions, settings)
    app.state.on_sale = OnSaleCache(app.state.sessions)
    app.state.layouts = LayoutCache(app.state.sessions, app.state.on_sale)
    app.state.fanout = Fanout(redis)
    app.state.availability = AvailabilityCache(
        app.state.holds, app.state.fanout.log, taken_snapshot(app.state.sessions)
    )
    app.state.queue_gate = QueueGate(queue_line, Passes(settings))
    app.state.images = LocalImageStore(settings.image_path)
    http = httpx.AsyncClient(timeout=settings.provider_timeout_seconds)
    app.state.providers = build_providers(settings, http)
    stop_sweeping = asyncio.Event()
    loops = {
        "booking expiry": sweep_until(
            stop_sweeping, app.state.sessions, app.state.holds, settings.expiry_interval_seconds
        ),
        "cache repair": repair_until(
            stop_sweeping,
            app.state.holds,
            app.state.redis_breaker,
            taken_snapshot(app.state.sessions),
        ),
        "hold expiry": sweep_holds_until(
            stop_sweeping, app.state.sessions, app.state.holds, app.state.redis_breaker
        ),
        "account changes": app.state.account_stamps.follow_until(
            stop_sweeping, app.state.redis_breaker
        ),
        "queue admission": AdmissionLoop(app.state.sessions, queue_line).run_until(
            stop_sweeping, app.state.redis_breaker
        ),
    }
    running = [asyncio.create_task(loop, name=BACKGROUND + name) for name, loop in loops.items()]
    try:
        yield
    finally:
        stop_sweeping.set()
        for task in running:
            await task
        await app.state.layouts.aclose()
        await app.state.on_sale.aclose()
        await app.state.availability.aclose()
        await app.state.holds.aclose()
        await app.state.fanout.close()
        await http.aclose()
        await app.state.rate_limits.aclose()
        if batches is not None:
            await batches.aclose()
        await redis.aclose()
        await engine.dispose()


async def check_request(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The guard of every route: whether the worker is too busy for it, who may call it,
    whether its body is said to be JSON, then the body read and the request counted in
    hand. One guard rather than four, since Litestar copies the route handler for each
    guard it runs."""
    refuse_if_busy(connection, handler)
    await authorize(connection, handler)
    await require_json(connection, handler)
    await count_in_hand(connection, handler)


def _cors(settings: Settings) -> CORSConfig | None:
    """Browsers on the allowed origins may call the API, cookies included; with no origin
    allowed, only the service's own pages may."""
    if not settings.origins:
        return None
    return CORSConfig(
        allow_origins=sorted(settings.origins),
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Requested-With"],
        allow_credentials=True,
        # What browser code may read of an answer besides the basics.
        expose_headers=["Idempotent-Replayed", "Retry-After", "Location", "X-Request-ID"],
    )


def compression() -> CompressionConfig:
    """Gzip for answers worth it (a large event's layout or seat map shrinks severalfold).
    Streamed answers are compressed chunk by chunk, each flushed as it is sent, so a stream
    of events is not held back; images are compressed already."""
    return CompressionConfig(
        backend="gzip", minimum_size=1024, gzip_compress_level=6, exclude="^/api/images/"
    )


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or current_settings()
    # Every route of ours sits below this router, so the role guard covers all of them.
    guarded = Router(
        "/",
        route_handlers=[
            auth_router,
            admin_router,
            health_router,
            holds_router,
            events_router,
            availability_router,
            room_router,
            queue_router,
            ops_router,
            bookings_router,
            payments_router,
            sandbox_router,
            dashboard_router,
            metrics,
        ],
        guards=[check_request],
    )
    app = Litestar(
        route_handlers=[guarded],
        dependencies=deps.dependencies(),
        plugins=[problem_details_plugin()],
        openapi_config=openapi_config("Seatlock", "0.1.0"),
        lifespan=[resources, metrics_lifespan, settled_heap],
        state=State({"settings": settings}),
        request_max_body_size=settings.max_body_bytes,
        cors_config=_cors(settings),
        compression_config=compression(),
        # Logging is ours (`ops.request_log`), not a second root handler of Litestar's.
        logging_config=None,
    )
    configure_logging(settings.log_format)
    app.state.backlog = Backlog(
        app.asgi_handler,
        limit=settings.shed_backlog,
        max_wait=settings.shed_wait_ms / 1000,
        routes=ShedRoutes.of(app),
        cors=app.cors_config,
    )
    # Outside the router, so that every request is timed, counted and logged, 404s too.
    app.asgi_handler = RequestObserver(app.state.backlog)
    return app
