"""Who may call what. Every route declares its roles (`roles=` in its decorator); the
`authorize` guard reads the bearer token and enforces the declaration, and denies any
route that declares nothing."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from seatlock.errors import Forbidden, Unauthorized
from seatlock.models import Role
from seatlock.settings import Settings
from seatlock.tokens import Principal, read_access_token

PUBLIC: Final = "public"
SIGNED_IN: Final = frozenset(Role)
STAFF: Final = frozenset({Role.ORGANIZER, Role.ADMIN})
ADMINS: Final = frozenset({Role.ADMIN})


def _bearer_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    settings: Settings = connection.app.state.settings
    return read_access_token(settings, token.strip())


def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    roles = handler.opt.get("roles")
    principal = _bearer_principal(connection)
    connection.scope["user"] = principal
    if roles == PUBLIC:
        return
    if not isinstance(roles, frozenset) or not roles:
        raise Forbidden("this route declares no access rule, so nobody may call it")
    if principal is None:
        raise Unauthorized("sign in to use this route")
    if principal.role not in roles:
        raise Forbidden("your role may not use this route")


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal | None = request.scope.get("user")
    if principal is None:
        raise Unauthorized("sign in to use this route")
    return principal


def provide_viewer(request: Request[Any, Any, Any]) -> Principal | None:
    """The caller on a public route: None when anonymous."""
    viewer: Principal | None = request.scope.get("user")
    return viewer
