"""The holds of one account, found without scanning Redis's keyspace.

Holds are only placed on events that are on sale, and each event keeps a sorted set of
every owner's holds: so the candidates are the events on sale (one PostgreSQL query) and
each costs one Redis call, pipelined in batches. The cost grows with the number of events
on sale (plus the account's own holds, when they are read), never with the holds of other
accounts or the number of accounts; a hold on an event closed since it was placed is left
to expire on its own (it can no longer become a booking).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock import keys
from seatlock.errors import DomainError, Unavailable
from seatlock.holds import replies
from seatlock.holds.replies import Hold
from seatlock.holds.store import HoldStore, redis_or_503
from seatlock.models import Event, EventStatus
from seatlock.redis_client import REDIS_DOWN, REDIS_FAILED, RedisClient

logger = logging.getLogger("seatlock")

# Redis calls sent in one round trip.
BATCH: Final = 200
# Queues one command for a key on a pipeline.
Queue = Callable[[Any, str], object]


async def _events_on_sale(session: AsyncSession) -> list[uuid.UUID]:
    return list(await session.scalars(select(Event.id).where(Event.status == EventStatus.ON_SALE)))


async def _batched(redis: RedisClient, keys_: Sequence[str], queue: Queue) -> list[Any]:
    """One command per key, `BATCH` keys a round trip; the answers in the keys' order."""
    answers: list[Any] = []
    for start in range(0, len(keys_), BATCH):
        pipe = redis.pipeline(transaction=False)
        for key in keys_[start : start + BATCH]:
            queue(pipe, key)
        answers += await cast("Awaitable[list[Any]]", pipe.execute())
    return answers


def _owner_keys(events: list[uuid.UUID], user_id: uuid.UUID) -> list[str]:
    return [keys.owner_holds(event_id, user_id) for event_id in events]


async def count_live_holds(
    session: AsyncSession, redis: RedisClient, user_id: uuid.UUID
) -> int | None:
    """None when Redis cannot be reached."""
    events = await _events_on_sale(session)
    now_ms = int(time.time() * 1000)
    try:
        counts = await _batched(
            redis, _owner_keys(events, user_id), lambda pipe, key: pipe.zcount(key, now_ms, "+inf")
        )
    except REDIS_DOWN:
        return None
    return sum(int(n) for n in counts)


async def live_holds(
    session: AsyncSession, holds: HoldStore, user_id: uuid.UUID
) -> tuple[datetime, list[Hold]]:
    """Redis's time and the account's live holds on every event on sale, soonest to expire
    first. Two batched reads: the hold ids from each event's set of the owner's holds, then
    each hold's hash (a hold that expired or was released in between is skipped).

    The owner field of each hash is checked again although the ids came from the owner's
    own set: hold ids are bearer-like references, and the hash's owner field, not the set
    an id was found in, is what decides whose hold it is (as for every other hold read), so
    a stray or stale entry can never show a buyer someone else's hold."""
    events = await _events_on_sale(session)
    now_ms, found, hashes = await _read_holds(holds, events, user_id)
    owner = str(user_id)
    mine = [
        replies.hold_of(hold_id, event_id, fields)
        for (event_id, hold_id), fields in zip(found, hashes, strict=True)
        if fields and fields.get("owner") == owner
    ]
    mine.sort(key=lambda hold: (hold.expires_at, hold.id))
    return replies.from_ms(now_ms), mine


async def _read_holds(
    holds: HoldStore, events: list[uuid.UUID], user_id: uuid.UUID
) -> tuple[int, list[tuple[uuid.UUID, str]], list[dict[str, str]]]:
    # Redis's clock decides hold expiry; the store knows its offset from ours.
    now_ms = await holds.deadline_ms() - holds.deadline_budget_ms
    async with redis_or_503():
        per_event = await _batched(
            holds.redis,
            _owner_keys(events, user_id),
            lambda pipe, key: pipe.zrangebyscore(key, f"({now_ms}", "+inf"),
        )
        found = [
            (event_id, hold_id)
            for event_id, hold_ids in zip(events, per_event, strict=True)
            for hold_id in hold_ids
        ]
        hashes = await _batched(
            holds.redis,
            [keys.hold(event_id, hold_id) for event_id, hold_id in found],
            lambda pipe, key: pipe.hgetall(key),
        )
    return now_ms, found, hashes


async def release_live_holds(session: AsyncSession, holds: HoldStore, user_id: uuid.UUID) -> int:
    """Releases every hold of the account; returns how many. Best effort: with Redis down
    the holds stay until they expire, and the account's refused tokens keep them from
    becoming bookings."""
    events = await _events_on_sale(session)
    released = 0
    try:
        per_event = await _batched(
            holds.redis, _owner_keys(events, user_id), lambda pipe, key: pipe.zrange(key, 0, -1)
        )
        for hold_ids in per_event:
            for hold_id in hold_ids:
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
