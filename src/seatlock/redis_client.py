"""The Redis connection: one client for a single server or a cluster, with short timeouts
so that a Redis outage turns into a quick 503 instead of a hung request."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeAlias, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from seatlock.settings import Settings

RedisClient: TypeAlias = Redis | RedisCluster

# What a Redis outage looks like to a caller of redis-py.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError)

logger = logging.getLogger("seatlock")


def connect_redis(settings: Settings) -> RedisClient:
    timeout = settings.redis_timeout_seconds
    # One immediate retry replaces a connection that a Redis restart broke; more, or a
    # backoff, would hold the request well past the timeout when Redis is really down.
    retry = Retry(NoBackoff(), 1)
    if settings.redis_cluster:
        return RedisCluster.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            retry=retry,
        )
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        health_check_interval=30,
        retry=retry,
    )


# redis-py types its commands for the sync and async clients at once; these few wrappers
# give the async client's answers their real types.


async def ping(redis: RedisClient) -> bool:
    return bool(await cast("Awaitable[bool]", redis.ping()))


async def hash_field(redis: RedisClient, key: str, field: str) -> str | None:
    return await cast("Awaitable[str | None]", redis.hget(key, field))


async def hash_fields(redis: RedisClient, key: str) -> dict[str, str]:
    return await cast("Awaitable[dict[str, str]]", redis.hgetall(key))


async def best_effort(step: Awaitable[object]) -> None:
    """Run a Redis step that follows a PostgreSQL commit. If Redis is down the cache is
    rebuilt from PostgreSQL later, so the commit stands."""
    try:
        await step
    except REDIS_DOWN:
        logger.warning("Redis unreachable after a seat change; its cache will be rebuilt")
