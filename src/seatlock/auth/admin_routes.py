"""/api/admin: user management for admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, patch
from litestar.params import FromPath, FromQuery, JSONBody

from seatlock import deps, paging
from seatlock.auth import user_admin, users
from seatlock.auth.access import ADMINS
from seatlock.auth.responses import UserOut, user_out
from seatlock.bodies import Body, search_text
from seatlock.models import Role, User, UserStatus


class UserChange(Body):
    role: Role | None = None
    status: UserStatus | None = None


class UserDetailOut(msgspec.Struct):
    user: UserOut
    bookings: int
    # Null when Redis cannot be reached.
    live_holds: int | None


@get("/users", roles=ADMINS)
async def list_users(
    request: Request[Any, Any, Any],
    db_session: deps.DbSession,
    role: FromQuery[Role | None] = None,
    status: FromQuery[UserStatus | None] = None,
    email: Annotated[str | None, search_text(254)] = None,
    limit: paging.Limit = paging.DEFAULT_LIMIT,
    cursor: paging.Cursor = None,
) -> paging.Page[UserOut]:
    """Accounts, oldest first, filtered by role, status or a part of the email."""
    narrowed = users.UserFilter(role, status, email)
    after = paging.decode_cursor(cursor, paging.TimeAndId)
    found, total = await users.list_users(db_session, narrowed, limit, after)
    return paging.keyset(request, found, limit, total, _created, user_out)


def _created(user: User) -> tuple[datetime, uuid.UUID]:
    return user.created_at, user.id


@get("/users/{user_id:uuid}", roles=ADMINS)
async def show_user(
    user_id: FromPath[uuid.UUID], db_session: deps.DbSession, redis: deps.Redis
) -> UserDetailOut:
    """One account with its number of bookings and of live holds."""
    activity = await user_admin.describe_user(db_session, redis, user_id)
    return UserDetailOut(user_out(activity.user), activity.bookings, activity.live_holds)


@patch("/users/{user_id:uuid}", roles=ADMINS, problems=(409,))
async def change_user(
    user_id: FromPath[uuid.UUID],
    data: JSONBody[UserChange],
    principal: deps.Caller,
    db_session: deps.DbSession,
    holds: deps.Holds,
    settings: deps.Settings,
) -> UserOut:
    """Changes an account's role or status; a disabled account's tokens stop working at
    once and its holds are released."""
    change = (data.role, data.status)
    user = await user_admin.change_user(db_session, holds, settings, principal.id, user_id, change)
    return user_out(user)


admin_router = Router(
    "/api/admin", route_handlers=[list_users, show_user, change_user], tags=["admin"]
)
