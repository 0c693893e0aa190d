"""/health: liveness of the process and readiness of everything it depends on."""

from __future__ import annotations

import msgspec
from litestar import Response, Router, get
from litestar.openapi import ResponseSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import deps
from seatlock.auth.access import PUBLIC
from seatlock.migrate import head_revision
from seatlock.redis_client import ping


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


@get("/live", roles=PUBLIC, operation_id="checkLiveness")
async def live() -> dict[str, str]:
    """Whether the process answers at all (no dependency is asked)."""
    return {"status": "ok"}


async def _check_postgres(engine: AsyncEngine) -> str:
    try:
        async with engine.connect() as conn:
            current = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"unreachable: {type(exc).__name__}"
    if current != head_revision():
        return f"migrations not at head (at {current}, head is {head_revision()})"
    return "ok"


async def _check_redis(redis: deps.Redis) -> str:
    try:
        await ping(redis)
    except Exception as exc:  # as above
        return f"unreachable: {type(exc).__name__}"
    return "ok"


@get(
    "/ready",
    roles=PUBLIC,
    operation_id="checkReadiness",
    responses={503: ResponseSpec(Readiness, description="Not ready: the failing checks")},
)
async def ready(db_engine: deps.DbEngine, redis: deps.Redis) -> Response[Readiness]:
    """Whether PostgreSQL (at the migrations' head) and Redis answer: 200, or 503 naming
    what fails."""
    checks = {"postgres": await _check_postgres(db_engine), "redis": await _check_redis(redis)}
    healthy = all(value == "ok" for value in checks.values())
    return Response(
        Readiness(status="ok" if healthy else "unavailable", checks=checks),
        status_code=200 if healthy else 503,
    )


health_router = Router("/health", route_handlers=[live, ready], tags=["health"])
