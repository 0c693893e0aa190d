"""Bad input gets a clear 4xx problem, never a 500 (DESIGN invariant 6)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import paging
from seatlock.holds.store import new_hold_id
from seatlock.models import Role
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.factories import create_event

HUGE = str(2**63)


# An event no test creates, fixed so that every test process collects the same test ids.
NO_SUCH_EVENT = uuid.UUID("00000000-0000-4000-8000-000000000001")
LISTINGS = [
    ("/api/events", Role.USER),
    ("/api/bookings/my-bookings", Role.USER),
    ("/api/holds", Role.USER),
    ("/api/auth/sessions", Role.USER),
    ("/api/admin/users", Role.ADMIN),
    (f"/api/admin/events/{NO_SUCH_EVENT}/holds", Role.ADMIN),
]


@pytest.mark.parametrize(("path", "role"), LISTINGS)
async def test_a_page_longer_than_its_listing_allows_is_refused(
    client: Client, make_user: UserFactory, path: str, role: Role
) -> None:
    caller = await make_user(role)

    body = assert_problem(await client.get(f"{path}?limit={HUGE}", headers=caller), 400)

    assert body["errors"][0]["field"] == "limit"


@pytest.mark.parametrize(("path", "role"), LISTINGS)
async def test_a_cursor_this_service_did_not_give_is_refused(
    client: Client, make_user: UserFactory, path: str, role: Role
) -> None:
    caller = await make_user(role)
    # A rank and a keyset position past anything PostgreSQL or Redis would be asked for.
    for position in ([2**63], [f"{'9' * 30}-01-01T00:00:00Z", str(uuid.uuid4())]):
        cursor = paging.encode_cursor(position)

        response = await client.get(path, params={"cursor": cursor}, headers=caller)

        assert assert_problem(response, 422)["field"] == "cursor"


async def test_a_stream_version_past_any_version_is_refused(
    client: Client, engine: AsyncEngine
) -> None:
    event = await create_event(engine)

    assert_problem(
        await client.get(f"/api/events/{event.id}/availability/stream?since={HUGE}"), 400
    )


async def test_an_image_upload_without_a_file_part_is_refused(
    client: Client, make_user: UserFactory
) -> None:
    organizer = await make_user(Role.ORGANIZER)

    response = await client.post(
        f"/api/events/{uuid.uuid4()}/image", data={"note": "no file here"}, headers=organizer
    )

    assert_problem(response, 400)
    empty = await client.post(
        f"/api/events/{uuid.uuid4()}/image",
        content=b"--x--\r\n",
        headers={**organizer, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert_problem(empty, 400)


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register"])
async def test_json_nested_a_thousand_levels_deep_is_refused(client: Client, path: str) -> None:
    deep = "[" * 1000 + "]" * 1000

    response = await client.post(path, content=deep, headers={"Content-Type": "application/json"})

    assert_problem(response, 400)


async def test_json_nested_a_thousand_levels_deep_is_refused_when_signed_in(
    client: Client, make_user: UserFactory
) -> None:
    buyer = await make_user()
    deep = '{"hold_id": ' + "[" * 1000 + "]" * 1000 + "}"

    response = await client.post(
        "/api/bookings",
        content=deep,
        headers={**buyer, "Content-Type": "application/json", "Idempotency-Key": "deep-1"},
    )

    assert_problem(response, 400)


@pytest.mark.parametrize("email", ["bad\x01@example.test", "a@exa\x7fmple.test"])
async def test_an_email_with_control_characters_is_refused(client: Client, email: str) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": email, "password": "a long enough password", "full_name": "Eve"},
    )

    body = assert_problem(response, 400, "validation")
    assert body["errors"][0]["field"] == "email"


@pytest.mark.parametrize(
    "path", ["/api/events", "/health/live", f"/api/events/{NO_SUCH_EVENT}/layout"]
)
async def test_a_public_route_refuses_an_invalid_bearer_token(client: Client, path: str) -> None:
    response = await client.get(path, headers={"Authorization": "Bearer not-a-token"})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_signing_in_again_ignores_a_stale_bearer_token(client: Client) -> None:
    response = await client.post(
        "/api/auth/login",
        json={"email": "nobody@example.test", "password": "whatever it is"},
        headers={"Authorization": "Bearer not-a-token"},
    )

    assert_problem(response, 401)
    assert "password" in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_json_sent_as_another_media_type_is_refused(
    client: Client, content_type: str
) -> None:
    response = await client.post(
        "/api/auth/login",
        content=b'{"email": "a@example.test", "password": "x"}',
        headers={"Content-Type": content_type},
    )

    assert_problem(response, 415)


async def test_json_with_a_charset_is_accepted(client: Client) -> None:
    response = await client.post(
        "/api/auth/login",
        content=b'{"email": "nobody@example.test", "password": "whatever it is"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert_problem(response, 401)


@pytest.mark.parametrize("key", ["k" * 256, "with space", "caf\u00e9"])
async def test_a_malformed_idempotency_key_is_refused(
    client: Client, make_user: UserFactory, key: str
) -> None:
    buyer = await make_user()

    response = await client.post(
        "/api/bookings",
        json={"hold_id": new_hold_id(uuid.uuid4())},
        headers=[(name.encode(), value.encode()) for name, value in buyer.items()]
        + [(b"Idempotency-Key", key.encode())],
    )

    body = assert_problem(response, 400, "validation")
    assert [(e["source"], e["field"]) for e in body["errors"]] == [("header", "idempotency_key")]


async def test_cors_exposes_the_headers_clients_read(client_with: ClientWith) -> None:
    shop = "https://tickets.example.test"
    async with client_with(allowed_origins=shop) as client:
        response = await client.get("/health/live", headers={"Origin": shop})

    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"idempotent-replayed", "retry-after", "location", "x-request-id"} <= exposed


@pytest.mark.parametrize("moment", ["0.5", "null", "1796136053"])
async def test_a_moment_must_be_a_date_time(client: Client, moment: str) -> None:
    response = await client.get(f"/api/events?starts_until={moment}")

    body = assert_problem(response, 400, "validation")
    assert body["errors"][0]["field"] == "starts_until"
