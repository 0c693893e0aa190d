"""Repairing Redis's cache of reserved and sold seats after an outage: a PostgreSQL write
that could not be mirrored marks its event stale in this process, and the cache of that
event is dropped (to be rebuilt from PostgreSQL by the next hold) once Redis answers."""

from __future__ import annotations

import asyncio
import contextlib

from seatlock.holds.store import HoldStore
from seatlock.redis_client import Breaker

# How soon after Redis is back a stale cache is dropped.
REPAIR_INTERVAL_SECONDS = 0.5


async def repair_until(stop: asyncio.Event, store: HoldStore, breaker: Breaker) -> None:
    """Until `stop`, try every half second; the breaker keeps a frozen Redis from holding
    the loop up (or being asked again) while it is known to be failing."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPAIR_INTERVAL_SECONDS)
        if store.stale_events:
            await breaker.attempt(store.repair_stale, None)
