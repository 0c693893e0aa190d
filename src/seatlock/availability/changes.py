"""The stream of seat changes: each process reads an event's change log from Redis once
and fans it out to its own subscribers.

The log is written by the same scripts that change the seats (see lua/lib/seat_changes.lua),
one entry per change with the event's next version, so it misses nothing. Versions are
consecutive integers, so a subscriber knows exactly whether it has seen every change: a
subscriber that finds a gap asks the log for what it missed, and is told to resync (fetch
the snapshot again) when the log no longer holds it, when Redis lost its data, or when the
log itself says so.

The log is polled rather than read with a blocking XREAD: a poll every 100 ms costs one
cheap call per event per process, batches changes into frames, and works unchanged on a
cluster client with the service's short socket timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Final, cast

from seatlock import keys
from seatlock.redis_client import REDIS_DOWN, RedisClient

logger = logging.getLogger("seatlock")

POLL_SECONDS: Final = 0.1
# A poll that finds nothing checks the version this often, to notice a Redis that lost
# its data (the version went back) while no change happens.
VERSION_CHECK_SECONDS: Final = 1.0
ENTRIES_PER_READ: Final = 1000
# Frames a subscriber may fall behind by before it is told to resync instead.
SUBSCRIBER_BACKLOG: Final = 256
# A feed with no subscriber stops polling after this long.
IDLE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Change:
    version: int
    state: str  # held | available | reserved | sold | resync
    cause: str
    seats: tuple[str, ...]


@dataclass(frozen=True)
class Resync:
    """The subscriber cannot be told exactly what it missed: it must fetch the snapshot."""

    version: int | None


Frame = tuple[Change, ...] | Resync


def _version_of(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _change(entry_id: str, entry: dict[str, str]) -> Change:
    seats = entry.get("seats", "")
    return Change(
        version=_version_of(entry_id),
        state=entry.get("state", "resync"),
        cause=entry.get("cause", ""),
        seats=tuple(seats.split(",")) if seats else (),
    )


class ChangeLog:
    """Reads an event's change log and version from Redis."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis

    async def version(self, event_id: uuid.UUID) -> int | None:
        value = await cast("Awaitable[str | None]", self.redis.get(keys.seat_version(event_id)))
        return None if value is None else int(value)

    async def after(self, event_id: uuid.UUID, version: int | None) -> list[Change]:
        """Up to ENTRIES_PER_READ changes after `version` (all from the start with None)."""
        start = "-" if version is None else f"({version}-0"
        entries = await cast(
            "Awaitable[list[tuple[str, dict[str, str]]]]",
            self.redis.xrange(keys.seat_changes(event_id), start, "+", count=ENTRIES_PER_READ),
        )
        return [_change(entry_id, entry) for entry_id, entry in entries]

    async def since(self, event_id: uuid.UUID, version: int, until: int) -> list[Change] | None:
        """Every change after `version` up to `until`, or None when the log no longer holds
        them all."""
        missed: list[Change] = []
        position = version
        while position < until:
            batch = [c for c in await self.after(event_id, position) if c.version <= until]
            if not batch or batch[0].version != position + 1:
                return None
            if any(b.version != a.version + 1 for a, b in itertools.pairwise(batch)):
                return None
            missed += batch
            position = batch[-1].version
        return missed


@dataclass(eq=False)
class Subscriber:
    """One client's place in the stream: the last version it was sent."""

    position: int | None
    frames: asyncio.Queue[Frame] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_BACKLOG))
    overflowed: bool = False

    def offer(self, frame: Frame) -> None:
        if self.overflowed:
            return
        try:
            self.frames.put_nowait(frame)
        except asyncio.QueueFull:
            # A client too slow to keep up resyncs instead of holding memory without end.
            self.overflowed = True


