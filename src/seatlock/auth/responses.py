"""What the auth routes answer: the account, and a signed-in answer with its cookie."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import Cookie

from seatlock.auth import users
from seatlock.auth.refresh_tokens import Client, Issued
from seatlock.auth.tokens import issue_access_token
from seatlock.models import Role, User, UserStatus
from seatlock.settings import Settings

AUTH_PATH = "/api/auth"
REFRESH_COOKIE = "seatlock_refresh"


class UserOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    status: UserStatus
    created_at: datetime


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    user: UserOut


def user_out(user: User) -> UserOut:
    return msgspec.convert(user, UserOut, from_attributes=True)


def refresh_cookie(value: str, max_age: int) -> Cookie:
    return Cookie(
        key=REFRESH_COOKIE,
        value=value,
        path=AUTH_PATH,
        httponly=True,
        secure=True,
        samesite="strict",
        max_age=max_age,
    )


def signed_in(settings: Settings, user: User, issued: Issued, status: int) -> Response[TokenOut]:
    """A new access token for `issued`'s session, and its refresh token as the cookie."""
    body = TokenOut(
        access_token=issue_access_token(settings, users.principal_of(user, issued.family_id)),
        token_type="Bearer",
        expires_in=settings.access_token_minutes * 60,
        user=user_out(user),
    )
    max_age = settings.refresh_token_days * 86400
    return Response(
        body,
        status_code=status,
        cookies=[refresh_cookie(issued.token, max_age)],
        headers={"Cache-Control": "no-store"},
    )


def refresh_lifetime(settings: Settings) -> timedelta:
    return timedelta(days=settings.refresh_token_days)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def client_of(request: Request[Any, Any, Any]) -> Client:
    return Client(client_address(request), request.headers.get("user-agent", ""))
