"""/api/auth: register, login, refresh, logout and the caller's own account (whose
changes are in `account_routes`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import JSONBody

from seatlock import deps
from seatlock.auth import account_routes, refresh_tokens, throttle, users
from seatlock.auth.access import PUBLIC, SIGNED_IN
from seatlock.auth.responses import (
    AUTH_PATH,
    REFRESH_COOKIE,
    TokenOut,
    UserOut,
    client_address,
    client_of,
    refresh_cookie,
    refresh_lifetime,
    signed_in,
    user_out,
)
from seatlock.bodies import Body, Email, Name, Password
from seatlock.errors import Forbidden, Unauthorized

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


@post(
    "/register",
    roles=PUBLIC,
    stale_token_ignored=True,
    status_code=201,
    operation_id="registerAccount",
    problems=(409, 429),
)
async def register(
    data: JSONBody[RegisterBody], request: Request[Any, Any, Any], auth: deps.Auth
) -> Response[TokenOut]:
    """Creates an account (role USER) and signs it in: an access token in the body, the
    refresh token in an HttpOnly cookie."""
    session, settings = auth.session, auth.settings
    await auth.rate_limits.registration(client_address(request))
    user = await users.register_user(session, data.email, data.password, data.full_name)
    issued = await refresh_tokens.start_family(
        session, user, refresh_lifetime(settings), client_of(request)
    )
    return signed_in(settings, user, issued, 201)


@post("/login", roles=PUBLIC, stale_token_ignored=True, status_code=200, problems=(403, 429))
async def login(
    data: JSONBody[LoginBody], request: Request[Any, Any, Any], auth: deps.Auth
) -> Response[TokenOut]:
    """Signs in with email and password: an access token in the body, the refresh token
    in an HttpOnly cookie. Repeated failures are throttled (429 with Retry-After)."""
    session, settings = auth.session, auth.settings
    email = users.normalise_email(data.email)
    async with throttle.password_attempt(
        auth.redis, settings, email, client_address(request), Unauthorized
    ):
        user = await users.authenticate(session, email, data.password)
    issued = await refresh_tokens.start_family(
        session, user, refresh_lifetime(settings), client_of(request)
    )
    return signed_in(settings, user, issued, 200)


@post("/refresh", roles=PUBLIC, stale_token_ignored=True, status_code=200, problems=(403,))
async def refresh(request: Request[Any, Any, Any], auth: deps.Auth) -> Response[TokenOut]:
    """Trades the refresh token cookie for a new access token and a new refresh token
    (rotation: a reused one revokes its whole session). Needs the X-Requested-With
    header."""
    settings = auth.settings
    _require_same_site(request, settings)
    presented = request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise Unauthorized("no refresh token cookie")
    user, issued = await refresh_tokens.rotate(
        auth.session, presented, refresh_lifetime(settings), client_of(request)
    )
    return signed_in(settings, user, issued, 200)


@post("/logout", roles=PUBLIC, stale_token_ignored=True, status_code=204, problems=(403,))
async def logout(request: Request[Any, Any, Any], auth: deps.Auth) -> Response[None]:
    """Ends the session of the refresh token cookie and clears the cookie. Needs the
    X-Requested-With header."""
    _require_same_site(request, auth.settings)
    presented = request.cookies.get(REFRESH_COOKIE)
    if presented:
        await refresh_tokens.revoke(auth.session, presented)
    return Response(None, status_code=204, cookies=[refresh_cookie("", 0)])


@get("/me", roles=SIGNED_IN, operation_id="getMyAccount")
async def me(own: deps.Own) -> UserOut:
    """The caller's own account."""
    return user_out(await users.get_user(own.session, own.caller.id))


auth_router = Router(
    AUTH_PATH,
    route_handlers=[register, login, refresh, logout, me, *account_routes.handlers],
    tags=["auth"],
)
