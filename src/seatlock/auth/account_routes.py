"""/api/auth, the caller's own account: profile, password and sessions."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from seatlock import deps, paging
from seatlock.auth import accounts, refresh_tokens, throttle
from seatlock.auth.access import SIGNED_IN
from seatlock.auth.accounts import WrongPassword
from seatlock.auth.responses import (
    TokenOut,
    UserOut,
    client_address,
    client_of,
    refresh_cookie,
    signed_in,
    user_out,
)
from seatlock.bodies import Body, Email, Name, Password
from seatlock.errors import InvalidInput

# Checked for its length only: older passwords may predate today's rules.
CurrentPassword = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ProfileChange(Body):
    full_name: Name | None = None
    email: Email | None = None
    # Needed to change the email.
    current_password: CurrentPassword | None = None


class PasswordChange(Body):
    current_password: CurrentPassword
    new_password: Password


class SessionOut(msgspec.Struct):
    id: uuid.UUID
    created_at: datetime
    # The last sign-in or refresh of the session.
    last_used_at: datetime
    client_address: str | None
    user_agent: str | None
    current: bool


def _password_attempt(
    request: Request[Any, Any, Any], redis: deps.Redis, settings: deps.Settings, email: str
) -> AbstractAsyncContextManager[None]:
    return throttle.password_attempt(redis, settings, email, client_address(request), WrongPassword)


@patch("/me", roles=SIGNED_IN, operation_id="changeMyAccount", problems=(409, 429))
async def change_profile(
    data: JSONBody[ProfileChange],
    request: Request[Any, Any, Any],
    principal: deps.Caller,
    db_session: deps.DbSession,
    redis: deps.Redis,
    settings: deps.Settings,
) -> UserOut:
    """Changes the caller's name and/or email; a new email needs the current password."""
    if data.full_name is None and data.email is None:
        raise InvalidInput("give a full_name, an email, or both")
    async with _password_attempt(request, redis, settings, principal.email):
        user = await accounts.update_profile(
            db_session, principal.id, data.full_name, data.email, data.current_password
        )
    return user_out(user)


@post("/password", roles=SIGNED_IN, status_code=200, problems=(429,))
async def change_password(
    data: JSONBody[PasswordChange],
    request: Request[Any, Any, Any],
    principal: deps.Caller,
    db_session: deps.DbSession,
    redis: deps.Redis,
    settings: deps.Settings,
) -> Response[TokenOut]:
    """Changes the caller's password (the current one is required), ends every other
    session and answers fresh tokens."""
    passwords = (data.current_password, data.new_password)
    async with _password_attempt(request, redis, settings, principal.email):
        user, issued = await accounts.change_password(
            db_session, redis, settings, principal, passwords, client_of(request)
        )
    return signed_in(settings, user, issued, 200)


@get("/sessions", roles=SIGNED_IN)
async def list_sessions(
    request: Request[Any, Any, Any],
    principal: deps.Caller,
    db_session: deps.DbSession,
    limit: paging.Limit = paging.DEFAULT_LIMIT,
    cursor: paging.Cursor = None,
) -> paging.Page[SessionOut]:
    """The caller's live sessions (one per sign-in), the current one marked."""
    start = paging.rank_of(cursor)
    families = await refresh_tokens.live_families(db_session, principal.id)
    items = [
        SessionOut(*family, current=family.id == principal.session_id)
        for family in families[start : start + limit]
    ]
    return paging.by_rank(request, items, limit, start, len(families))


@delete("/sessions", roles=SIGNED_IN, status_code=200)
async def end_other_sessions(
    request: Request[Any, Any, Any],
    principal: deps.Caller,
    db_session: deps.DbSession,
    redis: deps.Redis,
    settings: deps.Settings,
) -> Response[TokenOut]:
    """Ends every session of the caller but the current one, and answers fresh tokens."""
    user, issued = await accounts.end_other_sessions(
        db_session, redis, settings, principal, client_of(request)
    )
    return signed_in(settings, user, issued, 200)


@delete("/sessions/{session_id:uuid}", roles=SIGNED_IN, status_code=204)
async def end_session(
    session_id: FromPath[uuid.UUID], principal: deps.Caller, db_session: deps.DbSession
) -> Response[None]:
    """Ends one of the caller's sessions (the current one clears the refresh cookie)."""
    await refresh_tokens.end_family(db_session, principal.id, session_id)
    own = session_id == principal.session_id
    return Response(None, status_code=204, cookies=[refresh_cookie("", 0)] if own else [])


handlers = [change_profile, change_password, list_sessions, end_other_sessions, end_session]
