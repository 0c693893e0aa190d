"""Repairing Redis's cache of reserved and sold seats after an outage: a PostgreSQL write
that could not be mirrored marks its event stale in this process, and the cache of that
event is reloaded from PostgreSQL (its corrections reaching the stream of changes) once
Redis answers."""

from __future__ import annotations

import asyncio
import contextlib

from seatlock.holds.store import HoldStore, TakenSnapshot
from seatlock.redis_client import Breaker

# How soon after Redis is back a stale cache is reloaded.
REPAIR_INTERVAL_SECONDS = 0.5


async def repair_until(
    stop: asyncio.Event, store: HoldStore, breaker: Breaker, snapshot: TakenSnapshot
) -> None:
    """Until `stop`, try every half second; the breaker keeps a frozen Redis from holding
    the loop up (or being asked again) while it is known to be failing."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPAIR_INTERVAL_SECONDS)
        if store.stale_events:
            await breaker.attempt(lambda: store.repair_stale(snapshot), None)
