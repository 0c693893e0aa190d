"""The waiting line of an event's room, in Redis: places, passes and admission steps.

Everything lives on the event's hash tag, so the room runs on Redis Cluster unchanged, and
each change is one script. A buyer's place is a sorted-set rank (O(log n) to read);
places drawn before the sale starts sort by a keyed hash of the account (a shuffle nobody
can predict or redraw), later arrivals after them in order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

from redis.commands.core import AsyncScript

from seatlock import keys
from seatlock.errors import Unavailable
from seatlock.holds.scripts import register
from seatlock.queue.figures import Figures, room_figures
from seatlock.queue.rules import QueueRules
from seatlock.redis_client import REDIS_DOWN, RedisClient
from seatlock.script_batches import ScriptBatches

# The room's keys outlive their last change by this long; a sale is long over by then.
KEYS_TTL_MS = 7 * 86_400_000
# At most one admission step per event in this long, whichever process calls.
STEP_MS = 1000


@dataclass(frozen=True)
class QueueScripts:
    queue_place: AsyncScript
    queue_leave: AsyncScript
    queue_admit: AsyncScript


class Place(NamedTuple):
    """An account's place: `state` is waiting, admitted, expired or absent. Waiting: `ahead`
    and `waiting` count buyers; admitted: the pass's `number` and `runs_out_ms`."""

    state: str
    ahead: int | None = None
    waiting: int | None = None
    number: int | None = None
    runs_out_ms: int | None = None


@asynccontextmanager
async def queue_or_503() -> AsyncIterator[None]:
    """The room lives in Redis: while Redis is down, joining and reading places say so."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise Unavailable("the queue is unavailable right now; please retry shortly") from exc


class QueueLine:
    """Stateless access to every event's line; one per process."""

    def __init__(self, redis: RedisClient, batches: ScriptBatches | None = None) -> None:
        self.redis = redis
        self.scripts = register(redis, QueueScripts, batches)

    async def place(
        self, rules: QueueRules, account_id: uuid.UUID, drawn: int, *, join: bool
    ) -> Place:
        event_id = rules.event_id
        reply = await self.scripts.queue_place(
            keys=_room_keys(event_id, keys.queue_state(event_id)),
            args=[str(account_id), "1" if join else "0", drawn, rules.sale_starts_ms, KEYS_TTL_MS],
        )
        state = _text(reply[0])
        if state == "waiting":
            return Place(state, ahead=int(reply[1]), waiting=int(reply[2]))
        if state == "admitted":
            return Place(state, number=int(reply[2]), runs_out_ms=int(reply[1]))
        if state == "expired":
            return Place(state, runs_out_ms=int(reply[1]))
        return Place(state)

    async def leave(self, event_id: uuid.UUID, account_id: uuid.UUID) -> str:
        """What the account was (waiting, admitted) before leaving, or absent."""
        reply = await self.scripts.queue_leave(
            keys=_room_keys(event_id, keys.queue_given_up(event_id)),
            args=[str(account_id), KEYS_TTL_MS],
        )
        return _text(reply)

    async def admit(self, rules: QueueRules) -> int:
        """One admission step if one is due: the number of buyers let in."""
        event_id = rules.event_id
        let_in = await self.scripts.queue_admit(
            keys=_room_keys(event_id, keys.queue_state(event_id), keys.queue_recent(event_id)),
            args=[
                rules.admit_per_minute or 0,
                rules.max_shopping or 0,
                rules.pass_seconds * 1000,
                STEP_MS,
                rules.sale_starts_ms,
                "1" if rules.paused else "0",
                KEYS_TTL_MS,
            ],
        )
        return int(let_in)

    async def mark_paused(self, event_id: uuid.UUID, paused: bool) -> None:
        """Tells the admission step at once: the rules it is given are read from
        PostgreSQL only every few seconds, and a pause must stop admission from now on."""
        state = keys.queue_state(event_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(state, "paused", "1" if paused else "0")
            pipe.pexpire(state, KEYS_TTL_MS)
            await pipe.execute()

    async def given_up(self, event_id: uuid.UUID, number: int) -> bool:
        """Whether the pass of this number was given up by its buyer leaving the room."""
        return await self.redis.zscore(keys.queue_given_up(event_id), str(number)) is not None

    async def figures(self, event_id: uuid.UUID) -> Figures:
        return await room_figures(self.redis, event_id)


def _room_keys(event_id: uuid.UUID, *more: str) -> list[str]:
    """The keys every script of the room starts with (waiting, admitted, passes), then
    those it needs besides."""
    return [
        keys.queue_waiting(event_id),
        keys.queue_admitted(event_id),
        keys.queue_passes(event_id),
        *more,
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
