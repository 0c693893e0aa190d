"""The feed of account changes, on a real Valkey and PostgreSQL: a worker checks tokens
against the stamps it read from the feed without any I/O, learns the changes made before
it started, falls back to PostgreSQL when it has not heard from the feed within its bound,
and keeps a change only while a token issued before it can live."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock import keys
from seatlock.auth import account_stamps
from seatlock.auth.account_stamps import FORGET_EVERY_SECONDS, Stamp, StampCache
from seatlock.embedded.host import free_port
from seatlock.models import Role, User, UserStatus
from seatlock.redis_client import REDIS_DOWN, Breaker
from seatlock.settings import Settings
from tests.clock import Clock

BOUND_SECONDS = 2.0


async def _account(sessions: async_sessionmaker[AsyncSession]) -> User:
    """A buyer in PostgreSQL, as the ORM object `publish` takes."""
    async with sessions() as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex}@example.test", password_hash="-", full_name="Buyer")
        session.add(user)
    return user


def _cache(
    redis: Redis, sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
) -> StampCache:
    bounded = msgspec.structs.replace(settings, account_cache_seconds=BOUND_SECONDS)
    return StampCache(redis, sessions, bounded, clock)


async def _changed(
    redis: Redis, sessions: async_sessionmaker[AsyncSession], settings: Settings, **values: Any
) -> User:
    """A buyer whose account changed (`values`), the change published as the service does."""
    user = await _account(sessions)
    for name, value in values.items():
        setattr(user, name, value)
    await account_stamps.publish(redis, settings, user)
    return user


async def _following(
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock | None = None,
) -> StampCache:
    """A worker's cache that has read the feed as it stands."""
    cache = _cache(redis, sessions, settings, clock or Clock())
    await cache.read_feed()
    return cache


