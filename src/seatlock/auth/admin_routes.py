"""/api/admin: user management for admins."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Router, get, patch
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from seatlock import deps
from seatlock.auth import user_admin, users
from seatlock.auth.access import ADMINS
from seatlock.auth.responses import UserOut, user_out
from seatlock.bodies import Body, Offset, OffsetPage
from seatlock.models import Role, UserStatus


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
    db_session: deps.DbSession,
    role: FromQuery[Role | None] = None,
    status: FromQuery[UserStatus | None] = None,
    email: Annotated[str | None, QueryParameter(min_length=1, max_length=254)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    offset: Offset = 0,
) -> OffsetPage[UserOut]:
    """Accounts, newest first, filtered by role, status or email; paged by offset."""
    narrowed = users.UserFilter(role, status, email)
    rows, total = await users.list_users(db_session, narrowed, limit, offset)
    return OffsetPage([user_out(u) for u in rows], total, limit, offset)


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
