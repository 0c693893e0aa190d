"""The admission loop: every process steps every open room a few times a second.

The step itself (`lua/queue_admit.lua`) runs at most once a second per event, whichever
process calls first, and grows its credit with the time that really passed; so any number
of processes keep one rate together, and the loss of one costs nothing. The rooms are read
from PostgreSQL every few seconds, which is how a changed rate or a pause reaches every
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock.queue.line import QueueLine
from seatlock.queue.rules import QueueRules, rooms_open
from seatlock.redis_client import Breaker

logger = logging.getLogger("seatlock")

TICK_SECONDS = 0.25
ROOMS_READ_EVERY_SECONDS = 2.0


class AdmissionLoop:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], line: QueueLine) -> None:
        self.sessions = sessions
        self.line = line
        self.rooms: list[QueueRules] = []
        self.rooms_read_at = -ROOMS_READ_EVERY_SECONDS

    async def tick(self) -> int:
        """Steps every open room whose sale has started; answers the buyers let in."""
        now = time.monotonic()
        if now - self.rooms_read_at >= ROOMS_READ_EVERY_SECONDS:
            # Marked read first, so that an unreachable PostgreSQL is asked again only later.
            self.rooms_read_at = now
            self.rooms = await rooms_open(self.sessions)
        let_in = 0
        for rules in self.rooms:
            let_in += await self.line.admit(rules)
        return let_in

    async def run_until(self, stop: asyncio.Event, breaker: Breaker) -> None:
        """Until `stop`. The breaker keeps a frozen Redis from holding the loop up."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_SECONDS)
            try:
                await breaker.attempt(self.tick, 0)
            except Exception as exc:
                # The loop must outlive any one failure (PostgreSQL or Redis down, say).
                logger.warning("queue admission step failed, retrying: %r", exc)
