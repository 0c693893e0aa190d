"""A room's live figures, read in one Redis round trip on Redis's clock: for its
organizer, its public status and the metrics."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple, cast

from redis.commands.core import AsyncScript

from seatlock import keys
from seatlock.redis_client import RedisClient
from seatlock.script_sources import script_source


class Figures(NamedTuple):
    waiting: int
    # Live passes.
    shopping: int
    # Passes given so far.
    served: int
    admitted_last_minute: int


# Sent by EVALSHA (loaded on first use): the figures are read by callers without the
# service's registered scripts (the metrics, the benchmark).
_FIGURES = script_source("queue_figures")


async def room_figures(redis: RedisClient, event_id: uuid.UUID) -> Figures:
    keys_of_room = [
        keys.queue_waiting(event_id),
        keys.queue_admitted(event_id),
        keys.queue_state(event_id),
        keys.queue_recent(event_id),
    ]
    # Typed for the single-node client only; on a cluster redis-py routes it by its first key.
    script = AsyncScript(cast(Any, redis), _FIGURES)
    waiting, shopping, served, recent = await script(keys=keys_of_room)
    return Figures(int(waiting), int(shopping), int(served), int(recent))
