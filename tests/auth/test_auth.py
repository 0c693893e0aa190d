"""/api/auth: registration, sign-in, refresh rotation, logout, cookies and throttling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.auth.responses import AUTH_PATH, REFRESH_COOKIE
from seatlock.models import RefreshToken, User
from seatlock.settings import Settings
from tests.clients import PASSWORD, Client, ClientWith, assert_problem

EMAIL = "ada@example.test"
SAME_SITE = {"X-Requested-With": "fetch"}


async def _register(client: Client, email: str = EMAIL, password: str = PASSWORD) -> Any:
    return await client.post(
        "/api/auth/register",
        json={"email": email, "password": password, "full_name": "Ada Lovelace"},
    )


async def _login(client: Client, email: str = EMAIL, password: str = PASSWORD) -> Any:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def _refresh(client: Client, token: str, headers: dict[str, str] | None = None) -> Any:
    return await client.post(
        "/api/auth/refresh",
        headers={**SAME_SITE, **(headers or {}), "Cookie": f"{REFRESH_COOKIE}={token}"},
    )


async def _logout(client: Client, token: str, headers: dict[str, str] | None = None) -> Any:
    return await client.post(
        "/api/auth/logout",
        headers={**SAME_SITE, **(headers or {}), "Cookie": f"{REFRESH_COOKIE}={token}"},
    )


async def _me(client: Client, response: Any) -> Any:
    token = response.json()["access_token"]
    return await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


async def _count(engine: AsyncEngine, model: type[Any]) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(model)) or 0)


def _refresh_cookie(response: Any) -> Any:
    cookies = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        cookies.load(header)
    return cookies[REFRESH_COOKIE]


# Registration


async def test_register_creates_a_user_and_signs_in(client: Client, engine: AsyncEngine) -> None:
    response = await _register(client)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"]["email"] == EMAIL
    assert body["user"]["role"] == "USER"
    assert response.headers["cache-control"] == "no-store"
    me = await _me(client, response)
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]
    assert await _count(engine, User) == 1


async def test_register_stores_an_argon2id_hash_not_the_password(
    client: Client, engine: AsyncEngine
) -> None:
    await _register(client)
    async with engine.connect() as conn:
        stored = await conn.scalar(select(User.password_hash))
    assert stored is not None
    assert PASSWORD not in stored
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_register_normalises_the_email(client: Client) -> None:
    response = await _register(client, email="Ada@Example.TEST")
    assert response.status_code == 201
    assert response.json()["user"]["email"] == EMAIL


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "full_name": "A"}, "email"),
        ({"email": "a@b", "password": PASSWORD, "full_name": "A"}, "email"),
        ({"email": "a b@c.de", "password": PASSWORD, "full_name": "A"}, "email"),
        ({"email": "x" * 250 + "@b.cd", "password": PASSWORD, "full_name": "A"}, "email"),
        ({"email": EMAIL, "password": "short", "full_name": "A"}, "password"),
        ({"email": EMAIL, "password": "p" * 129, "full_name": "A"}, "password"),
        ({"email": EMAIL, "password": PASSWORD, "full_name": "   "}, "full_name"),
        ({"email": EMAIL, "password": PASSWORD, "full_name": "n" * 121}, "full_name"),
        ({"email": EMAIL, "password": PASSWORD}, "full_name"),
        ({"email": EMAIL, "password": 123456789012, "full_name": "A"}, "password"),
        ({"email": EMAIL, "password": PASSWORD, "full_name": "A", "role": "ADMIN"}, "role"),
        ({"email": EMAIL, "password": PASSWORD, "full_name": "A", "is_admin": True}, "is_admin"),
    ],
)
async def test_invalid_registration_names_the_field_and_writes_nothing(
    client: Client, engine: AsyncEngine, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/auth/register", json=body)
    problem = assert_problem(response, 400, "validation")
    assert [error["field"] for error in problem["errors"]] == [field]
    assert all(error["source"] == "body" and error["message"] for error in problem["errors"])
    assert await _count(engine, User) == 0
    assert await _count(engine, RefreshToken) == 0


async def test_malformed_json_is_refused_and_writes_nothing(
    client: Client, engine: AsyncEngine
) -> None:
    response = await client.post(
        "/api/auth/register",
        content=b'{"email": "ada@example.test",',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert await _count(engine, User) == 0


async def test_register_without_body_is_refused(client: Client) -> None:
    problem = assert_problem(await client.post("/api/auth/register"), 400)
    assert problem["errors"] == [
        {"field": "", "source": "body", "message": "a JSON request body is required"}
    ]


async def test_duplicate_email_is_a_conflict(client: Client, engine: AsyncEngine) -> None:
    assert (await _register(client)).status_code == 201
    assert_problem(await _register(client, email=EMAIL.upper()), 409, "conflict")
    assert await _count(engine, User) == 1


# Sign-in


async def test_login_returns_a_working_access_token(client: Client) -> None:
    await _register(client)
    response = await _login(client, email=EMAIL.upper())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert (await _me(client, response)).json()["email"] == EMAIL


async def test_login_answers_the_same_for_unknown_email_and_wrong_password(
    client: Client,
) -> None:
    await _register(client)
    unknown = await _login(client, email="nobody@example.test")
    wrong = await _login(client, password="wrong password, long enough")
    assert_problem(unknown, 401)
    assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert REFRESH_COOKIE not in unknown.cookies
    assert REFRESH_COOKIE not in wrong.cookies


# Cookies


@pytest.mark.parametrize("route", ["register", "login", "refresh"])
async def test_refresh_cookie_flags(client: Client, settings: Settings, route: str) -> None:
    response = await _register(client)
    if route == "login":
        response = await _login(client)
    elif route == "refresh":
        response = await _refresh(client, response.cookies[REFRESH_COOKIE])
    assert response.status_code in (200, 201), response.text
    cookie = _refresh_cookie(response)
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == AUTH_PATH
    assert int(cookie["max-age"]) == settings.refresh_token_days * 86400


async def test_refresh_token_is_stored_only_as_a_hash(client: Client, engine: AsyncEngine) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    async with engine.connect() as conn:
        stored = list(await conn.scalars(select(RefreshToken.token_hash)))
    assert len(stored) == 1
    assert token not in stored[0]


# Refresh rotation and reuse


async def test_refresh_rotates_the_token(client: Client) -> None:
    first = (await _register(client)).cookies[REFRESH_COOKIE]
    response = await _refresh(client, first)
    assert response.status_code == 200, response.text
    second = response.cookies[REFRESH_COOKIE]
    assert second != first
    assert (await _me(client, response)).json()["email"] == EMAIL
    third = await _refresh(client, second)
    assert third.status_code == 200, third.text
    assert third.cookies[REFRESH_COOKIE] not in (first, second)


async def test_refresh_issues_the_current_role(
    client: Client, engine: AsyncEngine, settings: Settings
) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE users SET role = 'ORGANIZER'"))
    response = await _refresh(client, token)
    claims = jwt.decode(
        response.json()["access_token"],
        settings.jwt_secret,
        algorithms=[settings.jwt_algorithm],
        audience=settings.jwt_audience,
    )
    assert claims["role"] == "ORGANIZER"
    assert response.json()["user"]["role"] == "ORGANIZER"


async def test_reused_refresh_token_revokes_the_whole_family(client: Client) -> None:
    first = (await _register(client)).cookies[REFRESH_COOKIE]
    second = (await _refresh(client, first)).cookies[REFRESH_COOKIE]
    third = (await _refresh(client, second)).cookies[REFRESH_COOKIE]
    reuse = await _refresh(client, first)
    problem = assert_problem(reuse, 401)
    assert "reuse" in problem["detail"]
    assert reuse.headers["www-authenticate"].startswith("Bearer")
    # The newest token of the family, never used, is dead too.
    assert_problem(await _refresh(client, third), 401)


async def test_reuse_leaves_other_sign_ins_alone(client: Client) -> None:
    first = (await _register(client)).cookies[REFRESH_COOKIE]
    other = (await _login(client)).cookies[REFRESH_COOKIE]
    await _refresh(client, first)
    assert_problem(await _refresh(client, first), 401)
    assert (await _refresh(client, other)).status_code == 200


async def test_concurrent_refreshes_with_one_token_let_exactly_one_through(
    client: Client,
) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    responses = await asyncio.gather(*(_refresh(client, token) for _ in range(2)))
    assert sorted(r.status_code for r in responses) == [200, 401]


async def test_many_concurrent_refreshes_with_one_token_let_exactly_one_through(
    client: Client,
) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    responses = await asyncio.gather(*(_refresh(client, token) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] + [401] * 7


async def test_expired_refresh_token_is_refused(client: Client, engine: AsyncEngine) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    async with engine.begin() as conn:
        await conn.execute(
            update(RefreshToken).values(expires_at=func.now() - text("interval '1 second'"))
        )
    assert_problem(await _refresh(client, token), 401)


async def test_unknown_refresh_token_is_refused(client: Client) -> None:
    await _register(client)
    assert_problem(await _refresh(client, "made-up-token"), 401)


async def test_refresh_without_cookie_is_refused(client: Client) -> None:
    response = await client.post("/api/auth/refresh", headers=SAME_SITE)
    assert_problem(response, 401)


# Logout


async def test_logout_revokes_the_family_and_clears_the_cookie(client: Client) -> None:
    first = (await _register(client)).cookies[REFRESH_COOKIE]
    second = (await _refresh(client, first)).cookies[REFRESH_COOKIE]
    response = await _logout(client, second)
    assert response.status_code == 204, response.text
    cookie = _refresh_cookie(response)
    assert cookie.value == ""
    assert int(cookie["max-age"]) == 0
    assert cookie["path"] == AUTH_PATH
    assert_problem(await _refresh(client, second), 401)


async def test_logout_with_an_older_token_of_the_family_revokes_the_newest(
    client: Client,
) -> None:
    first = (await _register(client)).cookies[REFRESH_COOKIE]
    second = (await _refresh(client, first)).cookies[REFRESH_COOKIE]
    assert (await _logout(client, first)).status_code == 204
    assert_problem(await _refresh(client, second), 401)


async def test_logout_leaves_other_sign_ins_alone(client: Client) -> None:
    first = (await _register(client)).cookies[REFRESH_COOKIE]
    other = (await _login(client)).cookies[REFRESH_COOKIE]
    assert (await _logout(client, first)).status_code == 204
    assert (await _refresh(client, other)).status_code == 200


async def test_logout_without_cookie_succeeds(client: Client) -> None:
    response = await client.post("/api/auth/logout", headers=SAME_SITE)
    assert response.status_code == 204


# Cross-site requests

CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://testserver.local.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_cross_site_refresh_is_refused(client: Client, headers: dict[str, str]) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    assert_problem(await _refresh(client, token, headers), 403)
    # The refused request used up nothing.
    assert (await _refresh(client, token)).status_code == 200


async def test_refresh_without_the_custom_header_is_refused(client: Client) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    response = await client.post(
        "/api/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"}
    )
    assert_problem(response, 403)
    assert (await _refresh(client, token)).status_code == 200


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_cross_site_logout_is_refused(client: Client, headers: dict[str, str]) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    assert_problem(await _logout(client, token, headers), 403)
    assert (await _refresh(client, token)).status_code == 200


async def test_logout_without_the_custom_header_is_refused(client: Client) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    response = await client.post(
        "/api/auth/logout", headers={"Cookie": f"{REFRESH_COOKIE}={token}"}
    )
    assert_problem(response, 403)
    assert (await _refresh(client, token)).status_code == 200


@pytest.mark.parametrize(
    "headers", [{"Origin": "http://testserver.local"}, {"Sec-Fetch-Site": "same-origin"}]
)
async def test_same_origin_refresh_is_accepted(client: Client, headers: dict[str, str]) -> None:
    token = (await _register(client)).cookies[REFRESH_COOKIE]
    assert (await _refresh(client, token, headers)).status_code == 200


@pytest.fixture
async def frontend_client(client_with: ClientWith) -> AsyncIterator[Client]:
    async with client_with(allowed_origins="https://app.example, https://admin.example/") as client:
        yield client


@pytest.mark.parametrize("origin", ["https://app.example", "https://admin.example"])
async def test_allowed_origins_may_refresh_and_log_out(
    frontend_client: Client, origin: str
) -> None:
    token = (await _register(frontend_client)).cookies[REFRESH_COOKIE]
    refreshed = await _refresh(frontend_client, token, {"Origin": origin})
    assert refreshed.status_code == 200, refreshed.text
    newest = refreshed.cookies[REFRESH_COOKIE]
    assert (await _logout(frontend_client, newest, {"Origin": origin})).status_code == 204


async def test_origins_not_listed_are_still_refused(frontend_client: Client) -> None:
    token = (await _register(frontend_client)).cookies[REFRESH_COOKIE]
    response = await _refresh(frontend_client, token, {"Origin": "https://other.example"})
    assert_problem(response, 403)
