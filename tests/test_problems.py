"""Every error is application/problem+json (RFC 9457), and a 500 leaks nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import FromPath, JSONBody
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.bodies import Body
from seatlock.errors import DomainError, Gone, InvalidInput, NotFound, SeatConflict, Unavailable
from seatlock.idempotency.records import KeyInUse
from seatlock.models import User
from seatlock.problems import problem_details_plugin
from tests.clients import PASSWORD, PROBLEM_MEDIA_TYPE, Client, ClientWith, assert_problem

SECRET_DETAIL = "password=hunter2 at /srv/seatlock/internal.py"
SEAT = uuid.UUID("00000000-0000-4000-8000-000000000001")
BODY_LIMIT = 512


async def test_unknown_path_is_a_404_problem(client: Client) -> None:
    body = assert_problem(await client.get("/api/no-such-thing"), 404)
    assert (body["type"], body["title"]) == ("about:blank", "Not Found")


async def test_wrong_method_is_a_405_problem_naming_the_allowed_ones(client: Client) -> None:
    response = await client.delete("/api/auth/me")
    body = assert_problem(response, 405)
    assert (body["type"], body["title"]) == ("about:blank", "Method Not Allowed")
    assert "GET" in response.headers["allow"]


@pytest.fixture
async def small_body_client(client_with: ClientWith) -> AsyncIterator[Client]:
    async with client_with(max_body_bytes=BODY_LIMIT) as client:
        yield client


def _registration(full_name: str) -> dict[str, str]:
    return {"email": "big@example.test", "password": PASSWORD, "full_name": full_name}


async def _users(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(User)) or 0)


async def test_body_over_the_limit_is_a_413_problem(
    small_body_client: Client, engine: AsyncEngine
) -> None:
    response = await small_body_client.post(
        "/api/auth/register", json=_registration("n" * BODY_LIMIT)
    )
    body = assert_problem(response, 413)
    assert body["title"] == "Request Entity Too Large"
    assert await _users(engine) == 0


async def test_streamed_body_over_the_limit_is_a_413_problem(
    small_body_client: Client, engine: AsyncEngine
) -> None:
    # No Content-Length, the body in chunks: the limit holds for what is actually read.
    # The test client always sends a length, so the request is made by hand.
    payload = msgspec.json.encode(_registration("n" * BODY_LIMIT))
    chunks = [payload[start : start + 100] for start in range(0, len(payload), 100)]
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/auth/register",
        "raw_path": b"/api/auth/register",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver.local"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
        "state": {},
    }
    await small_body_client.app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    assert start["status"] == 413
    assert (b"content-type", PROBLEM_MEDIA_TYPE.encode()) in start["headers"]
    assert await _users(engine) == 0


async def test_body_under_the_limit_is_accepted(small_body_client: Client) -> None:
    response = await small_body_client.post("/api/auth/register", json=_registration("Short"))
    assert response.status_code == 201, response.text


# Errors raised by handlers, in a tiny app with the same mapping.


class Seat(Body):
    row: str


class Order(Body):
    seats: list[Seat]


@get("/boom")
async def boom() -> None:
    raise RuntimeError(SECRET_DETAIL)


@get("/domain/{kind:str}")
async def domain(kind: FromPath[str]) -> None:
    errors: dict[str, DomainError] = {
        "invalid": InvalidInput("seats must be in one event", field="seat_ids"),
        "missing": NotFound("no such booking"),
        "conflict": SeatConflict("seat taken", [SEAT], "held"),
        "gone": Gone("the hold expired"),
        "unavailable": Unavailable("holds are unavailable"),
    }
    raise errors[kind]


class StartingUp(Exception):
    """What asyncpg raises, and SQLAlchemy passes on unwrapped, when a new connection meets
    PostgreSQL recovering from a restart."""

    sqlstate = "57P03"


@get("/unwrapped/{kind:str}")
async def unwrapped(kind: FromPath[str]) -> None:
    errors: dict[str, Exception] = {
        "starting-up": StartingUp("the database system is starting up"),
        "refused": ConnectionRefusedError("connect call failed"),
        "key-in-use": KeyInUse(retry_after=7),
    }
    raise errors[kind]


@get("/framework/{kind:str}")
async def framework(kind: FromPath[str]) -> None:
    if kind == "401":
        raise NotAuthorizedException("token needed")
    raise PermissionDeniedException("not yours")


@post("/orders")
async def order(data: JSONBody[Order]) -> dict[str, int]:
    return {"seats": len(data.seats)}


@pytest.fixture
async def tiny_client() -> AsyncIterator[Client]:
    app = Litestar(
        route_handlers=[boom, domain, unwrapped, framework, order],
        plugins=[problem_details_plugin()],
    )
    async with AsyncTestClient(app=app) as client:
        yield client


async def test_unhandled_error_is_a_500_problem_without_internals(
    tiny_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="seatlock"):
        response = await tiny_client.get("/boom")
    body = assert_problem(response, 500)
    assert (body["type"], body["title"]) == ("about:blank", "Internal Server Error")
    assert set(body) == {"type", "title", "status", "detail"}
    for leak in ("Traceback", "RuntimeError", "hunter2", "internal.py", 'File "'):
        assert leak not in response.text
    # It is not lost, though: the log has it, with its stack.
    logged = [r for r in caplog.records if r.name == "seatlock" and r.exc_info]
    assert len(logged) == 1
    assert SECRET_DETAIL in str(logged[0].exc_info[1] if logged[0].exc_info else "")


@pytest.mark.parametrize(
    ("kind", "status", "extra"),
    [
        ("invalid", 422, {"field": "seat_ids"}),
        ("missing", 404, {}),
        ("conflict", 409, {"conflicts": [str(SEAT)], "reason": "held"}),
        ("gone", 410, {}),
        ("unavailable", 503, {}),
    ],
)
async def test_domain_errors_become_problems(
    tiny_client: Client, kind: str, status: int, extra: dict[str, Any]
) -> None:
    body = assert_problem(await tiny_client.get(f"/domain/{kind}"), status)
    assert body["type"].startswith("/problems/")
    assert {
        k: v for k, v in body.items() if k not in {"type", "title", "status", "detail"}
    } == extra


@pytest.mark.parametrize("kind", ["starting-up", "refused"])
async def test_postgresql_unreachable_is_a_503_to_retry(tiny_client: Client, kind: str) -> None:
    response = await tiny_client.get(f"/unwrapped/{kind}")
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"


async def test_a_key_in_use_says_when_to_retry(tiny_client: Client) -> None:
    response = await tiny_client.get("/unwrapped/key-in-use")
    assert_problem(response, 409, "idempotency-key-in-use")
    assert response.headers["retry-after"] == "7"


async def test_framework_401_asks_for_a_bearer_token(tiny_client: Client) -> None:
    response = await tiny_client.get("/framework/401")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_framework_403_is_a_problem(tiny_client: Client) -> None:
    body = assert_problem(await tiny_client.get("/framework/403"), 403)
    assert body["detail"] == "not yours"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"seats": [{"row": "A", "extra": 1}]}, "seats[0].extra"),
        ({"seats": [{"row": "A"}, {}]}, "seats[1].row"),
        ({"seats": [{"row": 1}]}, "seats[0].row"),
        ({"seats": "A1"}, "seats"),
        ({"seat": []}, "seat"),
    ],
)
async def test_validation_problem_names_nested_fields(
    tiny_client: Client, payload: dict[str, Any], field: str
) -> None:
    body = assert_problem(await tiny_client.post("/orders", json=payload), 400, "validation")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [(field, "body")]
