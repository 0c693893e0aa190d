"""The Redis connection: one client for a single server or a cluster, with short timeouts
so that a Redis outage turns into a quick 503 instead of a hung request."""

from __future__ import annotations

from typing import Annotated, TypeAlias

from litestar.params import Dependency

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from seatlock.settings import Settings

RedisClient: TypeAlias = Redis | RedisCluster
# How handlers ask for the client: Litestar cannot validate a union of two client classes,
# and need not, since the app provides it.
RedisDep: TypeAlias = Annotated[RedisClient, Dependency(skip_validation=True)]

# What a Redis outage looks like to a caller of redis-py.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def connect_redis(settings: Settings) -> RedisClient:
    timeouts = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "decode_responses": True,
    }
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **timeouts)  # type: ignore[arg-type]
    return Redis.from_url(settings.redis_url, health_check_interval=30, **timeouts)  # type: ignore[arg-type]