class EventFeed:
    """One event's changes, polled once per process and offered to every subscriber."""

    def __init__(self, log: ChangeLog, event_id: uuid.UUID) -> None:
        self.log = log
        self.event_id = event_id
        self.subscribers: set[Subscriber] = set()
        self.position: int | None = None
        self.started = False
        self._task: asyncio.Task[None] | None = None

    def start(self, position: int | None) -> None:
        if self._task is None:
            self.position = position
            self.started = True
            self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _publish(self, frame: Frame) -> None:
        for subscriber in self.subscribers:
            subscriber.offer(frame)

    async def _poll(self) -> None:
        idle_for = 0.0
        checked_for = 0.0
        while idle_for < IDLE_SECONDS:
            await asyncio.sleep(POLL_SECONDS)
            idle_for = 0.0 if self.subscribers else idle_for + POLL_SECONDS
            try:
                changes = await self.log.after(self.event_id, self.position)
                if changes:
                    self.position = changes[-1].version
                    self._publish(tuple(changes))
                    checked_for = 0.0
                    continue
                checked_for += POLL_SECONDS
                if checked_for >= VERSION_CHECK_SECONDS:
                    checked_for = 0.0
                    await self._check_version()
            except REDIS_DOWN:
                # Subscribers hear nothing new until Redis is back; then the version check
                # tells whether the log carried on or started over.
                checked_for = VERSION_CHECK_SECONDS
        self.started = False
        self._task = None

    async def _check_version(self) -> None:
        version = await self.log.version(self.event_id)
        if self.position is not None and (version is None or version < self.position):
            # Redis lost the log (or went back to an older copy): nobody can catch up.
            self.position = version
            self._publish(Resync(version))
        elif self.position is None and version is not None:
            self.position = version


class Subscription:
    """One client's frames, in order, each with nothing it saw before and nothing missing."""

    def __init__(
        self, log: ChangeLog, feed: EventFeed, subscriber: Subscriber, current: int | None
    ) -> None:
        self.log = log
        self.feed = feed
        self.subscriber = subscriber
        # The event's version when the client subscribed, until it has caught up to it.
        self._catch_up_to: int | None = current
        self._caught_up = False

    def close(self) -> None:
        self.feed.subscribers.discard(self.subscriber)

    async def next(self, quiet_seconds: float) -> Frame | None:
        """The next frame, or None when none came within `quiet_seconds`."""
        if not self._caught_up:
            self._caught_up = True
            return await self._catch_up(self._catch_up_to)
        subscriber = self.subscriber
        try:
            # Waiting on the queue is safe to cancel: a frame is either taken or left.
            frame = await asyncio.wait_for(subscriber.frames.get(), quiet_seconds)
        except TimeoutError:
            return None
        if subscriber.overflowed:
            subscriber.overflowed = False
            subscriber.frames = asyncio.Queue(SUBSCRIBER_BACKLOG)
            frame = Resync(self.feed.position)
        if isinstance(frame, Resync):
            subscriber.position = frame.version
            return frame
        return await self._fresh(frame)

    async def _catch_up(self, current: int | None) -> Frame:
        subscriber = self.subscriber
        if subscriber.position is None:
            return ()
        if current is None or subscriber.position > current:
            # The client knows a version Redis never reached: Redis lost its data.
            subscriber.position = current
            return Resync(current)
        missed = await self.log.since(self.feed.event_id, subscriber.position, current)
        if missed is None:
            subscriber.position = current
            return Resync(current)
        if missed:
            subscriber.position = missed[-1].version
        return tuple(missed)

    async def _fresh(self, frame: tuple[Change, ...]) -> Frame:
        """The part of a frame the subscriber has not seen, with any gap before it filled
        from the log (or a resync when the log cannot fill it)."""
        position = self.subscriber.position
        changes = [c for c in frame if position is None or c.version > position]
        if not changes:
            return ()
        if position is not None and changes[0].version != position + 1:
            missed = await self.log.since(self.feed.event_id, position, changes[0].version - 1)
            if missed is None:
                self.subscriber.position = frame[-1].version
                return Resync(frame[-1].version)
            changes = missed + changes
        self.subscriber.position = changes[-1].version
        return tuple(changes)


class Fanout:
    """The feeds of this process, one per event that has subscribers."""

    def __init__(self, redis: RedisClient) -> None:
        self.log = ChangeLog(redis)
        self.feeds: dict[uuid.UUID, EventFeed] = {}

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            await feed.stop()
        self.feeds.clear()

    async def subscribe(self, event_id: uuid.UUID, position: int | None) -> Subscription:
        """A client's subscription, starting after version `position` (the current version
        when None); the caller closes it. Redis errors raise here, before any frame."""
        current = await self.log.version(event_id)
        # Feeds that stopped for want of subscribers are forgotten.
        self.feeds = {key: feed for key, feed in self.feeds.items() if feed.started}
        feed = self.feeds.get(event_id)
        if feed is None:
            feed = self.feeds[event_id] = EventFeed(self.log, event_id)
        subscriber = Subscriber(position if position is not None else current)
        # Subscribed before catching up, so that no change falls between the two.
        feed.subscribers.add(subscriber)
        feed.start(current)
        return Subscription(self.log, feed, subscriber, current)