async def _commands(redis: Redis) -> int:
    """Commands the server ran so far, the INFO calls that ask excluded."""
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def test_a_change_read_from_the_feed_answers_the_check_without_io(
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    changed = await _changed(redis, sessions, settings, status=UserStatus.DISABLED)
    untouched = await _account(sessions)
    cache = await _following(redis, sessions, settings)

    before = await _commands(redis)
    stamps = [await cache.stamp(changed.id), await cache.stamp(untouched.id)]
    after = await _commands(redis)

    assert stamps == [Stamp(0, Role.USER, UserStatus.DISABLED), None]
    assert after == before


async def test_a_worker_learns_changes_made_before_and_after_it_started(
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    early = await _changed(redis, sessions, settings, role=Role.ORGANIZER)
    cache = await _following(redis, sessions, settings)
    late = await _changed(redis, sessions, settings, token_generation=3)
    await cache.read_feed()

    assert await cache.stamp(early.id) == Stamp(0, Role.ORGANIZER, UserStatus.ACTIVE)
    assert await cache.stamp(late.id) == Stamp(3, Role.USER, UserStatus.ACTIVE)


async def _disabled_in_postgresql_only(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> User:
    """A change the feed never got (Redis was down when it was made)."""
    buyer = await _account(sessions)
    async with engine.begin() as conn:
        await conn.execute(
            update(User).where(User.id == buyer.id).values(status=UserStatus.DISABLED)
        )
    return buyer


DISABLED = Stamp(0, Role.USER, UserStatus.DISABLED)


async def test_an_entry_that_is_not_a_stamp_is_skipped(
    redis: Redis, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    # Something else wrote to the feed: the worker goes on reading what follows it.
    await redis.xadd(keys.ACCOUNT_CHANGES, {"account": "not an id", "stamp": "0 USER active"})
    changed = await _changed(redis, sessions, settings, status=UserStatus.DISABLED)
    cache = await _following(redis, sessions, settings)

    assert await cache.stamp(changed.id) == DISABLED
    assert cache.feed_is_current


async def test_failing_reads_give_way_to_postgresql_after_the_bound(
    redis: Redis,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    buyer = await _disabled_in_postgresql_only(engine, sessions)
    clock = Clock()
    cache = _cache(redis, sessions, settings, clock)
    never_read = await cache.stamp(buyer.id)
    await cache.read_feed()
    read = await cache.stamp(buyer.id)
    # A worker whose event loop runs far behind reads the feed late: that is no failure,
    # and its checks do not all go to PostgreSQL when it can least afford it.
    clock.now += 10 * BOUND_SECONDS
    read_late = await cache.stamp(buyer.id)
    # Redis goes away: the feed still answers until its reads have failed for the bound.
    cache.redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    with pytest.raises(REDIS_DOWN):
        await cache.read_feed()
    failed_within_the_bound = await cache.stamp(buyer.id)
    clock.now += BOUND_SECONDS
    failed_past_the_bound = await cache.stamp(buyer.id)
    await cache.redis.aclose()
    cache.redis = redis
    await cache.read_feed()

    assert (never_read, read, read_late) == (DISABLED, None, None)
    assert (failed_within_the_bound, failed_past_the_bound) == (None, DISABLED)
    assert await cache.stamp(buyer.id) is None


async def test_a_redis_that_stops_answering_gives_way_to_postgresql_after_the_bound(
    redis: Redis,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    # A Redis that takes connections and never answers: a frozen one.
    async def accept_and_stay_silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    frozen = Redis.from_url(
        f"redis://127.0.0.1:{port}/0", decode_responses=True, socket_timeout=0.2
    )
    buyer = await _disabled_in_postgresql_only(engine, sessions)
    clock = Clock()
    cache = await _following(redis, sessions, settings, clock)
    cache.redis = frozen
    with pytest.raises(REDIS_DOWN):
        await cache.read_feed()
    timed_out_within_the_bound = await cache.stamp(buyer.id)
    clock.now += BOUND_SECONDS
    past_the_bound = await cache.stamp(buyer.id)
    await frozen.aclose()
    server.close()
    await server.wait_closed()

    assert (timed_out_within_the_bound, past_the_bound) == (None, DISABLED)


async def test_a_change_is_kept_only_while_older_tokens_live(
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    old = await _account(sessions)
    lifetime_ms = account_stamps.stamp_lifetime_ms(settings)
    # A change made just over a token's lifetime ago, written as publish wrote it then.
    then = int(time.time() * 1000) - lifetime_ms - 1000
    await redis.xadd(
        keys.ACCOUNT_CHANGES,
        {"account": str(old.id), "stamp": Stamp(1, Role.USER, UserStatus.ACTIVE).encode()},
        id=f"{then}-0",
    )
    clock = Clock()
    cache = _cache(redis, sessions, settings, clock)
    await cache.read_feed()
    remembered_at_first = await cache.stamp(old.id)
    recent = await _changed(redis, sessions, settings, status=UserStatus.DISABLED)
    clock.now += FORGET_EVERY_SECONDS
    await cache.read_feed()
    clock.now += 0.1

    entries = await redis.xrange(keys.ACCOUNT_CHANGES)
    assert [fields["account"] for _, fields in entries] == [str(recent.id)]
    assert remembered_at_first == Stamp(1, Role.USER, UserStatus.ACTIVE)
    # Heard recently: the feed answers, and it no longer names the old change.
    assert await cache.stamp(old.id) is None
    assert await cache.stamp(recent.id) == Stamp(0, Role.USER, UserStatus.DISABLED)


async def test_the_feed_is_not_read_while_the_breaker_skips_redis(
    redis: Redis,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    # Another step of the worker found Redis failing: the reader keeps off it as they do.
    buyer = await _disabled_in_postgresql_only(engine, sessions)
    clock = Clock()
    cache = await _following(redis, sessions, settings, clock)
    breaker = Breaker(open_seconds=600, clock=clock)

    async def redis_failed() -> None:
        raise RedisConnectionError("Redis is down")

    await breaker.attempt(redis_failed, None)
    reads_before = await _reads_of_the_feed(redis)
    stop = asyncio.Event()
    reader = asyncio.create_task(cache.follow_until(stop, breaker))
    await asyncio.sleep(5 * account_stamps.FEED_POLL_SECONDS)
    within_the_bound = await cache.stamp(buyer.id)
    clock.now += BOUND_SECONDS
    past_the_bound = await cache.stamp(buyer.id)
    stop.set()
    await reader

    assert await _reads_of_the_feed(redis) == reads_before
    assert (within_the_bound, past_the_bound) == (None, DISABLED)


async def _reads_of_the_feed(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xread", {"calls": 0})["calls"])
