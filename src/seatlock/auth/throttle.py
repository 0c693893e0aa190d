"""Sign-in throttling: failed attempts counted per account and per client address in Redis.

Counting fails open: with Redis down, sign-in keeps working without throttling, since
only holds may depend on Redis.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from seatlock import keys
from seatlock.errors import DomainError, TooManyRequests
from seatlock.redis_client import REDIS_DOWN, RedisClient
from seatlock.settings import Settings

logger = logging.getLogger("seatlock")


def _limits(settings: Settings, email: str, address: str) -> list[tuple[str, int]]:
    return [
        (keys.login_failures_for_account(email), settings.login_attempts_per_account),
        (keys.login_failures_for_address(address), settings.login_attempts_per_address),
    ]


async def check_login_allowed(
    redis: RedisClient, settings: Settings, email: str, address: str
) -> None:
    try:
        for key, limit in _limits(settings, email, address):
            failures = int(await redis.get(key) or 0)
            if failures >= limit:
                retry_after = max(int(await redis.ttl(key)), 1)
                raise TooManyRequests("too many failed sign-in attempts", retry_after=retry_after)
    except REDIS_DOWN:
        logger.warning("sign-in throttle unavailable: Redis is unreachable")


async def record_login_failure(
    redis: RedisClient, settings: Settings, email: str, address: str
) -> None:
    try:
        for key, _ in _limits(settings, email, address):
            await redis.incr(key)
            # The window starts at the first failure (NX keeps an expiry once set). Asked on
            # every failure, so that a counter left without expiry, by a timeout or a crash
            # between the two calls, cannot lock an account out for good.
            await redis.expire(key, settings.login_window_seconds, nx=True)
    except REDIS_DOWN:
        logger.warning("sign-in throttle unavailable: Redis is unreachable")


async def clear_account_failures(redis: RedisClient, email: str) -> None:
    try:
        await redis.delete(keys.login_failures_for_account(email))
    except REDIS_DOWN:
        logger.warning("sign-in throttle unavailable: Redis is unreachable")


@asynccontextmanager
async def password_attempt(
    redis: RedisClient,
    settings: Settings,
    email: str,
    address: str,
    refused: type[DomainError],
) -> AsyncIterator[None]:
    """A password check that counts like a sign-in: refused while the account or the
    address is throttled; a `refused` error counts as a failure; success clears the
    account's failures."""
    await check_login_allowed(redis, settings, email, address)
    try:
        yield
    except refused:
        await record_login_failure(redis, settings, email, address)
        raise
    await clear_account_failures(redis, email)
