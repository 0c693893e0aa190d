"""The Redis connection: one client for a single server or a cluster, with short timeouts
so that a Redis outage turns into a quick 503 instead of a hung request, and a breaker
that lets the reads which can do without Redis stop waiting for it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar, cast
from urllib.parse import urlsplit

from redis import DriverInfo
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from seatlock.errors import Unavailable
from seatlock.settings import Settings

RedisClient: TypeAlias = Redis | RedisCluster

# What a Redis outage looks like to a caller of redis-py.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError)
# ... and once the hold layer has turned that into a domain error (a 503), or a script
# found that Redis answered after its caller's deadline.
REDIS_FAILED = (*REDIS_DOWN, Unavailable)

T = TypeVar("T")

logger = logging.getLogger("seatlock")


class PackedInC(Connection):
    """A connection that packs its commands with hiredis, in C, as redis-py's blocking
    client does when hiredis is installed; its asyncio client packs them in Python, which
    was a twentieth of a hold's CPU (a script call has some twenty keys and arguments).
    Plain `redis://` addresses only: TLS and Unix sockets keep redis-py's own connections."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        # redis-py's annotation of `pack` takes each argument for a list.
        packed: list[bytes] = self._packer.pack(*cast(Any, args))
        return packed


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
        connection_class=PackedInC
        if urlsplit(settings.redis_url).scheme == "redis"
        else Connection,
        # What the connections name themselves with (CLIENT SETINFO), made once: left to
        # `from_url`, each new connection reads redis-py's version from the installed
        # package's metadata, about 2 ms, while a sale's opening burst opens dozens.
        driver_info=DriverInfo(),
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


class Breaker:
    """Lets a step that can do without Redis skip it for `open_seconds` after Redis failed,
    so that while Redis is down or frozen such reads answer at once instead of each waiting
    out the Redis timeout. Once the window is over a single caller tries Redis again (the
    others keep skipping meanwhile); its success closes the breaker, its failure opens it
    for another window. One per process, shared by its requests."""

    def __init__(self, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_seconds = open_seconds
        self._clock = clock
        self._tripped = False
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._tripped and (self._probing or self._clock() < self._open_until)

    async def attempt(self, step: Callable[[], Awaitable[T]], fallback: T) -> tuple[T, bool]:
        """`step()`'s answer and True; `fallback` and False when Redis was skipped or failed."""
        if self.is_open:
            return fallback, False
        # Past the window of a tripped breaker: this caller tries Redis, the others skip it.
        probe = self._tripped
        if probe:
            self._probing = True
        try:
            value = await step()
        except REDIS_FAILED as exc:
            if not self._tripped:
                logger.warning("Redis failed (%s); skipping it for %s s", exc, self.open_seconds)
            self._tripped, self._open_until = True, self._clock() + self.open_seconds
            return fallback, False
        finally:
            if probe:
                self._probing = False
        # Only the probe's success closes the breaker: a call that was already under way when
        # another one tripped it may have had its answer before Redis froze.
        if probe:
            self._tripped = False
        return value, True
