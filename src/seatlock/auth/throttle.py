"""Sign-in throttling without lockout (OWASP's authentication cheat sheet): failed password
checks slow down whoever makes them, never the account's owner elsewhere.

Three counters of failures live in Redis, each forgotten `login_window_seconds` after its
last failure: per account and client address, per client address, and per account. Past
its free attempts a counter imposes a delay from its last failure that doubles with each
further failure (`login_delay_seconds`, 2x, 4x... up to the window); a check during the
delay is refused with 429 and `Retry-After`. The per-account ceiling is much higher and
slows only the addresses that have failed on the account themselves, so a right password
from an address that has not failed still signs in while another one attacks the account.

Each check and each failure is one Redis round trip (a pipeline). Counting fails open: with
Redis down, sign-in keeps working without throttling, since only holds may depend on Redis.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from seatlock import keys
from seatlock.errors import DomainError, TooManyRequests
from seatlock.redis_client import REDIS_DOWN, RedisClient
from seatlock.settings import Settings

logger = logging.getLogger("seatlock")

# Fields of each counter's hash: the failures, and when the last one happened (ms).
COUNT, LAST = "count", "last"
# Past this many doublings the delay is the whole window anyway.
_MAX_DOUBLINGS = 32


class _Counter(NamedTuple):
    key: str
    free: int


def _counters(settings: Settings, email: str, address: str) -> tuple[_Counter, ...]:
    """The pair's counter first: the account's own ceiling only applies where it counts."""
    return (
        _Counter(
            keys.login_failures_for_account_address(email, address),
            settings.login_attempts_per_account_address,
        ),
        _Counter(keys.login_failures_for_address(address), settings.login_attempts_per_address),
        _Counter(keys.login_failures_for_account(email), settings.login_attempts_per_account),
    )


def wait_seconds(settings: Settings, free: int, failures: int, last_ms: int, now: float) -> float:
    """How long a counter of `failures` (the last at `last_ms`) still refuses attempts."""
    if failures < free:
        return 0.0
    doublings = min(failures - free, _MAX_DOUBLINGS)
    delay = min(settings.login_delay_seconds * (1 << doublings), settings.login_window_seconds)
    return last_ms / 1000 + delay - now


async def check_login_allowed(
    redis: RedisClient, settings: Settings, email: str, address: str
) -> None:
    counters = _counters(settings, email, address)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for counter in counters:
                pipe.hmget(counter.key, [COUNT, LAST])
            replies = await pipe.execute()
    except REDIS_DOWN:
        logger.warning("sign-in throttle unavailable: Redis is unreachable")
        return
    now = time.time()
    seen = [(int(count or 0), int(last or 0)) for count, last in replies]
    waits = [
        wait_seconds(settings, counter.free, failures, last, now)
        for counter, (failures, last) in zip(counters, seen, strict=True)
    ]
    if seen[0][0] == 0:
        waits.pop()  # an address that has not failed on the account is not slowed by it
    wait = max(waits)
    if wait > 0:
        raise TooManyRequests(
            "too many failed sign-in attempts; try again later", retry_after=math.ceil(wait)
        )


async def record_login_failure(
    redis: RedisClient, settings: Settings, email: str, address: str
) -> None:
    now_ms = int(time.time() * 1000)
    try:
        # Not a transaction: the three keys may live on three Cluster nodes. The expiry is
        # set with every failure, so a counter that lost it to a crash gets it back.
        async with redis.pipeline(transaction=False) as pipe:
            for counter in _counters(settings, email, address):
                pipe.hincrby(counter.key, COUNT, 1)
                pipe.hset(counter.key, LAST, str(now_ms))
                pipe.expire(counter.key, settings.login_window_seconds)
            await pipe.execute()
    except REDIS_DOWN:
        logger.warning("sign-in throttle unavailable: Redis is unreachable")


async def clear_pair_failures(redis: RedisClient, email: str, address: str) -> None:
    """After a right password: the address may sign in to the account freely again. The
    address's and the account's counters stay, or an attacker signing in to an account of
    their own between guesses would clear them."""
    try:
        await redis.delete(keys.login_failures_for_account_address(email, address))
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
    """A password check that counts like a sign-in: refused while one of the counters
    delays it; a `refused` error counts as a failure; success clears the pair's
    failures."""
    await check_login_allowed(redis, settings, email, address)
    try:
        yield
    except refused:
        await record_login_failure(redis, settings, email, address)
        raise
    await clear_pair_failures(redis, email, address)
