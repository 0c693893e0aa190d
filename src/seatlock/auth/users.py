"""Accounts: registration, password sign-in and role changes."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.auth.passwords import hash_password, verify_password
from seatlock.auth.tokens import Principal
from seatlock.errors import Conflict, NotFound, Unauthorized
from seatlock.models import Role, User


def principal_of(user: User) -> Principal:
    return Principal(id=user.id, role=user.role, email=user.email)


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
        raise Conflict("an account with this email already exists") from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    # Verified even when there is no such user, so both failures look and take the same.
    # Hashing takes tens of milliseconds of CPU: off the event loop, so that a burst of
    # sign-ins does not stall the holds served by the same worker.
    verified = await asyncio.to_thread(
        verify_password, user.password_hash if user else None, password
    )
    if not verified or user is None:
        raise Unauthorized("the email or password is wrong")
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def list_users(session: AsyncSession, limit: int, offset: int) -> tuple[list[User], int]:
    total = await session.scalar(select(func.count()).select_from(User)) or 0
    rows = await session.scalars(
        select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return list(rows), total


async def change_role(session: AsyncSession, user_id: uuid.UUID, role: Role) -> User:
    user = await get_user(session, user_id)
    user.role = role
    await session.commit()
    return user
