"""An account's live holds, found without scanning Redis's keyspace.

Holds are only placed on events that are on sale, and each event keeps a sorted set of
every owner's holds: so the candidates are the events on sale (one PostgreSQL query) and
each costs one Redis call. The cost grows with the number of events on sale, not with the
number of holds or accounts; a hold on an event closed since it was placed is left to
expire on its own (it can no longer become a booking).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Final, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock import keys
from seatlock.errors import DomainError, Unavailable
from seatlock.holds.store import HoldStore
from seatlock.models import Event, EventStatus
from seatlock.redis_client import REDIS_DOWN, REDIS_FAILED, RedisClient

logger = logging.getLogger("seatlock")

# Redis calls sent in one round trip.
BATCH: Final = 200


async def _events_on_sale(session: AsyncSession) -> list[uuid.UUID]:
    return list(await session.scalars(select(Event.id).where(Event.status == EventStatus.ON_SALE)))


async def _per_event(
    redis: RedisClient, events: list[uuid.UUID], user_id: uuid.UUID, counting: bool
) -> list[list[str] | int]:
    """Per event: the number of live holds (counting) or the ids of every hold."""
    now_ms = int(time.time() * 1000)
    answers: list[list[str] | int] = []
    for start in range(0, len(events), BATCH):
        pipe = redis.pipeline(transaction=False)
        for event_id in events[start : start + BATCH]:
            key = keys.owner_holds(event_id, user_id)
            if counting:
                pipe.zcount(key, now_ms, "+inf")
            else:
                pipe.zrange(key, 0, -1)
        answers += await cast("Awaitable[list[list[str] | int]]", pipe.execute())
    return answers


async def count_live_holds(
    session: AsyncSession, redis: RedisClient, user_id: uuid.UUID
) -> int | None:
    """None when Redis cannot be reached."""
    events = await _events_on_sale(session)
    try:
        counts = await _per_event(redis, events, user_id, counting=True)
    except REDIS_DOWN:
        return None
    return sum(int(cast("int", n)) for n in counts)


async def release_live_holds(session: AsyncSession, holds: HoldStore, user_id: uuid.UUID) -> int:
    """Releases every hold of the account; returns how many. Best effort: with Redis down
    the holds stay until they expire, and the account's refused tokens keep them from
    becoming bookings."""
    events = await _events_on_sale(session)
    released = 0
    try:
        per_event = await _per_event(holds.redis, events, user_id, counting=False)
        for hold_ids in per_event:
            for hold_id in cast("list[str]", hold_ids):
                try:
                    await holds.release(hold_id, None)
                except Unavailable:
                    raise
                except DomainError:
                    continue  # expired meanwhile, or being turned into a booking
                released += 1
    except REDIS_FAILED:
        logger.warning("holds of disabled account %s left to expire: Redis unreachable", user_id)
    return released
