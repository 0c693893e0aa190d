"""Refresh token families: issue on sign-in, rotate on every refresh, revoke on reuse or logout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.tokens import hash_refresh_token, new_refresh_token
from seatlock.errors import Unauthorized
from seatlock.models import RefreshToken, User


async def _issue(
    session: AsyncSession, user_id: uuid.UUID, family_id: uuid.UUID, lifetime: timedelta
) -> str:
    token = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(token),
            expires_at=datetime.now(UTC) + lifetime,
        )
    )
    return token


async def start_family(session: AsyncSession, user: User, lifetime: timedelta) -> str:
    token = await _issue(session, user.id, uuid.uuid4(), lifetime)
    await session.commit()
    return token


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def rotate(session: AsyncSession, token: str, lifetime: timedelta) -> tuple[User, str]:
    """Trade a live refresh token for a new one of the same family.

    The conditional UPDATE is the fence: of two concurrent refreshes with one token only
    one marks it used; the other sees a used token, which counts as reuse.
    """
    now = datetime.now(UTC)
    token_hash = hash_refresh_token(token)
    claimed = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.user_id, RefreshToken.family_id)
    )
    row = claimed.first()
    if row is None:
        await _reject(session, token_hash)
    user = await session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    new_token = await _issue(session, user.id, row.family_id, lifetime)
    await session.commit()
    return user, new_token


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
