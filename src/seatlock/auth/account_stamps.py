"""Account changes that reach live access tokens at once: a role change, a disable, a
password change.

PostgreSQL holds the truth (a user's role, status and token generation). After a change
commits, the account's stamp (those three values) is added to a feed of account changes in
Redis (a stream), which keeps each entry for as long as an access token issued before the
change can live; afterwards every live token is newer than the change anyway. Every worker
follows the feed in the background (a read every `FEED_POLL_SECONDS`) and keeps the stamps
it names: the role guard checks each bearer token against them with no I/O at all, so a
signed-in request (a hold among them) pays nothing for the check. A token of an older
generation or of a disabled account is refused (401), and the stamp's role replaces the
token's (so a demoted organizer gets 403). A worker that starts later reads the whole feed
first.

Failing safe: the feed answers the check once it was read, until its reads have failed for
`account_cache_seconds` (a Redis that stops answering fails them at the Redis timeout, and
while the worker's breaker skips Redis the feed is not read: that counts as failing too).
Until its first read, and whenever reads keep failing, the
check reads the account from PostgreSQL instead (one primary-key read per account per
`account_cache_seconds`), so a ban holds through a Redis outage. Normally a change reaches
every worker within a poll. The feed is judged by whether Redis answers, not by how long
ago the last read was: under a burst of buyers a worker's event loop runs seconds late,
and sending all its checks to PostgreSQL then (as a clock-based rule did in the flash
benchmark) only overloaded it more. The price: a worker that far behind honours a change
that much later too, like everything else it does.

A change that could not be added to the feed (Redis down at the moment of the change) is
lost: workers following the feed then honour it when the older tokens expire, at most
`access_token_minutes` later; refresh and sign-in read PostgreSQL and are refused at once
either way.
"""

from __future__ import annotations

import asyncio
import contextlib
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

# The PostgreSQL fallback's cache starts over past this many accounts, so that a worker's
# memory stays flat.
MAX_CACHED_ACCOUNTS: Final = 100_000
# Beyond the access token's lifetime, for clocks that disagree by a little.
STAMP_MARGIN_SECONDS: Final = 60
REVOKED: Final = "this access token was revoked; please sign in again"
FEED_POLL_SECONDS: Final = 0.1
FEED_ENTRIES_PER_READ: Final = 1000
# Stamps older than an access token's lifetime are forgotten this often.
FORGET_EVERY_SECONDS: Final = 60.0


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


def stamp_lifetime_ms(settings: Settings) -> int:
    """How long a change matters: as long as a token issued before it may live."""
    return (settings.access_token_minutes * 60 + STAMP_MARGIN_SECONDS) * 1000


async def publish(redis: RedisClient | None, settings: Settings, user: User) -> None:
    """After a change of the account committed: tell every worker. Entries older than a
    token's lifetime are trimmed from the feed on the way."""
    if redis is None:
        return
    oldest_kept = int(time.time() * 1000) - stamp_lifetime_ms(settings)
    try:
        await redis.xadd(
            keys.ACCOUNT_CHANGES,
            {"account": str(user.id), "stamp": stamp_of(user).encode()},
            # Exact trimming: changes are rare, and the feed then holds just what matters.
            minid=oldest_kept,
            approximate=False,
        )
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


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class StampCache:
    """One per process: the stamps of the accounts changed while older tokens live, read
    from the feed, and the PostgreSQL fallback's answers while the feed is not current."""

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
        self._stamp_lifetime_ms = stamp_lifetime_ms(settings)
        self._clock = clock
        # From the feed: account -> (stamp, the change's time in ms since the epoch).
        self._changed: dict[uuid.UUID, tuple[Stamp, int]] = {}
        self._last_entry = "0-0"
        # Whether a read ever answered, and since when reads have been failing (None while
        # they answer).
        self._answered = False
        self._failing_since: float | None = None
        self._forgotten_at = clock()
        self._read_back: dict[uuid.UUID, tuple[Stamp, float]] = {}

    @property
    def feed_is_current(self) -> bool:
        if not self._answered or self.lifetime <= 0:
            return False
        failing = self._failing_since
        return failing is None or self._clock() - failing < self.lifetime

    async def admit(self, principal: Principal) -> Principal:
        return admit(principal, await self.stamp(principal.id))

    async def stamp(self, user_id: uuid.UUID) -> Stamp | None:
        if self.feed_is_current:
            change = self._changed.get(user_id)
            return None if change is None else change[0]
        return await self._from_database(user_id)

    async def follow_until(self, stop: asyncio.Event, breaker: Breaker) -> None:
        """Until `stop`: read the feed's new entries every `FEED_POLL_SECONDS`. While the
        breaker skips Redis the feed is not read either, and that counts as a failed read."""
        while not stop.is_set():
            answering, failure = self._failing_since is None, "Redis is failing"
            try:
                _, read = await breaker.attempt(self.read_feed, None)
            # Any failure, not only an outage: the loop must outlive it, and the check then
            # gives way to PostgreSQL after the bound, as for an outage.
            except Exception as exc:
                read, failure = False, repr(exc)
            if not read:
                if answering:
                    logger.warning(
                        "account changes unread (%s): tokens are checked against PostgreSQL "
                        "once reads have failed for %s s",
                        failure,
                        self.lifetime,
                    )
                self._reads_failed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FEED_POLL_SECONDS)

    async def read_feed(self) -> None:
        """Every entry after the last one read."""
        try:
            while True:
                answer = await self.redis.xread(
                    {keys.ACCOUNT_CHANGES: self._last_entry}, count=FEED_ENTRIES_PER_READ
                )
                entries = answer[0][1] if answer else []
                for entry_id, fields in entries:
                    self._apply(entry_id, fields)
                if len(entries) < FEED_ENTRIES_PER_READ:
                    break
        except Exception:
            self._reads_failed()
            raise
        self._answered, self._failing_since = True, None
        self._forget_old_changes()

    def _reads_failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock()

    def _apply(self, entry_id: str, fields: dict[str, str]) -> None:
        self._last_entry = entry_id
        try:
            account, stamp = uuid.UUID(fields["account"]), Stamp.decode(fields["stamp"])
        except (KeyError, ValueError):
            # Not written by `publish`: skipped, so that it cannot stop the feed for good.
            logger.warning("account change %s skipped: not a stamp (%r)", entry_id, fields)
            return
        self._changed[account] = (stamp, _entry_ms(entry_id))

    def _forget_old_changes(self) -> None:
        if self._clock() - self._forgotten_at < FORGET_EVERY_SECONDS:
            return
        self._forgotten_at = self._clock()
        oldest_kept = int(time.time() * 1000) - self._stamp_lifetime_ms
        for account in [a for a, (_, at) in self._changed.items() if at < oldest_kept]:
            del self._changed[account]

    async def _from_database(self, user_id: uuid.UUID) -> Stamp:
        now = self._clock()
        cached = self._read_back.get(user_id)
        if cached is not None and now - cached[1] < self.lifetime:
            return cached[0]
        stamp = await self._read_database(user_id)
        if len(self._read_back) >= MAX_CACHED_ACCOUNTS:
            self._read_back.clear()
        self._read_back[user_id] = (stamp, now)
        return stamp

    async def _read_database(self, user_id: uuid.UUID) -> Stamp:
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(User.token_generation, User.role, User.status).where(User.id == user_id)
                )
            ).first()
        return _GONE if row is None else Stamp(*row)
