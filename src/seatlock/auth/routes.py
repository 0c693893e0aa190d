"""/api/auth: register, login, refresh, logout and the caller's own account."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.params import JSONBody

from seatlock import deps
from seatlock.auth import refresh_tokens, throttle, users
from seatlock.auth.access import PUBLIC, SIGNED_IN
from seatlock.auth.tokens import issue_access_token
from seatlock.bodies import Body, Email, Name, Password
from seatlock.errors import Forbidden, Unauthorized
from seatlock.models import Role, User

AUTH_PATH = "/api/auth"
REFRESH_COOKIE = "seatlock_refresh"
# Browsers send a custom header cross-site only after a CORS preflight, which is never
# granted: requiring it keeps another site from riding the refresh cookie.
CSRF_HEADER = "x-requested-with"


class RegisterBody(Body):
    email: Email
    password: Password
    full_name: Name


class LoginBody(Body):
    email: Email
    # Sign-in checks only the length bound: older passwords may predate today's rules.
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class UserOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    created_at: datetime


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    user: UserOut


def user_out(user: User) -> UserOut:
    return msgspec.convert(user, UserOut, from_attributes=True)


def _refresh_cookie(value: str, max_age: int) -> Cookie:
    return Cookie(
        key=REFRESH_COOKIE,
        value=value,
        path=AUTH_PATH,
        httponly=True,
        secure=True,
        samesite="strict",
        max_age=max_age,
    )


def _signed_in(
    settings: deps.Settings, user: User, refresh_token: str, status: int
) -> Response[TokenOut]:
    body = TokenOut(
        access_token=issue_access_token(settings, users.principal_of(user)),
        token_type="Bearer",
        expires_in=settings.access_token_minutes * 60,
        user=user_out(user),
    )
    max_age = settings.refresh_token_days * 86400
    return Response(
        body,
        status_code=status,
        cookies=[_refresh_cookie(refresh_token, max_age)],
        headers={"Cache-Control": "no-store"},
    )


def _require_same_site(request: Request[Any, Any, Any], settings: deps.Settings) -> None:
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("cross-site requests may not use the refresh cookie")
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin.rstrip("/") not in settings.origins | {own}:
            raise Forbidden(f"requests from origin {origin} may not use the refresh cookie")
    if CSRF_HEADER not in request.headers:
        raise Forbidden(f"the {CSRF_HEADER} header is required on this route")


def _refresh_lifetime(settings: deps.Settings) -> timedelta:
    return timedelta(days=settings.refresh_token_days)


def _client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


@post("/register", roles=PUBLIC, status_code=201)
async def register(
    data: JSONBody[RegisterBody], db_session: deps.DbSession, settings: deps.Settings
) -> Response[TokenOut]:
    user = await users.register_user(db_session, data.email, data.password, data.full_name)
    token = await refresh_tokens.start_family(db_session, user, _refresh_lifetime(settings))
    return _signed_in(settings, user, token, 201)


@post("/login", roles=PUBLIC, status_code=200)
async def login(
    data: JSONBody[LoginBody],
    request: Request[Any, Any, Any],
    db_session: deps.DbSession,
    redis: deps.Redis,
    settings: deps.Settings,
) -> Response[TokenOut]:
    email, address = users.normalise_email(data.email), _client_address(request)
    await throttle.check_login_allowed(redis, settings, email, address)
    try:
        user = await users.authenticate(db_session, email, data.password)
    except Unauthorized:
        await throttle.record_login_failure(redis, settings, email, address)
        raise
    await throttle.clear_account_failures(redis, email)
    token = await refresh_tokens.start_family(db_session, user, _refresh_lifetime(settings))
    return _signed_in(settings, user, token, 200)


@post("/refresh", roles=PUBLIC, status_code=200)
async def refresh(
    request: Request[Any, Any, Any], db_session: deps.DbSession, settings: deps.Settings
) -> Response[TokenOut]:
    _require_same_site(request, settings)
    presented = request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise Unauthorized("no refresh token cookie")
    user, token = await refresh_tokens.rotate(db_session, presented, _refresh_lifetime(settings))
    return _signed_in(settings, user, token, 200)


@post("/logout", roles=PUBLIC, status_code=204)
async def logout(
    request: Request[Any, Any, Any], db_session: deps.DbSession, settings: deps.Settings
) -> Response[None]:
    _require_same_site(request, settings)
    presented = request.cookies.get(REFRESH_COOKIE)
    if presented:
        await refresh_tokens.revoke(db_session, presented)
    return Response(None, status_code=204, cookies=[_refresh_cookie("", 0)])


@get("/me", roles=SIGNED_IN)
async def me(principal: deps.Caller, db_session: deps.DbSession) -> UserOut:
    return user_out(await users.get_user(db_session, principal.id))


auth_router = Router(
    AUTH_PATH, route_handlers=[register, login, refresh, logout, me], tags=["auth"]
)
