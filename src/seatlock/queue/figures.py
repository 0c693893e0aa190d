"""A room's live figures, read in one Redis round trip: for its organizer, its public
status and the metrics."""

from __future__ import annotations

import time
import uuid
from typing import NamedTuple

from seatlock import keys
from seatlock.redis_client import RedisClient


class Figures(NamedTuple):
    waiting: int
    # Live passes.
    shopping: int
    # Passes given so far.
    served: int
    admitted_last_minute: int


async def room_figures(redis: RedisClient, event_id: uuid.UUID) -> Figures:
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.queue_waiting(event_id))
        pipe.zcount(keys.queue_admitted(event_id), f"({now_ms}", "+inf")
        pipe.hget(keys.queue_state(event_id), "served")
        pipe.zcount(keys.queue_recent(event_id), f"({now_ms - 60_000}", "+inf")
        waiting, shopping, served, recent = await pipe.execute()
    return Figures(int(waiting), int(shopping), int(served or 0), int(recent))
