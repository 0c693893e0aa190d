"""Roles: the guard over every route, and the admin's user management."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, Router, get
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.app import create_app
from seatlock.auth.access import (
    ADMINS,
    PUBLIC,
    ROLE_REFUSED,
    SIGN_IN_REQUIRED,
    SIGNED_IN,
    UNDECLARED_ROUTE,
    authorize,
)
from seatlock.auth.tokens import Principal, issue_access_token
from seatlock.models import Role, User
from seatlock.problems import problem_details_plugin
from seatlock.settings import Settings
from tests.clients import PASSWORD, Client, UserFactory, assert_problem

CALLERS = [None, Role.USER, Role.ORGANIZER, Role.ADMIN]
PATH_PARAMETER = re.compile(r"\{(\w+):(\w+)\}")


def _handlers(app: Litestar) -> list[tuple[str, str, HTTPRouteHandler]]:
    """Every (path, method, handler) the app routes to."""
    found: list[tuple[str, str, HTTPRouteHandler]] = []
    for route in app.routes:
        assert isinstance(route, HTTPRoute), f"unexpected route {route.path}"
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                found.append((route.path, str(method), handler))
    return found


def _generated_options(handler: HTTPRouteHandler) -> bool:
    """Litestar's own OPTIONS handler, added beside every route."""
    return handler.http_methods == {"OPTIONS"} and handler.handler_name == "options_handler"


def _concrete(path: str) -> str:
    examples = {"uuid": str(uuid.uuid4()), "int": "1", "str": "x", "path": "/x"}
    return PATH_PARAMETER.sub(lambda m: examples[m.group(2)], path)


def _expected(roles: Any, caller: Role | None) -> tuple[int, str] | None:
    """The guard's answer (status, detail), or None when the guard lets the call through."""
    if roles == PUBLIC:
        return None
    if not isinstance(roles, frozenset) or not roles:
        return 403, UNDECLARED_ROUTE
    if caller is None:
        return 401, SIGN_IN_REQUIRED
    if caller not in roles:
        return 403, ROLE_REFUSED
    return None


def _guard_answer(response: Any) -> tuple[int, str] | None:
    if response.status_code not in (401, 403):
        return None
    detail = response.json().get("detail")
    if detail not in (SIGN_IN_REQUIRED, ROLE_REFUSED, UNDECLARED_ROUTE):
        return None
    return response.status_code, detail


def test_every_route_declares_its_roles(settings: Settings) -> None:
    undeclared = [
        f"{method} {path}"
        for path, method, handler in _handlers(create_app(settings))
        if not _generated_options(handler)
        and not (
            handler.opt.get("roles") == PUBLIC or isinstance(handler.opt.get("roles"), frozenset)
        )
    ]
    assert undeclared == []


async def test_role_guard_matrix_over_every_route(
    client: Client, settings: Settings, make_user: UserFactory
) -> None:
    tokens: dict[Role | None, dict[str, str]] = {None: {}}
    for role in Role:
        tokens[role] = await make_user(role)
    mismatches: list[str] = []
    for path, method, handler in _handlers(create_app(settings)):
        roles = handler.opt.get("roles")
        for caller in CALLERS:
            # An empty body: a call the guard lets through fails validation or finds nothing,
            # so the matrix changes no data.
            body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
            response = await client.request(
                method, _concrete(path), headers=tokens[caller], json=body
            )
            answer = _guard_answer(response)
            # Signing out the other sessions voids the caller's older tokens and hands it a
            # new one, which the rest of the matrix must use.
            is_json = response.headers.get("content-type", "").startswith("application/json")
            if caller is not None and response.status_code == 200 and is_json:
                renewed = response.json()
                if isinstance(renewed, dict) and "access_token" in renewed:
                    tokens[caller] = {"Authorization": f"Bearer {renewed['access_token']}"}
            if answer != _expected(roles, caller):
                who = caller.value if caller else "anonymous"
                mismatches.append(f"{method} {path} as {who}: {response.status_code} {answer}")
    assert mismatches == [], "\n".join(mismatches)


