"""/api/admin: user management for admins."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Router, get, patch
from litestar.params import FromPath, JSONBody, QueryParameter

from seatlock import deps
from seatlock.auth import users
from seatlock.auth.access import ADMINS
from seatlock.auth.routes import UserOut, user_out
from seatlock.bodies import Body, OffsetPage
from seatlock.errors import Forbidden
from seatlock.models import Role


class RoleChange(Body):
    role: Role


@get("/users", roles=ADMINS)
async def list_users(
    db_session: deps.DbSession,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> OffsetPage[UserOut]:
    rows, total = await users.list_users(db_session, limit, offset)
    return OffsetPage([user_out(u) for u in rows], total, limit, offset)


@patch("/users/{user_id:uuid}", roles=ADMINS)
async def change_role(
    user_id: FromPath[uuid.UUID],
    data: JSONBody[RoleChange],
    principal: deps.Caller,
    db_session: deps.DbSession,
) -> UserOut:
    if user_id == principal.id:
        raise Forbidden("admins cannot change their own role")
    return user_out(await users.change_role(db_session, user_id, data.role))


admin_router = Router("/api/admin", route_handlers=[list_users, change_role], tags=["admin"])
