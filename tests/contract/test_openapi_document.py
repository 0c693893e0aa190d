"""The OpenAPI document says what the service does: real bodies, every error as a
problem, the Idempotency-Key, public routes without a token, names for people, no CDN."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients import Client

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op
        for item in document["paths"].values()
        for method, op in item.items()
        if method in METHODS
    }


async def test_created_bookings_and_payments_document_their_bodies(
    document: dict[str, Any],
) -> None:
    ops = _operations(document)
    for name, body in (("bookHold", "BookingOut"), ("initiatePayment", "PaymentOut")):
        schema = ops[name]["responses"]["201"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{body}"}


async def test_every_error_is_a_documented_problem(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors", "conflicts", "reason"} <= set(
        problem["properties"]
    )
    for name, op in _operations(document).items():
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert {"401", "503"} <= set(errors), name
        for answer in (r for s, r in errors.items() if (name, s) != ("checkReadiness", "503")):
            assert list(answer["content"]) == ["application/problem+json"], name
            assert "status_code" not in str(answer), name
    assert {"404", "409", "410"} <= set(_operations(document)["bookHold"]["responses"])
    ready = _operations(document)["checkReadiness"]["responses"]["503"]
    assert ready["content"]["application/json"]["schema"]["$ref"].endswith("/Readiness")


async def test_idempotency_key_is_a_required_header(document: dict[str, Any]) -> None:
    ops = _operations(document)
    for name in ("bookHold", "initiatePayment"):
        [key] = [p for p in ops[name]["parameters"] if p["name"] == "Idempotency-Key"]
        assert key["in"] == "header"
        assert key["required"] is True
        assert key["schema"]["maxLength"] == 255


async def test_public_routes_need_no_token(document: dict[str, Any]) -> None:
    ops = _operations(document)
    for name in ("registerAccount", "login", "refresh", "listEvents", "getLayout", "checkLiveness"):
        assert ops[name]["security"] == [], name
    for name in ("createHold", "bookHold", "getMyAccount"):
        assert "security" not in ops[name], name
    assert document["security"] == [{"BearerAuth": []}]


async def test_operations_are_named_and_described_for_people(document: dict[str, Any]) -> None:
    ops = _operations(document)
    assert {"createHold", "bookHold", "listMyHolds", "initiatePayment", "verifyPayment"} <= set(ops)
    assert ops["listMyHolds"]["summary"] == "List my holds"
    assert not [name for name, op in ops.items() if not op.get("description")]
    body = ops["createHold"]["requestBody"]["content"]["application/json"]
    assert {"chosen seats", "best available"} <= set(body["examples"])


async def test_request_bodies_are_as_strict_as_the_server(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("HoldRequest", "BookingRequest", "RegisterBody", "InitiateRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    chosen, best = schemas["HoldRequest"]["oneOf"]
    assert (chosen["required"], best["required"]) == (["seat_ids"], ["quantity"])
    assert chosen["properties"]["seat_ids"]["maxItems"] == 100
    assert chosen["properties"]["quantity"] == best["properties"]["seat_ids"] == {"type": "null"}
    assert schemas["HoldRequest"]["properties"]["seat_ids"]["anyOf"][0]["maxItems"] == 100


async def test_documentation_routes_are_not_operations(document: dict[str, Any]) -> None:
    assert not [path for path in document["paths"] if path.startswith("/schema")]


async def test_the_interactive_docs_load_nothing_from_elsewhere(client: Client) -> None:
    page = await client.get("/schema")
    assert page.status_code == 200
    assert "https://" not in page.text.replace("https://tickets", "")
    script = await client.get("/schema/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000


async def test_answers_link_to_the_next_steps_of_a_buyer(document: dict[str, Any]) -> None:
    ops = _operations(document)
    followed = {
        (name, status, link["operationId"])
        for name, op in ops.items()
        for status, answer in op["responses"].items()
        for link in answer.get("links", {}).values()
    }
    assert {
        ("registerAccount", "201", "login"),
        ("createHold", "201", "bookHold"),
        ("createHold", "201", "extendHold"),
        ("createHold", "201", "releaseHold"),
        ("bookHold", "201", "getBooking"),
        ("bookHold", "201", "initiatePayment"),
        ("initiatePayment", "201", "verifyPayment"),
        ("verifyPayment", "200", "getBooking"),
    } <= followed
    for _, _, target in followed:
        assert target in ops
    book = ops["createHold"]["responses"]["201"]["links"]["bookHold"]
    assert book["requestBody"] == {"hold_id": "$response.body#/id"}
    extend = ops["createHold"]["responses"]["201"]["links"]["extendHold"]
    [path] = [p for p in ops["extendHold"]["parameters"] if p["in"] == "path"]
    assert extend["parameters"] == {f"path.{path['name']}": "$response.body#/id"}


async def test_no_content_means_no_body(document: dict[str, Any]) -> None:
    empty = [
        op["responses"]["204"] for op in _operations(document).values() if "204" in op["responses"]
    ]
    assert len(empty) >= 4
    assert not [answer for answer in empty if "content" in answer]


async def test_every_path_parameter_states_its_form(document: dict[str, Any]) -> None:
    # A client (or a generated one) can tell a malformed id before sending it; the server
    # refuses the same ids with a 400.
    loose = [
        (op["operationId"], p["name"])
        for op in _operations(document).values()
        for p in op.get("parameters", [])
        if p["in"] == "path" and not {"format", "pattern"} & p["schema"].keys()
    ]
    assert loose == []
