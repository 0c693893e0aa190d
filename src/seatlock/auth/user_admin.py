"""An admin's management of other accounts: what an account is up to, role and status."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth import account_stamps, refresh_tokens, users
from seatlock.errors import Forbidden, InvalidInput, NotFound
from seatlock.holds import owners
from seatlock.holds.store import HoldStore
from seatlock.models import Booking, Role, User, UserStatus
from seatlock.redis_client import RedisClient
from seatlock.settings import Settings


class Activity(NamedTuple):
    user: User
    bookings: int
    # None when Redis cannot be reached.
    live_holds: int | None


async def describe_user(session: AsyncSession, redis: RedisClient, user_id: uuid.UUID) -> Activity:
    user = await users.get_user(session, user_id)
    bookings = await session.scalar(
        select(func.count()).select_from(Booking).where(Booking.user_id == user_id)
    )
    live_holds = await owners.count_live_holds(session, redis, user_id)
    return Activity(user, bookings or 0, live_holds)


async def change_user(
    session: AsyncSession,
    holds: HoldStore,
    settings: Settings,
    actor_id: uuid.UUID,
    user_id: uuid.UUID,
    change: tuple[Role | None, UserStatus | None],
) -> User:
    """Sets the account's role and/or status (`change`). Disabling it also ends its
    sessions, voids its access tokens and releases its holds."""
    role, status = change
    if role is None and status is None:
        raise InvalidInput("give a role, a status, or both")
    if user_id == actor_id:
        raise Forbidden("admins cannot change their own role or status")
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("no such user")
    disabling = status is UserStatus.DISABLED and user.status is not UserStatus.DISABLED
    user.role = role or user.role
    user.status = status or user.status
    if disabling:
        # Re-enabling later does not bring the tokens of before back.
        user.token_generation += 1
        await refresh_tokens.revoke_all(session, user.id)
    await session.commit()
    await account_stamps.publish(holds.redis, settings, user)
    if disabling:
        await owners.release_live_holds(session, holds, user.id)
    return user


async def promote_to_admin(
    session: AsyncSession, redis: RedisClient | None, settings: Settings, email: str
) -> User:
    """Makes an existing account ADMIN (the admin's terminal); its tokens count as ADMIN
    as soon as the workers hear of it."""
    user = await session.scalar(
        select(User).where(User.email == users.normalise_email(email)).with_for_update()
    )
    if user is None:
        raise NotFound(f"no account has the email {email}")
    user.role = Role.ADMIN
    await session.commit()
    await account_stamps.publish(redis, settings, user)
    return user
