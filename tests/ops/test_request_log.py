"""Request logs: a line per request with its route template, the request id honoured or
issued and echoed, domain lines tied to their request, and the plain format."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.ops.request_log import HANDLER_NAME, configure_logging, record
from tests.buying import hold
from tests.clients import Client, ClientWith, UserFactory
from tests.factories import create_event

ISSUED = re.compile(r"[0-9a-f]{32}")


@contextmanager
def captured() -> Iterator[io.StringIO]:
    """What the service's log handler writes, while the block runs."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME)
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


@asynccontextmanager
async def logging_client(client_with: ClientWith, log_format: str) -> AsyncIterator[Client]:
    async with client_with(log_format=log_format) as client:
        yield client


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def request_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in json_lines(buffer) if line["logger"] == "seatlock.requests"]


async def test_a_json_line_per_request_with_its_route_template(client_with: ClientWith) -> None:
    async with logging_client(client_with, "json") as client:
        event_id = uuid.uuid4()
        with captured() as buffer:
            response = await client.get(
                f"/api/events/{event_id}", headers={"X-Request-ID": "abc-1"}
            )
            await client.get("/no/such/route")
    assert response.headers["x-request-id"] == "abc-1"
    first, second = request_lines(buffer)
    assert first["route"] == "/api/events/{event_id}"
    assert str(event_id) not in json.dumps(first)
    assert first["method"] == "GET"
    assert first["status"] == 404
    assert first["request_id"] == "abc-1"
    assert first["user_id"] is None
    assert isinstance(first["duration_ms"], float)
    assert (second["route"], second["status"]) == ("unmatched", 404)
    assert ISSUED.fullmatch(second["request_id"])


async def test_an_insane_request_id_is_replaced(client_with: ClientWith) -> None:
    async with logging_client(client_with, "json") as client:
        for given in ("x" * 65, "two words", "a;b", ""):
            with captured() as buffer:
                response = await client.get("/health/live", headers={"X-Request-ID": given})
            issued = response.headers["x-request-id"]
            assert ISSUED.fullmatch(issued), given
            assert request_lines(buffer)[0]["request_id"] == issued


async def test_what_a_request_did_is_told_on_its_own_line(
    client_with: ClientWith, make_user: UserFactory, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    buyer = await make_user()
    async with logging_client(client_with, "json") as client:
        me = (await client.get("/api/auth/me", headers=buyer)).json()
        with captured() as buffer:
            hold_id = await hold(
                client, {**buyer, "X-Request-ID": "buy-1"}, event.id, event.seat_ids[:1]
            )
    # One line for the request, with what it did: no second line for the hold.
    (line,) = [x for x in json_lines(buffer) if x["logger"].startswith("seatlock")]
    assert line["logger"] == "seatlock.requests"
    assert line["did"] == ["hold created"]
    assert (line["hold_id"], line["event_id"], line["seats"]) == (hold_id, str(event.id), 1)
    assert line["request_id"] == "buy-1"
    assert line["user_id"] == me["id"]
    assert line["status"] == 201


def test_what_is_done_outside_a_request_is_a_line_of_its_own() -> None:
    configure_logging("json")
    with captured() as buffer:
        record("booking expired", booking_id="b-1")
    (line,) = json_lines(buffer)
    assert (line["logger"], line["message"], line["booking_id"]) == (
        "seatlock",
        "booking expired",
        "b-1",
    )
    assert "did" not in line


async def test_plain_lines_when_asked(client_with: ClientWith) -> None:
    async with logging_client(client_with, "plain") as client:
        with captured() as buffer:
            await client.get("/health/live", headers={"X-Request-ID": "plain-1"})
    (line,) = [x for x in buffer.getvalue().splitlines() if " seatlock.requests: " in x]
    assert "INFO seatlock.requests: GET /health/live 200" in line
    assert "request_id=plain-1" in line
    assert "route=/health/live" in line
    assert not line.startswith("{")
