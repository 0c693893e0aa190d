"""Refresh token families, one per sign-in (the account's sessions): issue on sign-in,
rotate on every refresh, revoke on reuse, logout or sign-out from another device."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, NoReturn

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from seatlock.auth import users
from seatlock.auth.tokens import hash_refresh_token, new_refresh_token
from seatlock.errors import NotFound, Unauthorized
from seatlock.models import RefreshToken, User, UserStatus

# The sessions list shows at most this many, most recently used first.
MAX_LISTED_SESSIONS: Final = 100
MAX_USER_AGENT: Final = 300
MAX_ADDRESS: Final = 64


@dataclass(frozen=True)
class Client:
    """Where a refresh token goes to, as the request says."""

    address: str
    user_agent: str


class Issued(NamedTuple):
    family_id: uuid.UUID
    token: str


class Family(NamedTuple):
    """One live session: its first and newest token, and the client the newest went to."""

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    client_address: str | None
    user_agent: str | None


def _live(now: datetime) -> ColumnElement[bool]:
    return (
        RefreshToken.used_at.is_(None)
        & RefreshToken.revoked_at.is_(None)
        & (RefreshToken.expires_at > now)
    )


def _issue(
    session: AsyncSession,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    lifetime: timedelta,
    client: Client,
) -> Issued:
    token = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(token),
            expires_at=datetime.now(UTC) + lifetime,
            client_address=client.address[:MAX_ADDRESS],
            user_agent=client.user_agent[:MAX_USER_AGENT],
        )
    )
    return Issued(family_id, token)


async def start_family(
    session: AsyncSession, user: User, lifetime: timedelta, client: Client
) -> Issued:
    issued = _issue(session, user.id, uuid.uuid4(), lifetime, client)
    await session.commit()
    return issued


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def rotate(
    session: AsyncSession, token: str, lifetime: timedelta, client: Client
) -> tuple[User, Issued]:
    """Trade a live refresh token for a new one of the same family.

    The conditional UPDATE is the fence: of two concurrent refreshes with one token only
    one marks it used; the other sees a used token, which counts as reuse.
    """
    token_hash = hash_refresh_token(token)
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, _live(datetime.now(UTC)))
        .values(used_at=datetime.now(UTC))
        .returning(RefreshToken.user_id, RefreshToken.family_id)
    )
    row = claimed.first()
    if row is None:
        await _reject(session, token_hash)
    user = await session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    if user.status is UserStatus.DISABLED:
        raise Unauthorized(users.DISABLED)
    issued = _issue(session, user.id, row.family_id, lifetime, client)
    await session.commit()
    return user, issued


async def _reject(session: AsyncSession, token_hash: str) -> NoReturn:
    known = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    if known is not None and known.used_at is not None:
        # A used token came back: someone holds a copy. End every session of the family.
        await _revoke_family(session, known.family_id)
        await session.commit()
        raise Unauthorized("refresh token reuse detected; please sign in again")
    raise Unauthorized("the refresh token is not valid")


async def revoke(session: AsyncSession, token: str) -> None:
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_refresh_token(token))
    )
    if family_id is not None:
        await _revoke_family(session, family_id)
        await session.commit()


async def revoke_all(
    session: AsyncSession, user_id: uuid.UUID, keeping: uuid.UUID | None = None
) -> None:
    """Ends every session of the account but `keeping`, in the caller's transaction."""
    ended = (
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if keeping is not None:
        ended = ended.where(RefreshToken.family_id != keeping)
    await session.execute(ended)


async def renew_family(
    session: AsyncSession,
    user_id: uuid.UUID,
    family_id: uuid.UUID | None,
    lifetime: timedelta,
    client: Client,
) -> Issued:
    """A new token for the caller's session, in the caller's transaction: the session's
    live token counts as used from now on (so its copies are reuse). A session that is no
    longer live, or unknown, is replaced by a new one."""
    if family_id is not None:
        renewed = await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.user_id == user_id,
                RefreshToken.family_id == family_id,
                _live(datetime.now(UTC)),
            )
            .values(used_at=datetime.now(UTC))
            .returning(RefreshToken.id)
        )
        if renewed.first() is not None:
            return _issue(session, user_id, family_id, lifetime, client)
    return _issue(session, user_id, uuid.uuid4(), lifetime, client)


async def live_families(session: AsyncSession, user_id: uuid.UUID) -> list[Family]:
    newest = (
        select(RefreshToken)
        .where(RefreshToken.user_id == user_id, _live(datetime.now(UTC)))
        .order_by(RefreshToken.created_at.desc())
        .limit(MAX_LISTED_SESSIONS)
    )
    tokens = list(await session.scalars(newest))
    firsts = await session.execute(
        select(RefreshToken.family_id, func.min(RefreshToken.created_at))
        .where(RefreshToken.family_id.in_([t.family_id for t in tokens]))
        .group_by(RefreshToken.family_id)
    )
    started = {family_id: first for family_id, first in firsts.tuples()}
    return [
        Family(t.family_id, started[t.family_id], t.created_at, t.client_address, t.user_agent)
        for t in tokens
    ]


async def end_family(session: AsyncSession, user_id: uuid.UUID, family_id: uuid.UUID) -> None:
    """Signs one of the account's sessions out; another account's looks like none."""
    ended = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.family_id == family_id,
            _live(datetime.now(UTC)),
        )
        .values(revoked_at=datetime.now(UTC))
        .returning(RefreshToken.id)
    )
    if ended.first() is None:
        raise NotFound("no such session")
    await session.commit()
