"""The Redis connection: one client for a single server or a cluster, with short timeouts
so that a Redis outage turns into a quick 503 instead of a hung request."""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from seatlock.settings import Settings

RedisClient: TypeAlias = Redis | RedisCluster

# What a Redis outage looks like to a caller of redis-py.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def connect_redis(settings: Settings) -> RedisClient:
    timeout = settings.redis_timeout_seconds
    if settings.redis_cluster:
        return RedisCluster.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        health_check_interval=30,
    )


async def ping(redis: RedisClient) -> bool:
    # redis-py types ping() for its sync and async clients at once.
    return bool(await redis.ping())  # type: ignore[misc]
