"""The check every fault test ends with besides the oracle: nothing left stuck, that is no
Idempotency-Key without an answer, no payment `initiated` that never reached its
provider, no hold left `converting`."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import keys
from seatlock.redis_client import hash_field

UNANSWERED = text("SELECT route, key FROM idempotency_records WHERE response_status IS NULL")
UNSENT = text("SELECT id FROM payments WHERE status = 'initiated' AND provider_reference IS NULL")


async def stuck(
    engine: AsyncEngine, redis: Redis | None = None, event_id: uuid.UUID | None = None
) -> list[str]:
    """What is left stuck, in words; empty when nothing is."""
    async with engine.connect() as conn:
        keys_left = [
            f"Idempotency-Key {key!r} of {route} has no answer"
            for route, key in await conn.execute(UNANSWERED)
        ]
        unsent = [
            f"payment {pid} is initiated but never reached its provider"
            for (pid,) in await conn.execute(UNSENT)
        ]
    converting: list[str] = []
    if redis is not None and event_id is not None:
        for hold_id in await redis.zrange(keys.event_holds(event_id), 0, -1):
            if await hash_field(redis, keys.hold(event_id, hold_id), "state") == "converting":
                converting.append(f"hold {hold_id} is left converting")
    return keys_left + unsent + converting


async def assert_nothing_stuck(
    engine: AsyncEngine, redis: Redis | None = None, event_id: uuid.UUID | None = None
) -> None:
    assert await stuck(engine, redis, event_id) == []
