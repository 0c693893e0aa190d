"""The hold route's gate of a queued event: only a buyer the room let in may hold seats."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from seatlock.queue.line import QueueLine, queue_or_503
from seatlock.queue.passes import Passes, QueuePassRequired


@dataclass(frozen=True)
class QueueGate:
    line: QueueLine
    passes: Passes

    async def check(self, token: str | None, event_id: uuid.UUID, account_id: uuid.UUID) -> None:
        """Passes a valid, live pass of this buyer for this event; QueuePassRequired
        otherwise. Costs a signature check and one Redis read (was the pass given up?)."""
        number = self.passes.number(token, event_id, account_id)
        async with queue_or_503():
            given_up = await self.line.given_up(event_id, number)
        if given_up:
            raise QueuePassRequired("this queue pass was given up by leaving the queue")
