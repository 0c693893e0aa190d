"""The document and the server draw the line in the same place: what the document refuses,
the server refuses with a validation problem, and what it allows is not refused as invalid."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role
from tests.clients import Client, UserFactory, assert_problem
from tests.events.eventdata import block, category, event_body, seat_map
from tests.factories import create_event


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get("/schema/openapi.json")).json()
    return found


def _allows(document: dict[str, Any], schema: str, body: Any) -> bool:
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return bool(jsonschema_rs.Draft202012Validator(root).is_valid(body))


def _parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    operation = next(iter(document["paths"][path].values()))
    [found] = [p for p in operation["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    return schema


async def test_a_stream_version_below_zero_is_refused_as_documented(
    client: Client, engine: AsyncEngine, document: dict[str, Any]
) -> None:
    event = await create_event(engine)
    since = _parameter(document, "/api/events/{event_id}/availability/stream", "since")

    response = await client.get(f"/api/events/{event.id}/availability/stream?since=-1")

    assert since["minimum"] == 0
    assert assert_problem(response, 400, "validation")["errors"][0]["field"] == "since"


def _rows(rows: Any) -> dict[str, Any]:
    return {"seat_map": seat_map(A=[{**block(("1", "2"), (1, 5)), "rows": rows}])}


def _seats(seats: Any) -> dict[str, Any]:
    return {"seat_map": seat_map(A=[{**block(("1", "2"), (1, 5)), "seats": seats}])}


INVALID_EVENTS = {
    "no rows": _rows([]),
    "no seats": _seats([]),
    "a row label ending in a newline": _rows(["A\n"]),
    "a seat number 0": _seats([0]),
    "a currency ending in a newline": {"price_categories": [category(currency="EUR\n")]},
}


@pytest.mark.parametrize("changes", INVALID_EVENTS.values(), ids=INVALID_EVENTS.keys())
async def test_event_bodies_the_document_refuses_are_refused(
    client: Client,
    make_user: UserFactory,
    engine: AsyncEngine,
    document: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    admin = await make_user(Role.ADMIN)
    event = await create_event(engine)
    body = event_body(**changes)

    created = await client.post("/api/events", json=body, headers=admin)
    updated = await client.patch(f"/api/events/{event.id}", json=changes, headers=admin)

    assert _allows(document, "EventCreate", event_body())
    assert not _allows(document, "EventCreate", body)
    assert not _allows(document, "EventChanges", changes)
    assert_problem(created, 400, "validation")
    assert_problem(updated, 400, "validation")


async def test_an_update_below_a_zero_bound_is_refused_as_documented(
    client: Client, make_user: UserFactory, engine: AsyncEngine, document: dict[str, Any]
) -> None:
    admin = await make_user(Role.ADMIN)
    event = await create_event(engine)
    changes = {"max_hold_extensions": -1}

    response = await client.patch(f"/api/events/{event.id}", json=changes, headers=admin)

    assert not _allows(document, "EventChanges", changes)
    assert _allows(document, "EventChanges", {"max_hold_extensions": 0})
    assert assert_problem(response, 400, "validation")["errors"][0]["field"] == (
        "max_hold_extensions"
    )


async def test_an_image_upload_without_parts_is_refused_as_documented(
    client: Client, make_user: UserFactory, engine: AsyncEngine, document: dict[str, Any]
) -> None:
    admin = await make_user(Role.ADMIN)
    event = await create_event(engine)

    response = await client.post(
        f"/api/events/{event.id}/image",
        content=b"--x--\r\n",
        headers={**admin, "Content-Type": "multipart/form-data; boundary=x"},
    )

    assert not _allows(document, "ImageUpload", {})
    assert_problem(response, 400, "validation")


async def test_a_sandbox_reference_is_what_the_sandbox_makes(
    client: Client, document: dict[str, Any]
) -> None:
    reference = _parameter(document, "/sandbox/checkout/{reference}/fail", "reference")
    query = {"return_url": "http://127.0.0.1/", "return_signature": "x"}

    response = await client.post("/sandbox/checkout/a%20b/fail", params=query)

    checker = jsonschema_rs.Draft202012Validator(reference)
    assert not checker.is_valid("a\x01b")
    assert checker.is_valid(f"{'A' * 20}.{'0' * 64}")
    assert assert_problem(response, 400, "validation")["errors"][0]["field"] == "reference"


async def test_the_stream_documents_its_events_not_its_bytes(
    document: dict[str, Any],
) -> None:
    operation = document["paths"]["/api/events/{event_id}/availability/stream"]["get"]
    schema = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    event = {"event": "resync", "data": '{"version":1}', "id": "1"}

    assert _allows(document, schema["$ref"].rpartition("/")[2], event)
    assert not _allows(document, "StreamEvent", {"event": "hello", "data": "{}"})
