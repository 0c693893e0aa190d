"""An account holder's own changes (profile, password, signing other devices out) and the
admin's password reset. Each commits, then publishes the account's new stamp so that
every worker honours the change within seconds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth import account_stamps, refresh_tokens, users
from seatlock.auth.passwords import hash_password
from seatlock.auth.refresh_tokens import Client, Issued
from seatlock.auth.tokens import Principal
from seatlock.errors import Conflict, Forbidden, InvalidInput, NotFound
from seatlock.models import User
from seatlock.redis_client import RedisClient
from seatlock.settings import Settings

WRONG_PASSWORD = "the current password is wrong"


class WrongPassword(Forbidden):
    """The current password given to confirm a change was wrong (counted like a failed
    sign-in)."""


async def _locked_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    # Locked for the transaction, so that concurrent changes of one account each raise
    # the token generation instead of both writing the same value.
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("no such user")
    return user


async def _confirm(user: User, password: str | None) -> None:
    if password is None:
        raise InvalidInput("this change needs the current password", field="current_password")
    if not await users.check_password(user, password):
        raise WrongPassword(WRONG_PASSWORD)


async def update_profile(
    session: AsyncSession,
    user_id: uuid.UUID,
    full_name: str | None,
    email: str | None,
    current_password: str | None,
) -> User:
    user = await _locked_user(session, user_id)
    if full_name is not None:
        user.full_name = full_name.strip()
    if email is not None and users.normalise_email(email) != user.email:
        await _confirm(user, current_password)
        user.email = users.normalise_email(email)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(users.EMAIL_TAKEN) from exc
    return user


async def _restart_sessions(
    session: AsyncSession,
    redis: RedisClient,
    settings: Settings,
    user: User,
    keep: uuid.UUID | None,
    client: Client,
) -> Issued:
    """Voids every access token of the account and ends every session but `keep`, which
    gets a new refresh token (the caller gets a new access token with it)."""
    user.token_generation += 1
    await refresh_tokens.revoke_all(session, user.id, keeping=keep)
    lifetime = timedelta(days=settings.refresh_token_days)
    issued = await refresh_tokens.renew_family(session, user.id, keep, lifetime, client)
    await session.commit()
    await account_stamps.publish(redis, settings, user)
    return issued


async def change_password(
    session: AsyncSession,
    redis: RedisClient,
    settings: Settings,
    principal: Principal,
    passwords: tuple[str, str],
    client: Client,
) -> tuple[User, Issued]:
    """`passwords` is (current, new)."""
    current, new = passwords
    user = await _locked_user(session, principal.id)
    await _confirm(user, current)
    user.password_hash = await asyncio.to_thread(hash_password, new)
    issued = await _restart_sessions(session, redis, settings, user, principal.session_id, client)
    return user, issued


async def end_other_sessions(
    session: AsyncSession,
    redis: RedisClient,
    settings: Settings,
    principal: Principal,
    client: Client,
) -> tuple[User, Issued]:
    user = await _locked_user(session, principal.id)
    issued = await _restart_sessions(session, redis, settings, user, principal.session_id, client)
    return user, issued


async def reset_password(
    session: AsyncSession, redis: RedisClient | None, settings: Settings, email: str, new: str
) -> User:
    """Sets a new password and signs the account out everywhere (the admin's terminal)."""
    user_id = await session.scalar(
        select(User.id).where(User.email == users.normalise_email(email))
    )
    if user_id is None:
        raise NotFound(f"no account has the email {email}")
    user = await _locked_user(session, user_id)
    user.password_hash = await asyncio.to_thread(hash_password, new)
    user.token_generation += 1
    await refresh_tokens.revoke_all(session, user.id)
    await session.commit()
    await account_stamps.publish(redis, settings, user)
    return user
