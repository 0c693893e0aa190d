"""An admin's user management: finding accounts, what they are up to, disabling them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import keys
from seatlock.auth.access import ROLE_REFUSED
from seatlock.auth.responses import REFRESH_COOKIE
from seatlock.embedded.host import free_port
from seatlock.models import Role, User
from tests.buying import book, hold
from tests.clients import PASSWORD, Client, ClientWith, UserFactory, assert_problem
from tests.factories import create_event


@pytest.fixture
async def client(client_with: ClientWith) -> AsyncIterator[Client]:
    # No caching of account stamps: a change shows at the very next request here.
    async with client_with(account_cache_seconds=0) as client:
        yield client


async def _id(engine: AsyncEngine, email: str) -> uuid.UUID:
    async with engine.connect() as conn:
        found = await conn.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


async def _page(client: Client, admin: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/api/admin/users", params=params, headers=admin)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _emails(client: Client, admin: dict[str, str], **params: Any) -> list[str]:
    return sorted(item["email"] for item in (await _page(client, admin, **params))["items"])


async def test_list_users_filters_by_role_status_and_email(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN, email="root@example.test")
    await make_user(Role.ORGANIZER, email="org@venue.test")
    await make_user(Role.USER, email="ada@example.test")
    await make_user(Role.USER, email="grace_h@example.test")
    grace = await _id(engine, "grace_h@example.test")
    await client.patch(f"/api/admin/users/{grace}", json={"status": "disabled"}, headers=admin)

    assert await _emails(client, admin, role="ORGANIZER") == ["org@venue.test"]
    assert await _emails(client, admin, status="disabled") == ["grace_h@example.test"]
    assert await _emails(client, admin, role="USER", status="active") == ["ada@example.test"]
    assert await _emails(client, admin, email="VENUE") == ["org@venue.test"]
    # The text is matched literally: `_` and `%` are no wildcards.
    assert await _emails(client, admin, email="_h@") == ["grace_h@example.test"]
    assert await _emails(client, admin, email="%") == []
    first = await _page(client, admin, email="example", limit=1)
    second = await _page(client, admin, email="example", limit=1, cursor=first["next_cursor"])
    assert (second["total"], second["limit"], len(second["items"])) == (3, 1, 1)
    assert second["items"] != first["items"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"role": "OWNER"}, "role"),
        ({"status": "banned"}, "status"),
        ({"email": ""}, "email"),
        ({"email": "ada\x00@example.test"}, "email"),
        ({"email": "ada\x1b@example.test"}, "email"),
    ],
)
async def test_list_users_refuses_bad_filters(
    client: Client, make_user: UserFactory, params: dict[str, Any], field: str
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await client.get("/api/admin/users", params=params, headers=admin)
    problem = assert_problem(response, 400)
    assert [e["field"] for e in problem["errors"]] == [field]


async def test_user_details_count_bookings_and_live_holds(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    buyer = await make_user(Role.USER, email="buyer@example.test")
    buyer_id = await _id(engine, "buyer@example.test")
    first, second = await create_event(engine), await create_event(engine)
    await hold(client, buyer, first.id, first.seat_ids[:2])
    await hold(client, buyer, second.id, second.seat_ids[:1])
    booked = await book(client, buyer, await hold(client, buyer, first.id, first.seat_ids[5:6]))
    assert booked.status_code == 201, booked.text

    response = await client.get(f"/api/admin/users/{buyer_id}", headers=admin)
    assert response.status_code == 200, response.text
    details = response.json()
    assert details["user"]["email"] == "buyer@example.test"
    assert (details["bookings"], details["live_holds"]) == (1, 2)
    assert_problem(await client.get(f"/api/admin/users/{uuid.uuid4()}", headers=admin), 404)


async def test_disabling_an_account_shuts_it_out_and_releases_its_holds(
    client: Client, engine: AsyncEngine, redis: Redis, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    buyer = await make_user(Role.USER, email="buyer@example.test")
    buyer_id = await _id(engine, "buyer@example.test")
    login = await client.post(
        "/api/auth/login", json={"email": "buyer@example.test", "password": PASSWORD}
    )
    cookie = login.cookies[REFRESH_COOKIE]
    event = await create_event(engine)
    hold_id = await hold(client, buyer, event.id, event.seat_ids[:3])
    assert (await client.get("/api/auth/me", headers=buyer)).status_code == 200

    response = await client.patch(
        f"/api/admin/users/{buyer_id}", json={"status": "disabled"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "disabled"

    assert_problem(await client.get("/api/auth/me", headers=buyer), 401)
    relogin = await client.post(
        "/api/auth/login", json={"email": "buyer@example.test", "password": PASSWORD}
    )
    assert_problem(relogin, 403)
    refresh = await client.post(
        "/api/auth/refresh",
        headers={"X-Requested-With": "fetch", "Cookie": f"{REFRESH_COOKIE}={cookie}"},
    )
    assert_problem(refresh, 401)
    assert not await redis.exists(keys.hold(event.id, hold_id))
    assert not await redis.exists(keys.held_seats(event.id))
    details = (await client.get(f"/api/admin/users/{buyer_id}", headers=admin)).json()
    assert details["live_holds"] == 0

    # Enabled again, the account signs in anew; the tokens of before stay void.
    await client.patch(f"/api/admin/users/{buyer_id}", json={"status": "active"}, headers=admin)
    again = await client.post(
        "/api/auth/login", json={"email": "buyer@example.test", "password": PASSWORD}
    )
    assert again.status_code == 200, again.text
    assert_problem(await client.get("/api/auth/me", headers=buyer), 401)
    fresh = {"Authorization": f"Bearer {again.json()['access_token']}"}
    assert (await client.get("/api/auth/me", headers=fresh)).status_code == 200


async def test_demotion_takes_effect_on_the_next_request(
    client: Client, engine: AsyncEngine, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    organizer = await make_user(Role.ORGANIZER, email="org@example.test")
    before = await client.post("/api/events", json={}, headers=organizer)
    assert before.status_code == 400, before.text  # past the guard, refused for its body
    org_id = await _id(engine, "org@example.test")
    await client.patch(f"/api/admin/users/{org_id}", json={"role": "USER"}, headers=admin)
    after = await client.post("/api/events", json={}, headers=organizer)
    assert assert_problem(after, 403)["detail"] == ROLE_REFUSED
    # The token is otherwise still good: the account keeps what a USER may do.
    assert (await client.get("/api/auth/me", headers=organizer)).json()["role"] == "USER"


async def test_cached_account_stamp_lasts_at_most_its_lifetime(
    client_with: ClientWith, engine: AsyncEngine, make_user: UserFactory
) -> None:
    async with client_with(account_cache_seconds=0.5) as cached:
        admin = await make_user(Role.ADMIN)
        buyer = await make_user(Role.USER, email="buyer@example.test")
        assert (await cached.get("/api/auth/me", headers=buyer)).status_code == 200
        buyer_id = await _id(engine, "buyer@example.test")
        await cached.patch(
            f"/api/admin/users/{buyer_id}", json={"status": "disabled"}, headers=admin
        )
        await asyncio.sleep(0.6)
        assert_problem(await cached.get("/api/auth/me", headers=buyer), 401)


async def test_without_redis_the_check_reads_postgresql(
    client_with: ClientWith, engine: AsyncEngine
) -> None:
    # Fail safe: a Redis outage must not let a disabled account back in.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with client_with(redis_url=dead, account_cache_seconds=0) as client:
        body = {"email": "ada@example.test", "password": PASSWORD, "full_name": "Ada"}
        token = (await client.post("/api/auth/register", json=body)).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/auth/me", headers=bearer)).status_code == 200
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET status = 'disabled' WHERE email = 'ada@example.test'")
            )
        assert_problem(await client.get("/api/auth/me", headers=bearer), 401)
