"""Who may call what. Every route declares its roles (`roles=` in its decorator); the
`authorize` guard reads the bearer token, checks it against the account's current stamp
(`account_stamps`: revoked tokens and disabled accounts are refused, a changed role
counts at once), enforces the declaration, and denies any route that declares nothing."""

from __future__ import annotations

import hmac
from typing import Any, Final

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from seatlock.auth.account_stamps import StampCache
from seatlock.auth.tokens import Principal, read_access_token
from seatlock.errors import Forbidden, Unauthorized
from seatlock.models import Role
from seatlock.settings import Settings

PUBLIC: Final = "public"
SIGNED_IN: Final = frozenset(Role)
STAFF: Final = frozenset({Role.ORGANIZER, Role.ADMIN})
ADMINS: Final = frozenset({Role.ADMIN})

# The guard's answers, so that callers and tests can tell a refusal of the guard from one
# of the handler.
SIGN_IN_REQUIRED: Final = "sign in to use this route"
ROLE_REFUSED: Final = "your role may not use this route"
UNDECLARED_ROUTE: Final = "this route declares no access rule, so nobody may call it"


async def _bearer_principal(
    connection: ASGIConnection[Any, Any, Any, Any],
) -> Principal | None:
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    settings: Settings = connection.app.state.settings
    stamps: StampCache = connection.app.state.account_stamps
    return await stamps.admit(read_access_token(settings, token.strip()))


async def _optional_principal(
    connection: ASGIConnection[Any, Any, Any, Any],
) -> Principal | None:
    # The routes that hand out tokens (`stale_token_ignored=True`: register, login, refresh,
    # logout) ignore a stale one rather than refuse it: clients keep sending an expired
    # access token to exactly the routes that replace it.
    try:
        return await _bearer_principal(connection)
    except Unauthorized:
        return None


def _presents_metrics_token(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """The scraper's way in, on the routes that declare `metrics_token=True` (GET /metrics)
    beside their roles: `Bearer <SEATLOCK_METRICS_TOKEN>`, compared in constant time."""
    expected = connection.app.state.settings.metrics_token
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


# A coroutine, so that Litestar runs it on the event loop: a plain function would be sent
# to a worker thread on every request.
async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    roles = handler.opt.get("roles")
    if roles == PUBLIC:
        # Elsewhere a token is optional, but one that is sent must be valid: a 401 is how a
        # frontend learns to refresh it.
        ignores_stale = handler.opt.get("stale_token_ignored", False)
        read = _optional_principal if ignores_stale else _bearer_principal
        connection.scope["user"] = await read(connection)
        return
    connection.scope["user"] = None
    if not isinstance(roles, frozenset) or not roles:
        raise Forbidden(UNDECLARED_ROUTE)
    if handler.opt.get("metrics_token") and _presents_metrics_token(connection):
        return
    principal = await _bearer_principal(connection)
    connection.scope["user"] = principal
    if principal is None:
        raise Unauthorized(SIGN_IN_REQUIRED)
    if principal.role not in roles:
        raise Forbidden(ROLE_REFUSED)


def signed_in(user: Principal | None) -> Principal:
    """The caller of a signed-in route, whom the guard made sure of; 401 without one."""
    if user is None:
        raise Unauthorized(SIGN_IN_REQUIRED)
    return user


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return signed_in(request.scope.get("user"))


def provide_viewer(request: Request[Any, Any, Any]) -> Principal | None:
    """The caller on a public route: None when anonymous."""
    viewer: Principal | None = request.scope.get("user")
    return viewer