async def test_guard_matrix_covers_the_foundation_routes(settings: Settings) -> None:
    declared = {
        (method, path): handler.opt.get("roles")
        for path, method, handler in _handlers(create_app(settings))
    }
    assert declared[("POST", "/api/auth/register")] == PUBLIC
    assert declared[("POST", "/api/auth/login")] == PUBLIC
    assert declared[("POST", "/api/auth/refresh")] == PUBLIC
    assert declared[("POST", "/api/auth/logout")] == PUBLIC
    assert declared[("GET", "/api/auth/me")] == frozenset(Role)
    assert declared[("GET", "/api/admin/users")] == ADMINS
    assert declared[("PATCH", "/api/admin/users/{user_id:uuid}")] == ADMINS
    assert declared[("GET", "/api/admin/users/{user_id:uuid}")] == ADMINS
    for method, path in [
        ("PATCH", "/api/auth/me"),
        ("POST", "/api/auth/password"),
        ("GET", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions/{session_id:uuid}"),
    ]:
        assert declared[(method, path)] == SIGNED_IN, f"{method} {path}"
    assert declared[("GET", "/health/live")] == PUBLIC
    assert declared[("GET", "/health/ready")] == PUBLIC


# A route that declares nothing, or declares it wrongly, is denied to everyone.

UNDECLARED = [
    {},
    {"roles": None},
    {"roles": frozenset()},
    {"roles": ["ADMIN"]},
    {"roles": "PUBLIC"},
]


@pytest.fixture
async def tiny_client(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    @get("/thing", opt=request.param, sync_to_thread=False)
    def thing() -> dict[str, str]:
        return {"called": "yes"}

    app = Litestar(
        route_handlers=[Router("/", route_handlers=[thing], guards=[authorize])],
        plugins=[problem_details_plugin()],
        state=State({"settings": settings}),
    )
    async with AsyncTestClient(app=app) as client:
        yield client


def _bearer(settings: Settings, role: Role) -> dict[str, str]:
    principal = Principal(id=uuid.uuid4(), role=role, email="someone@example.test")
    return {"Authorization": f"Bearer {issue_access_token(settings, principal)}"}


@pytest.mark.parametrize("tiny_client", UNDECLARED, indirect=True, ids=repr)
@pytest.mark.parametrize("caller", CALLERS)
async def test_route_without_declared_roles_is_denied(
    tiny_client: Client, settings: Settings, caller: Role | None
) -> None:
    headers = _bearer(settings, caller) if caller else {}
    response = await tiny_client.get("/thing", headers=headers)
    assert assert_problem(response, 403)["detail"] == UNDECLARED_ROUTE


@pytest.mark.parametrize("tiny_client", [{"roles": PUBLIC}], indirect=True)
async def test_public_route_under_the_guard_answers_anyone(tiny_client: Client) -> None:
    response = await tiny_client.get("/thing")
    assert response.status_code == 200
    assert response.json() == {"called": "yes"}


# Admin: user management


async def _user_id(engine: AsyncEngine, email: str) -> uuid.UUID:
    async with engine.connect() as conn:
        found = await conn.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


async def _role(engine: AsyncEngine, user_id: uuid.UUID) -> Role:
    async with engine.connect() as conn:
        role = await conn.scalar(select(User.role).where(User.id == user_id))
    assert role is not None
    return role


async def test_admin_changes_a_users_role(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    await make_user(Role.USER, email="buyer@example.test")
    buyer = await _user_id(engine, "buyer@example.test")
    response = await client.patch(
        f"/api/admin/users/{buyer}", json={"role": "ORGANIZER"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "ORGANIZER"
    assert response.json()["id"] == str(buyer)
    assert await _role(engine, buyer) == Role.ORGANIZER


async def test_new_role_takes_effect_at_the_next_sign_in(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    await make_user(Role.USER, email="buyer@example.test")
    buyer = await _user_id(engine, "buyer@example.test")
    await client.patch(f"/api/admin/users/{buyer}", json={"role": "ADMIN"}, headers=admin)
    login = await client.post(
        "/api/auth/login",
        json={"email": "buyer@example.test", "password": PASSWORD},
    )
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/admin/users", headers=token)).status_code == 200


async def test_admin_cannot_change_own_role(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN, email="root@example.test")
    own = await _user_id(engine, "root@example.test")
    response = await client.patch(f"/api/admin/users/{own}", json={"role": "USER"}, headers=admin)
    assert_problem(response, 403)
    response = await client.patch(
        f"/api/admin/users/{own}", json={"status": "disabled"}, headers=admin
    )
    assert_problem(response, 403)
    assert await _role(engine, own) == Role.ADMIN


@pytest.mark.parametrize("role", [Role.USER, Role.ORGANIZER])
async def test_non_admins_cannot_change_roles(
    client: Client, engine: AsyncEngine, make_user: UserFactory, role: Role
) -> None:
    caller = await make_user(role, email="caller@example.test")
    await make_user(Role.USER, email="target@example.test")
    unchanged = {"caller@example.test": role, "target@example.test": Role.USER}
    for email, before in unchanged.items():
        user_id = await _user_id(engine, email)
        response = await client.patch(
            f"/api/admin/users/{user_id}", json={"role": "ADMIN"}, headers=caller
        )
        assert response.status_code == 403
        assert response.json()["detail"] == ROLE_REFUSED
        assert await _role(engine, user_id) == before


@pytest.mark.parametrize("role", [Role.USER, Role.ORGANIZER])
async def test_non_admins_cannot_list_users(
    client: Client, make_user: UserFactory, role: Role
) -> None:
    response = await client.get("/api/admin/users", headers=await make_user(role))
    assert response.status_code == 403
    assert response.json()["detail"] == ROLE_REFUSED


async def test_anonymous_cannot_use_admin_routes(client: Client) -> None:
    assert (await client.get("/api/admin/users")).status_code == 401
    response = await client.patch(f"/api/admin/users/{uuid.uuid4()}", json={"role": "ADMIN"})
    assert response.status_code == 401


async def test_role_change_of_unknown_user_is_not_found(
    client: Client, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await client.patch(
        f"/api/admin/users/{uuid.uuid4()}", json={"role": "ORGANIZER"}, headers=admin
    )
    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "OWNER"}, "role"),
        ({"role": "admin"}, "role"),
        ({"status": "banned"}, "status"),
        ({"role": "ORGANIZER", "email": "x@y.zz"}, "email"),
    ],
)
async def test_invalid_role_change_is_refused(
    client: Client, engine: AsyncEngine, make_user: UserFactory, body: dict[str, Any], field: str
) -> None:
    admin = await make_user(Role.ADMIN)
    await make_user(Role.USER, email="target@example.test")
    target = await _user_id(engine, "target@example.test")
    response = await client.patch(f"/api/admin/users/{target}", json=body, headers=admin)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await _role(engine, target) == Role.USER


async def test_list_users_pages_through_every_account(
    client: Client, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    for _ in range(4):
        await make_user(Role.USER)
    seen: list[str] = []
    link: str | None = "/api/admin/users?limit=2"
    while link is not None:
        response = await client.get(link, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["total"], page["limit"]) == (5, 2)
        assert len(page["items"]) == (2 if page["next"] else 1)
        seen += [item["id"] for item in page["items"]]
        link = page["next"]
    assert len(set(seen)) == 5
    assert all("password_hash" not in item for item in page["items"])


async def test_list_users_defaults(client: Client, make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    page = (await client.get("/api/admin/users", headers=admin)).json()
    assert (page["total"], page["limit"], page["next"], len(page["items"])) == (1, 20, None, 1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"limit": "many"}, "limit"),
    ],
)
async def test_list_users_refuses_bad_paging(
    client: Client, make_user: UserFactory, params: dict[str, Any], field: str
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await client.get("/api/admin/users", params=params, headers=admin)
    problem = assert_problem(response, 400)
    assert [(e["field"], e["source"]) for e in problem["errors"]] == [(field, "query")]


async def test_empty_user_change_is_refused(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    await make_user(Role.USER, email="target@example.test")
    target = await _user_id(engine, "target@example.test")
    response = await client.patch(f"/api/admin/users/{target}", json={}, headers=admin)
    assert_problem(response, 422, "invalid-input")
    assert await _role(engine, target) == Role.USER
