"""Account changes that reach live access tokens at once: a role change, a disable, a
password change.

PostgreSQL holds the truth (a user's role, status and token generation). After a change
commits, the account's stamp (those three values) is copied into Redis for as long as an
access token issued before the change can live; afterwards every live token is newer than
the change anyway. The role guard checks each bearer token against the stamp, read through
a per-process cache of `account_cache_seconds`: a token of an older generation or of a
disabled account is refused (401), and the stamp's role replaces the token's (so a
demoted organizer gets 403). Every worker thus honours a change within that bound, and the
hold path pays one Redis GET per account per cache lifetime and no PostgreSQL.

Failing safe: when Redis cannot be read, the check reads the account from PostgreSQL
instead (one primary-key read per account per cache lifetime), so a ban holds through a
Redis outage. A stamp that could not be written (Redis down at the moment of the change)
is lost: workers reading Redis then honour the change when the older tokens expire, at
most `access_token_minutes` later; refresh and sign-in read PostgreSQL and are refused at
once either way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from seatlock import keys
from seatlock.auth import users
from seatlock.auth.tokens import Principal
from seatlock.errors import Unauthorized
from seatlock.models import Role, User, UserStatus
from seatlock.redis_client import REDIS_DOWN, Breaker, RedisClient
from seatlock.settings import Settings

logger = logging.getLogger("seatlock")

# The cache starts over past this many accounts, so that a worker's memory stays flat.
MAX_CACHED_ACCOUNTS: Final = 100_000
# Beyond the access token's lifetime, for clocks that disagree by a little.
STAMP_MARGIN_SECONDS: Final = 60
REVOKED: Final = "this access token was revoked; please sign in again"


@dataclass(frozen=True)
class Stamp:
    generation: int
    role: Role
    status: UserStatus

    def encode(self) -> str:
        return f"{self.generation} {self.role.value} {self.status.value}"

    @classmethod
    def decode(cls, raw: str) -> Stamp:
        generation, role, status = raw.split(" ")
        return cls(int(generation), Role(role), UserStatus(status))


# A cached answer for an account PostgreSQL no longer has: nothing of it may pass.
_GONE: Final = Stamp(generation=2**62, role=Role.USER, status=UserStatus.DISABLED)


def stamp_of(user: User) -> Stamp:
    return Stamp(user.token_generation, user.role, user.status)


async def publish(redis: RedisClient | None, settings: Settings, user: User) -> None:
    """After a change of the account committed: tell every worker."""
    if redis is None:
        return
    ttl = settings.access_token_minutes * 60 + STAMP_MARGIN_SECONDS
    try:
        await redis.set(keys.account_stamp(user.id), stamp_of(user).encode(), ex=ttl)
    except REDIS_DOWN:
        logger.warning("account change of %s not published: Redis is unreachable", user.id)


def admit(principal: Principal, stamp: Stamp | None) -> Principal:
    """The caller as the account is now, or Unauthorized when the token no longer counts."""
    if stamp is None:
        return principal
    if stamp.status is UserStatus.DISABLED:
        raise Unauthorized(users.DISABLED)
    if principal.generation < stamp.generation:
        raise Unauthorized(REVOKED)
    if principal.role is stamp.role:
        return principal
    return msgspec.structs.replace(principal, role=stamp.role)


class StampCache:
    """One per process: each account's stamp, remembered for `lifetime` seconds."""

    def __init__(
        self,
        redis: RedisClient,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.lifetime = settings.account_cache_seconds
        self._breaker = Breaker(settings.redis_breaker_seconds, clock)
        self._clock = clock
        self._entries: dict[uuid.UUID, tuple[Stamp | None, float]] = {}

    async def admit(self, principal: Principal) -> Principal:
        return admit(principal, await self.stamp(principal.id))

    async def stamp(self, user_id: uuid.UUID) -> Stamp | None:
        now = self._clock()
        cached = self._entries.get(user_id)
        if cached is not None and now - cached[1] < self.lifetime:
            return cached[0]
        stamp = await self._read(user_id)
        if len(self._entries) >= MAX_CACHED_ACCOUNTS:
            self._entries.clear()
        self._entries[user_id] = (stamp, now)
        return stamp

    async def _read(self, user_id: uuid.UUID) -> Stamp | None:
        async def from_redis() -> str | None:
            raw: str | None = await self.redis.get(keys.account_stamp(user_id))
            return raw

        raw, answered = await self._breaker.attempt(from_redis, None)
        if answered:
            return Stamp.decode(raw) if raw else None
        return await self._read_database(user_id)

    async def _read_database(self, user_id: uuid.UUID) -> Stamp:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(User.token_generation, User.role, User.status).where(User.id == user_id)
                )
            ).first()
        return _GONE if row is None else Stamp(*row)
