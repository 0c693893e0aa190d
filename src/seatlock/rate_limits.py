"""Rate limits of the routes bots would churn: hold creation (per account and per client
address), registration (per address) and payment initiation (per account).

The `limits` library counts them in Redis, in fixed windows (a subject's first request
starts a window of the limit's period), so they hold across workers and hosts. A route's
check is one Redis round trip: the library's counting script for each of its limits, sent
in one pipeline (the library itself would send them one by one; on Redis Cluster, which
pipelines no scripts, they go concurrently). A refusal is 429 with `Retry-After`, the end
of the window (read with the library's own calls, on the refused path only).

With Redis down, hold creation answers 503 at once, as the hold itself would. Registration
and payment initiation go on unlimited (fail open): both must keep working through a Redis
outage, and both stay bounded otherwise (a registration needs a new email and costs its
caller a password hash; a payment needs the caller's own pending booking and an
Idempotency-Key); the breaker keeps them from waiting on a dead Redis more than once per
window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any, NamedTuple, cast

import limits
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError

from seatlock import keys
from seatlock.errors import TooManyRequests, Unavailable
from seatlock.redis_client import REDIS_DOWN, Breaker, RedisClient
from seatlock.settings import Settings

logger = logging.getLogger("seatlock")


class _Check(NamedTuple):
    limit: limits.RateLimitItem
    subject: str
    # "account" or "address", for the refusal's message.
    per: str


def _limit(setting: str) -> limits.RateLimitItem | None:
    """A setting in the library's notation ("30/minute"); empty for no limit."""
    return limits.parse(setting) if setting else None


def _storage(redis: RedisClient, settings: Settings) -> RedisStorage:
    options: dict[str, Any] = {"key_prefix": keys.RATE_LIMIT_PREFIX, "implementation": "redispy"}
    if isinstance(redis, RedisCluster):
        timeout = settings.redis_timeout_seconds
        nodes = settings.redis_url.split("://", 1)[1]
        return RedisClusterStorage(
            f"async+redis+cluster://{nodes}",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **options,
        )
    # The app's own connections, with their timeouts.
    options["connection_pool"] = redis.connection_pool
    return RedisStorage(f"async+{settings.redis_url}", **options)


class RateLimits:
    """One per process, shared by its requests."""

    def __init__(self, redis: RedisClient, settings: Settings, breaker: Breaker) -> None:
        storage = _storage(redis, settings)
        self._bridge = cast(RedispyBridge, storage.bridge)
        # On Redis Cluster the library keeps a client of its own; otherwise it uses the app's.
        self._own_client = isinstance(redis, RedisCluster)
        self._limiter = FixedWindowRateLimiter(storage)
        self._breaker = breaker
        self._holds_per_account = _limit(settings.rate_limit_holds_per_account)
        self._holds_per_address = _limit(settings.rate_limit_holds_per_address)
        self._registrations_per_address = _limit(settings.rate_limit_registrations_per_address)
        self._payments_per_account = _limit(settings.rate_limit_payments_per_account)

    async def aclose(self) -> None:
        if self._own_client:
            await cast(RedisCluster, self._bridge.get_connection()).aclose()

    async def hold(self, account_id: uuid.UUID, address: str) -> None:
        checks = [
            *self._checks(self._holds_per_account, "holds", "account", str(account_id)),
            *self._checks(self._holds_per_address, "holds", "address", address),
        ]
        try:
            refusal = await self._refusal("holds", checks)
        except REDIS_DOWN as exc:
            raise Unavailable("seat holds are unavailable right now; please retry shortly") from exc
        if refusal is not None:
            raise refusal

    async def registration(self, address: str) -> None:
        limit = self._registrations_per_address
        await self._fail_open("registrations", self._checks(limit, "register", "address", address))

    async def payment(self, account_id: uuid.UUID) -> None:
        limit, account = self._payments_per_account, str(account_id)
        await self._fail_open("payments", self._checks(limit, "payments", "account", account))

    @staticmethod
    def _checks(
        limit: limits.RateLimitItem | None, route: str, per: str, value: str
    ) -> list[_Check]:
        return [] if limit is None else [_Check(limit, keys.rate_limited(route, per, value), per)]

    async def _hits(self, checks: list[_Check]) -> list[bool]:
        """What `FixedWindowRateLimiter.hit` does for each check (the library's script on
        the library's key), in one pipeline: whether each limit still admits the request.
        Redis Cluster pipelines no scripts: there the library's calls go concurrently."""
        if self._own_client:
            return list(
                await asyncio.gather(*(self._limiter.hit(c.limit, c.subject) for c in checks))
            )
        bridge = self._bridge
        client = cast(RedisClient, bridge.get_connection())
        async with client.pipeline(transaction=False) as pipe:
            for check in checks:
                key = bridge.prefixed_key(check.limit.key_for(check.subject))
                pipe.evalsha(bridge.lua_incr_expire.sha, 1, key, check.limit.get_expiry(), 1)
            try:
                counts = await pipe.execute()
            except NoScriptError:
                # Redis lost its scripts (a restart, a flush): the library's own calls load
                # them again.
                return [await self._limiter.hit(check.limit, check.subject) for check in checks]
        return [
            int(count) <= check.limit.amount for count, check in zip(counts, checks, strict=True)
        ]

    async def _fail_open(self, what: str, checks: list[_Check]) -> None:
        refusal, counted = await self._breaker.attempt(lambda: self._refusal(what, checks), None)
        if not counted and checks:
            logger.warning("%s are not rate limited: Redis is unreachable", what)
        if refusal is not None:
            raise refusal

    async def _refusal(self, what: str, checks: list[_Check]) -> TooManyRequests | None:
        if not checks:
            return None
        allowed = await self._hits(checks)
        refused = [check for check, ok in zip(checks, allowed, strict=True) if not ok]
        if not refused:
            return None
        ends = [
            (await self._limiter.get_window_stats(check.limit, check.subject)).reset_time
            for check in refused
        ]
        retry_after = max(math.ceil(max(ends) - time.time()), 1)
        check = refused[0]
        return TooManyRequests(
            f"too many {what}: at most {check.limit} per {check.per}; try again in {retry_after} s",
            retry_after=retry_after,
        )
