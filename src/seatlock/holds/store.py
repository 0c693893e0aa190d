"""The Redis hold layer: every call is one atomic Lua script on the keys of one event.

Holds are efficiency locks that keep buyers from colliding at checkout. PostgreSQL stays
the truth: the booking transaction's conditional write, not a hold, prevents double sales.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Final, Literal, cast

from seatlock import keys
from seatlock.errors import NotFound, Unavailable
from seatlock.holds import replies
from seatlock.holds.replies import HeldSeat, Hold, LiveHold
from seatlock.holds.scripts import Scripts
from seatlock.models import SeatState
from seatlock.ops.metrics import (
    HOLDS_CREATED,
    HOLDS_EXTENDED,
    HOLDS_REFUSED,
    HOLDS_RELEASED,
)
from seatlock.ops.request_log import record
from seatlock.redis_client import REDIS_DOWN, RedisClient, hash_field, hash_fields
from seatlock.single_flight import SingleFlight

REBUILD_ATTEMPTS = 5
CLOCK_CHECK_SECONDS = 60.0
# How long after a request computes its deadline a script may still act for it. A caller
# gives up on Redis after about a second (two 0.5 s timeouts), but a busy worker can take
# longer than that just to send the command; a frozen Redis that wakes up later than this
# runs nothing that was queued for callers long gone.
DEADLINE_BUDGET_MS = 5_000
# Longer than any booking request may take (the pool waits 10 s at most for a connection).
CLAIM_LEASE_MS = 30_000
# The reserved/sold cache is reloaded from PostgreSQL this often at the latest, which
# bounds how long an update lost to a Redis outage can leave it wrong.
TAKEN_CACHE_FRESH_MS = 300_000
TakenSnapshot = Callable[[uuid.UUID], Awaitable[dict[uuid.UUID, SeatState]]]
# Why PostgreSQL changed seats that Redis then mirrors; each change of the stream says it.
SeatChangeCause = Literal["payment", "cancellation", "booking_expiry", "refresh"]


@dataclass(frozen=True)
class SeatStates:
    """What Redis knows of an event's seats at one version: (seat id, 'reserved' | 'sold')
    pairs from the cache of PostgreSQL, and the seat ids under live holds. Without a
    version, the pairs come from PostgreSQL alone and holds are unknown."""

    version: int | None
    taken: list[tuple[str, str]]
    held: list[str]


@dataclass(frozen=True)
class HoldPolicy:
    ttl_ms: int
    max_extensions: int
    max_lifetime_ms: int
    seat_cap: int


# Every id `new_hold_id` makes: the event's id in hex, a dot, and 18 random bytes in URL-safe
# base64. Routes and bodies that take a hold id state it whole (and refuse anything else).
HOLD_ID: Final = re.compile(r"([0-9a-f]{32})\.[A-Za-z0-9_-]{24}")
HOLD_ID_PATTERN: Final = f"^{HOLD_ID.pattern}$"


def new_hold_id(event_id: uuid.UUID) -> str:
    # The event id inside the hold id says which keys (and cluster slot) hold it; the
    # random part makes it unguessable.
    return f"{event_id.hex}.{secrets.token_urlsafe(18)}"


def event_of_hold(hold_id: str) -> uuid.UUID:
    found = HOLD_ID.fullmatch(hold_id)
    if found is None:
        raise NotFound("no such hold")
    return uuid.UUID(hex=found[1])


def placed(hold: Hold, kind: str) -> Hold:
    """Counts and logs a hold just placed (`kind`: chosen or best_available)."""
    HOLDS_CREATED.labels(kind).inc()
    record("hold created", hold_id=hold.id, event_id=str(hold.event_id), seats=len(hold.seats))
    return hold


@asynccontextmanager
async def redis_or_503() -> AsyncIterator[None]:
    try:
        yield
    except REDIS_DOWN as exc:
        raise Unavailable("seat holds are unavailable right now; please retry shortly") from exc


class HoldStore:
    """Stateless access to the holds of any event; safe to share between requests."""

    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts
        self.deadline_budget_ms = DEADLINE_BUDGET_MS
        # How long a claimed hold stays claimed if its booking request dies.
        self.claim_lease_ms = CLAIM_LEASE_MS
        # Events whose PostgreSQL writes this process could not mirror into Redis's cache
        # of reserved and sold seats; the cache is dropped (and so rebuilt from PostgreSQL
        # by the next hold) as soon as Redis answers again.
        self.stale_events: set[uuid.UUID] = set()
        # When (monotonic seconds) the earliest hold this process placed on each event runs
        # out, for the expiry sweep: holds of other processes it finds on its own.
        self.placed: dict[uuid.UUID, float] = {}
        # The rebuild of each event's reserved/sold cache under way in this process.
        self._rebuilding: SingleFlight[uuid.UUID, None] = SingleFlight()
        self._clock_offset_ms = 0
        self._clock_read_at = -CLOCK_CHECK_SECONDS

    async def deadline_ms(self) -> int:
        """The moment, on Redis's clock, after which this request will have given up: a
        script that only runs later (Redis was frozen, the command was queued) must do
        nothing, or it would leave a hold no buyer knows of. The offset between the clocks
        is read with TIME once a minute."""
        now = time.time()
        if now - self._clock_read_at >= CLOCK_CHECK_SECONDS:
            async with redis_or_503():
                answer = await self.redis.time()
            # A cluster answers per node; any node's clock will do.
            seconds, micros = next(iter(answer.values())) if isinstance(answer, dict) else answer
            self._clock_offset_ms = seconds * 1000 + micros // 1000 - int(now * 1000)
            self._clock_read_at = now
        return int(now * 1000) + self._clock_offset_ms + self.deadline_budget_ms

    @staticmethod
    def event_keys(event_id: uuid.UUID, owner_id: uuid.UUID) -> list[str]:
        """The keys, in order, of the scripts that place or complete an owner's hold."""
        return [
            keys.held_seats(event_id),
            keys.taken_seats(event_id),
            keys.event_holds(event_id),
            keys.hold_seats(event_id),
            keys.owner_holds(event_id, owner_id),
            keys.seat_version(event_id),
            keys.seat_changes(event_id),
        ]

    @staticmethod
    def expiry_keys(event_id: uuid.UUID) -> list[str]:
        """The keys, in order, of the scripts that expire holds that ran out on the way."""
        return [
            keys.held_seats(event_id),
            keys.event_holds(event_id),
            keys.hold_seats(event_id),
            keys.seat_version(event_id),
            keys.seat_changes(event_id),
        ]

    async def sweep_expired(self, event_id: uuid.UUID) -> tuple[int, float | None]:
        """Expire the event's holds that ran out; answers how many, and the seconds until
        its next hold runs out (None when it has no hold left)."""
        expired, next_in_ms = await self.scripts.sweep_expired(keys=self.expiry_keys(event_id))
        return int(expired), None if int(next_in_ms) < 0 else int(next_in_ms) / 1000

    async def hold(
        self,
        event_id: uuid.UUID,
        owner_id: uuid.UUID,
        seat_ids: Sequence[uuid.UUID],
        policy: HoldPolicy,
        snapshot: TakenSnapshot,
    ) -> Hold:
        hold_id = new_hold_id(event_id)
        terms: list[str | int] = [
            hold_id,
            str(owner_id),
            policy.ttl_ms,
            policy.max_extensions,
            policy.max_lifetime_ms,
            policy.seat_cap,
        ]
        seats = list(map(str, seat_ids))
        hold_keys = [*self.event_keys(event_id, owner_id), keys.hold(event_id, hold_id)]
        async with redis_or_503():
            for _ in range(REBUILD_ATTEMPTS):
                # A deadline per attempt: rebuilding the cache first may take a while.
                args = [*terms, await self.deadline_ms(), *seats]
                reply = await self.scripts.hold(keys=hold_keys, args=args)
                if reply[0] != "rebuild":
                    break
                await self.load_taken(event_id, snapshot)
        if reply[0] == "conflict":
            refused = replies.conflict(reply)
            HOLDS_REFUSED.labels(refused.reason).inc()
            raise refused
        if reply[0] == "late":
            raise replies.refusal(reply)
        if reply[0] != "ok":
            raise Unavailable("the seat cache could not be rebuilt; please retry")
        self.note_placed(event_id, policy)
        return placed(replies.new_hold(hold_id, event_id, owner_id, seat_ids, reply), "chosen")

    def note_placed(self, event_id: uuid.UUID, policy: HoldPolicy) -> None:
        runs_out = time.monotonic() + policy.ttl_ms / 1000
        self.placed[event_id] = min(self.placed.get(event_id, runs_out), runs_out)

    async def load_taken(self, event_id: uuid.UUID, snapshot: TakenSnapshot) -> None:
        """Rebuild the reserved/sold cache of an event from PostgreSQL, once per process:
        the requests that find it missing meanwhile wait for the rebuild under way. (On a
        new event, or when the cache ran out, every hold of a sale's burst finds it
        missing; each reading PostgreSQL kept them all waiting on the connection pool.)"""
        await self._rebuilding.join(event_id, partial(self._load_taken, event_id, snapshot))

    async def aclose(self) -> None:
        """Waits for the rebuilds still reading PostgreSQL, whose callers may have given
        up, so that none holds a connection of an engine about to be disposed."""
        await self._rebuilding.wait()

    async def _load_taken(self, event_id: uuid.UUID, snapshot: TakenSnapshot) -> None:
        """Safe when several processes rebuild at once: a snapshot is only loaded if the
        cache did not change since its version was read, else it is read again."""
        key = keys.taken_seats(event_id)
        for _ in range(REBUILD_ATTEMPTS):
            version = await hash_field(self.redis, key, "__version__") or ""
            taken = await snapshot(event_id)
            pairs = [value for seat, state in taken.items() for value in (str(seat), state.value)]
            load_keys = [
                key,
                keys.layout(event_id),
                keys.open_rows(event_id),
                keys.seat_version(event_id),
                keys.seat_changes(event_id),
            ]
            loaded = await self.scripts.load_taken(
                keys=load_keys, args=[version, TAKEN_CACHE_FRESH_MS, *pairs]
            )
            if loaded:
                return

    async def seat_states(self, event_id: uuid.UUID, snapshot: TakenSnapshot) -> SeatStates:
        """The event's reserved, sold and held seats with the version they show, read in one
        atomic step (the reserved/sold cache is rebuilt first when it must be)."""
        state_keys = [*self.expiry_keys(event_id), keys.taken_seats(event_id)]
        for _ in range(REBUILD_ATTEMPTS):
            reply = await self.scripts.availability(keys=state_keys)
            if reply[0] != "rebuild":
                break
            await self.load_taken(event_id, snapshot)
        if reply[0] != "ok":
            raise Unavailable("the seat cache could not be rebuilt; please retry")
        taken_count = int(reply[2])
        pairs = reply[3 : 3 + 2 * taken_count]
        return SeatStates(
            version=int(reply[1]),
            taken=list(zip(pairs[0::2], pairs[1::2], strict=True)),
            held=reply[3 + 2 * taken_count :],
        )

    async def get(self, hold_id: str, owner_id: uuid.UUID) -> Hold:
        event_id = event_of_hold(hold_id)
        async with redis_or_503():
            fields = await hash_fields(self.redis, keys.hold(event_id, hold_id))
        if not fields or fields["owner"] != str(owner_id):
            raise NotFound("no such hold")
        return Hold(
            id=hold_id,
            event_id=event_id,
            owner_id=owner_id,
            seats=replies.seat_ids_of(fields["seats"].split(",")),
            expires_at=replies.from_ms(fields["expires"]),
            extensions_left=int(fields["max_extensions"]) - int(fields["extensions"]),
            state=fields["state"],
        )

    async def extend(self, hold_id: str, owner_id: uuid.UUID) -> Hold:
        event_id = event_of_hold(hold_id)
        extend_keys = [
            keys.event_holds(event_id),
            keys.owner_holds(event_id, owner_id),
            keys.hold(event_id, hold_id),
        ]
        # New for every call, so that the same call sent again finds its own extension.
        args: list[str | int] = [
            hold_id,
            str(owner_id),
            await self.deadline_ms(),
            secrets.token_hex(8),
        ]
        async with redis_or_503():
            reply = await self.scripts.extend(keys=extend_keys, args=args)
        if reply[0] != "ok":
            raise replies.refusal(reply)
        HOLDS_EXTENDED.inc()
        return await self.get(hold_id, owner_id)

    async def release(self, hold_id: str, owner_id: uuid.UUID | None) -> list[uuid.UUID]:
        """Free a hold's seats; with no owner given (ops), whoever holds it."""
        event_id = event_of_hold(hold_id)
        async with redis_or_503():
            if owner_id is None:
                owner = await hash_field(self.redis, keys.hold(event_id, hold_id), "owner")
                if owner is None:
                    raise NotFound("no such hold")
            holder = owner_id or uuid.UUID(owner)
            force = "force" if owner_id is None else ""
            # New for every call, so that the same call sent again finds its own release.
            reply = await self.scripts.release(
                keys=self.release_keys(event_id, holder, hold_id),
                args=[hold_id, str(holder), force, secrets.token_hex(8)],
            )
        if reply[0] != "ok":
            raise NotFound("no such hold") if reply[0] == "not_owner" else replies.refusal(reply)
        by = "owner" if owner_id else "ops"
        HOLDS_RELEASED.labels(by).inc()
        record("hold released", hold_id=hold_id, event_id=str(event_id), by=by)
        return replies.seat_ids_of(reply[1:])

    @staticmethod
    def release_keys(event_id: uuid.UUID, owner_id: uuid.UUID, hold_id: str) -> list[str]:
        return [
            keys.held_seats(event_id),
            keys.event_holds(event_id),
            keys.hold_seats(event_id),
            keys.owner_holds(event_id, owner_id),
            keys.hold(event_id, hold_id),
            keys.seat_rows(event_id),
            keys.open_rows(event_id),
            keys.seat_version(event_id),
            keys.seat_changes(event_id),
            keys.released_hold(event_id, hold_id),
        ]

    async def claim(self, hold_id: str, owner_id: uuid.UUID) -> tuple[uuid.UUID, list[uuid.UUID]]:
        """Mark a live hold of the caller's as being converted; returns its event and seats."""
        event_id = event_of_hold(hold_id)
        # New for every call, so that the same call sent again finds its own claim.
        token = secrets.token_hex(8)
        args: list[str | int] = [
            str(owner_id),
            await self.deadline_ms(),
            self.claim_lease_ms,
            token,
        ]
        async with redis_or_503():
            reply = await self.scripts.claim(keys=[keys.hold(event_id, hold_id)], args=args)
        if reply[0] != "ok":
            raise replies.refusal(reply)
        return event_id, replies.seat_ids_of(reply[1:])

    async def unclaim(self, hold_id: str, owner_id: uuid.UUID) -> None:
        event_id = event_of_hold(hold_id)
        async with redis_or_503():
            await self.scripts.unclaim(keys=[keys.hold(event_id, hold_id)], args=[str(owner_id)])

    async def complete(
        self, hold_id: str, owner_id: uuid.UUID, state: SeatState, seat_ids: Sequence[uuid.UUID]
    ) -> None:
        """After PostgreSQL committed: record the seats as taken and drop the hold."""
        event_id = event_of_hold(hold_id)
        complete_keys = [*self.event_keys(event_id, owner_id), keys.hold(event_id, hold_id)]
        async with self._mirroring(event_id):
            await self.scripts.complete(
                keys=complete_keys, args=[hold_id, state.value, *map(str, seat_ids)]
            )

    async def mark_taken(
        self,
        event_id: uuid.UUID,
        state: SeatState,
        seat_ids: Sequence[uuid.UUID],
        cause: SeatChangeCause,
    ) -> None:
        mark_keys = [
            keys.taken_seats(event_id),
            keys.seat_version(event_id),
            keys.seat_changes(event_id),
        ]
        async with self._mirroring(event_id):
            await self.scripts.mark_taken(
                keys=mark_keys, args=[state.value, cause, *map(str, seat_ids)]
            )

    async def free_taken(
        self, event_id: uuid.UUID, seat_ids: Sequence[uuid.UUID], cause: SeatChangeCause
    ) -> None:
        free_keys = [
            keys.taken_seats(event_id),
            keys.seat_rows(event_id),
            keys.open_rows(event_id),
            keys.seat_version(event_id),
            keys.seat_changes(event_id),
        ]
        async with self._mirroring(event_id):
            await self.scripts.free_taken(keys=free_keys, args=[cause, *map(str, seat_ids)])

    @asynccontextmanager
    async def _mirroring(self, event_id: uuid.UUID) -> AsyncIterator[None]:
        """A step that mirrors a PostgreSQL commit into Redis: if Redis is unreachable, the
        event's cache is marked stale (and the error goes on to the caller)."""
        try:
            yield
        except REDIS_DOWN:
            self.stale_events.add(event_id)
            raise

    async def repair_stale(self, snapshot: TakenSnapshot) -> None:
        """Reload from PostgreSQL the reserved/sold cache of every event this process could
        not mirror a write into; stops at the first event Redis still cannot be reached
        for. The cache is marked stale rather than dropped, so that the reload records
        exactly the seats it corrects in the stream of changes."""
        for event_id in list(self.stale_events):
            key = keys.taken_seats(event_id)
            await cast("Awaitable[int]", self.redis.hset(key, "__ready__", "0"))
            await self.load_taken(event_id, snapshot)
            self.stale_events.discard(event_id)

    async def forget_layout(self, event_id: uuid.UUID) -> None:
        """After the seat map changed: best available reloads the layout on its next use."""
        await self.redis.delete(
            keys.layout(event_id),
            keys.seat_rows(event_id),
            keys.open_rows(event_id),
            keys.reopen_rows(event_id),
        )

    async def held_seats(self, event_id: uuid.UUID) -> dict[uuid.UUID, HeldSeat]:
        async with redis_or_503():
            reply = await self.scripts.held_seats(
                keys=self.expiry_keys(event_id), args=[keys.hold_prefix(event_id)]
            )
        return {
            uuid.UUID(seat): HeldSeat(hold_id=hold_id, owner_id=uuid.UUID(owner))
            for seat, hold_id, owner in zip(reply[0::3], reply[1::3], reply[2::3], strict=True)
        }

    async def live_holds(
        self, event_id: uuid.UUID, limit: int, start: int = 0
    ) -> tuple[datetime, int, list[LiveHold]]:
        """Redis's time, the number of live holds of the event, and `limit` of them from
        rank `start`, soonest to expire first."""
        async with redis_or_503():
            reply = await self.scripts.list_holds(
                keys=self.expiry_keys(event_id),
                args=[keys.hold_prefix(event_id), limit, start],
            )
        now, total, rows = replies.from_ms(reply[0]), int(reply[1]), reply[2:]
        holds = [
            LiveHold(
                id=hold_id,
                owner_id=uuid.UUID(owner),
                seats=replies.seat_ids_of(seats.split(",")),
                expires_at=replies.from_ms(expires),
                state=state,
            )
            for hold_id, owner, seats, expires, state in zip(*[iter(rows)] * 5, strict=True)
        ]
        return now, total, holds
