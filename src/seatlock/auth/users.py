"""Accounts: registration, password sign-in, and finding accounts."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.passwords import hash_password, verify_password
from seatlock.auth.tokens import Principal
from seatlock.errors import Conflict, Forbidden, NotFound, Unauthorized
from seatlock.models import Role, User, UserStatus

DISABLED = "this account is disabled"
EMAIL_TAKEN = "an account with this email already exists"


@dataclass(frozen=True)
class UserFilter:
    """What an admin's list of accounts is narrowed to; None matches everything."""

    role: Role | None = None
    status: UserStatus | None = None
    # Part of the email, matched without regard to case.
    email: str | None = None


def principal_of(user: User, session_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        id=user.id,
        role=user.role,
        email=user.email,
        generation=user.token_generation,
        session_id=session_id,
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def register_user(
    session: AsyncSession, email: str, password: str, full_name: str, role: Role = Role.USER
) -> User:
    user = User(
        email=normalise_email(email),
        password_hash=await asyncio.to_thread(hash_password, password),
        full_name=full_name.strip(),
        role=role,
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(EMAIL_TAKEN) from exc
    return user


async def check_password(user: User | None, password: str) -> bool:
    # Hashing takes tens of milliseconds of CPU: off the event loop, so that a burst of
    # sign-ins does not stall the holds served by the same worker.
    return await asyncio.to_thread(verify_password, user.password_hash if user else None, password)


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    # Verified even when there is no such user, so both failures look and take the same.
    if not await check_password(user, password) or user is None:
        raise Unauthorized("the email or password is wrong")
    # Told only to whoever knows the password.
    if user.status is UserStatus.DISABLED:
        raise Forbidden(DISABLED)
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_users(
    session: AsyncSession,
    narrowed: UserFilter,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> tuple[list[User], int]:
    """Accounts oldest first after the (created_at, id) `after`: `limit` of them and one
    more when more follow; with how many match."""
    wanted = select(User)
    if narrowed.role is not None:
        wanted = wanted.where(User.role == narrowed.role)
    if narrowed.status is not None:
        wanted = wanted.where(User.status == narrowed.status)
    if narrowed.email:
        wanted = wanted.where(User.email.ilike(_like(narrowed.email.strip()), escape="\\"))
    total = await session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    if after is not None:
        wanted = wanted.where(tuple_(User.created_at, User.id) > after)
    rows = await session.scalars(wanted.order_by(User.created_at, User.id).limit(limit + 1))
    return list(rows), total
