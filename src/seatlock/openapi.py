"""The OpenAPI document (/schema/openapi.json) and its interactive pages (/schema), served
without any CDN.

Litestar writes the document from the handlers; this module finishes it from what each
handler declares: its `roles` (public routes need no token), its parameters and body (which
errors they can cause) and its `problems=` (the statuses its domain answers besides),
so that every error a route can answer is documented with the one problem schema."""

from __future__ import annotations

import importlib.util
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Litestar, Request, Router
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from seatlock.auth.access import PUBLIC, authorize
from seatlock.bodies import Body
from seatlock.inputs import reads_json

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "An RFC 9457 problem: every error answer of the service.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "`/problems/<slug>` naming the problem, or `about:blank`",
        },
        "title": {"type": "string", "description": "the kind of problem, for people"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "this occurrence, for people"},
        "errors": {
            "type": "array",
            "description": "validation problems (`/problems/validation`), one per field",
            "items": {
                "type": "object",
                "required": ["field", "source", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "source": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
        "field": {"type": "string", "description": "the request field the problem is about"},
        "conflicts": {
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
            "description": "the seats that could not be had (409)",
        },
        "reason": {
            "type": "string",
            "description": "why the `conflicts` could not be had: held, reserved, sold, limit",
        },
        "unknown_seats": {
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
            "description": "seat ids that are not seats of the event",
        },
    },
    "additionalProperties": True,
}

MEANINGS: Final = {
    400: "The request is malformed: invalid JSON, a missing or invalid parameter, header or "
    "body field (`errors` names each)",
    401: "The bearer token is missing, malformed, invalid or expired (see WWW-Authenticate)",
    403: "The caller may not do this (role, account state or origin)",
    404: "Not found, or not the caller's to see",
    409: "Conflicts with the current state (`conflicts` and `reason` name the seats)",
    410: "No longer available",
    413: "The request body is too large",
    415: "The request body is not JSON",
    422: "Well-formed, but it cannot be carried out as asked",
    429: "Too many requests; retry after Retry-After seconds",
    503: "PostgreSQL or Redis is unavailable, or the service is too busy for the request; "
    "retry after Retry-After seconds",
}

# Request examples for the main flows of a buyer, by operationId.
EXAMPLE_ID: Final = "9b2f7c1e-3a4d-4e5f-8a6b-7c8d9e0f1a2b"
EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "createHold": {
        "chosen seats": {"seat_ids": [EXAMPLE_ID]},
        "best available": {"quantity": 2, "price_category": "Standard", "section": "A"},
    },
    "bookHold": {"a hold": {"hold_id": f"{EXAMPLE_ID}.Hk3q9ZtQm1xYb2Vw"}},
    "initiatePayment": {"by card": {"booking_id": EXAMPLE_ID, "method": "CARD"}},
    "verifyPayment": {
        "after the sandbox checkout": {
            "payment_id": EXAMPLE_ID,
            "callback": {
                "reference": "sbx_…",
                "status": "succeeded",
                "amount_minor": "5000",
                "currency": "NPR",
                "event_id": "evt_…",
                "timestamp": "1796136053",
                "signature": "…",
            },
        }
    },
}


def _link(operation: str, description: str, **how: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": operation, "description": description, **how}


_HOLD_ID = {"parameters": {"path.hold_id": "$response.body#/id"}}
_BOOKING_ID = {"parameters": {"path.booking_id": "$response.body#/id"}}
# What an answer hands to the next steps of a buyer, by operationId and status: OpenAPI
# links, which generated clients document and stateful fuzzers follow.
LINKS: Final[dict[tuple[str, str], dict[str, Any]]] = {
    ("registerAccount", "201"): {
        "login": _link(
            "login",
            "Sign in with the account just made",
            requestBody={
                "email": "$request.body#/email",
                "password": "$request.body#/password",
            },
        )
    },
    ("listEvents", "200"): {
        "getEvent": _link(
            "getEvent",
            "Read the first event of the page",
            parameters={"path.event_id": "$response.body#/items/0/id"},
        )
    },
    ("getEvent", "200"): {
        "createHold": _link(
            "createHold",
            "Hold the best available seat of the event",
            parameters={"path.event_id": "$response.body#/id"},
            # Every field: a link's body is laid over a generated one.
            requestBody={"quantity": 1, "seat_ids": None, "price_category": None, "section": None},
        )
    },
    ("createHold", "201"): {
        "getHold": _link("getHold", "Read the hold", **_HOLD_ID),
        "extendHold": _link("extendHold", "Extend the hold", **_HOLD_ID),
        "releaseHold": _link("releaseHold", "Release the hold", **_HOLD_ID),
        "bookHold": _link(
            "bookHold", "Book the hold", requestBody={"hold_id": "$response.body#/id"}
        ),
    },
    ("bookHold", "201"): {
        "getBooking": _link("getBooking", "Read the booking", **_BOOKING_ID),
        "cancelBooking": _link("cancelBooking", "Cancel the booking", **_BOOKING_ID),
        "initiatePayment": _link(
            "initiatePayment",
            "Pay for the booking",
            requestBody={"booking_id": "$response.body#/id"},
        ),
    },
    ("initiatePayment", "201"): {
        "getPayment": _link(
            "getPayment",
            "Read the payment",
            parameters={"path.payment_id": "$response.body#/id"},
        ),
        "verifyPayment": _link(
            "verifyPayment",
            "Verify the payment with what the provider's checkout handed back",
            requestBody={"payment_id": "$response.body#/id"},
        ),
        "getBooking": _link(
            "getBooking",
            "Read the booking paid for",
            parameters={"path.booking_id": "$response.body#/booking_id"},
        ),
    },
    ("verifyPayment", "200"): {
        "getBooking": _link(
            "getBooking",
            "Read the booking, confirmed once the payment succeeded",
            parameters={"path.booking_id": "$response.body#/booking_id"},
        ),
    },
}


def _hold_choices(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """A hold request gives either chosen seats or a quantity of best available seats: two
    whole object schemas, so that client generators make a type of each."""

    def given(name: str) -> dict[str, Any]:
        nullable = properties[name]
        return {
            **nullable["anyOf"][0],
            **{k: v for k, v in nullable.items() if k not in {"anyOf", "default"}},
        }

    absent = {"type": "null"}
    return [
        {
            "title": "Chosen seats",
            "type": "object",
            "required": ["seat_ids"],
            "properties": {
                "seat_ids": given("seat_ids"),
                "quantity": absent,
                "price_category": absent,
                "section": absent,
            },
        },
        {
            "title": "Best available",
            "type": "object",
            "required": ["quantity"],
            "properties": {
                "quantity": given("quantity"),
                "seat_ids": absent,
                "price_category": properties["price_category"],
                "section": properties["section"],
            },
        },
    ]


def operation_id(handler: HTTPRouteHandler, *_: Any) -> str:
    """`create_hold` → `createHold`, unless the handler names its own `operation_id`."""
    first, *rest = handler.handler_name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _summary(operation_id: str) -> str:
    words = re.sub(r"(?<!^)([A-Z])", r" \1", operation_id).lower()
    return words[:1].upper() + words[1:]


def _statuses(handler: HTTPRouteHandler, operation: dict[str, Any]) -> set[int]:
    """Every error status the route can answer: from how it is called, and from what it
    declares its domain answers besides (`problems=`)."""
    found = {401, 503}
    if handler.opt.get("roles") != PUBLIC:
        found.add(403)
    places = {parameter["in"] for parameter in operation.get("parameters", [])}
    body = "requestBody" in operation
    if places or body:
        found.add(400)
    if "path" in places:
        found.add(404)
    if "query" in places:
        # Text PostgreSQL cannot store (a NUL) is refused with 422.
        found.add(422)
    if body:
        found |= {413, 422} | ({415} if reads_json(handler) else set())
    return found | set(handler.opt.get("problems", ()))


def _problem_responses(statuses: set[int]) -> dict[str, Any]:
    return {
        str(status): {
            "description": MEANINGS.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
        }
        for status in sorted(statuses)
    }


def _finish_operation(handler: HTTPRouteHandler, operation: dict[str, Any]) -> None:
    if handler.opt.get("roles") == PUBLIC:
        operation["security"] = []
    if not handler.summary:
        operation["summary"] = _summary(operation["operationId"])
    # What the handler declares itself (`responses=`) stands; Litestar's default 400 goes.
    declared = {str(status) for status in handler.responses or {}}
    responses = {
        status: answer
        for status, answer in operation.get("responses", {}).items()
        if status in declared or not status.startswith(("4", "5"))
    }
    # A handler that answers `Response[None]` is documented with a JSON null body; a 204
    # has no body at all.
    responses.get("204", {}).pop("content", None)
    problems = _problem_responses(_statuses(handler, operation))
    operation["responses"] = {
        status: answer for status, answer in problems.items() if status not in declared
    } | responses
    for (name, status), links in LINKS.items():
        if name == operation["operationId"] and status in operation["responses"]:
            operation["responses"][status]["links"] = links
    examples = EXAMPLES.get(operation["operationId"])
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if examples and body is not None:
        body["examples"] = {name: {"value": value} for name, value in examples.items()}


def _body_structs(handlers: list[HTTPRouteHandler]) -> list[type[Body]]:
    found: list[type[Body]] = []
    for handler in handlers:
        data = handler.parsed_fn_signature.parameters.get("data")
        kind = data.annotation if data is not None else None
        if isinstance(kind, type) and issubclass(kind, Body) and kind not in found:
            found.append(kind)
    return found


def _body_schemas(handlers: list[HTTPRouteHandler]) -> dict[str, Any]:
    """The request bodies' schemas as msgspec, which validates them, writes them: Litestar's
    lose the limits of a union's members (a seat map's `rows`, an update's fields)."""
    _, components = msgspec.json.schema_components(
        _body_structs(handlers), ref_template="#/components/schemas/{name}"
    )
    return components


# Litestar tests a parameter's bounds for truth, so a bound of 0 never reaches the document.
_BOUNDS: Final = {
    "ge": "minimum",
    "gt": "exclusiveMinimum",
    "le": "maximum",
    "lt": "exclusiveMaximum",
}


def _zero_bounds(handler: HTTPRouteHandler, operation: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in operation.get("parameters", [])}
    for field in handler.parsed_fn_signature.parameters.values():
        kwarg = field.kwarg_definition
        if not isinstance(kwarg, ParameterKwarg):
            continue
        parameter = parameters.get(kwarg.query or kwarg.header or kwarg.cookie or field.name)
        for bound, key in _BOUNDS.items():
            if parameter is not None and getattr(kwarg, bound) == 0:
                parameter["schema"][key] = 0


def finish(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """The document Litestar wrote, completed (a copy; Litestar's own is left as it is)."""
    document = msgspec.json.decode(msgspec.json.encode(document))
    paths: dict[str, Any] = document.get("paths", {})
    handlers: list[HTTPRouteHandler] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = paths[route.path_format].get(method.lower())
                if operation is not None:
                    handlers.append(handler)
                    _finish_operation(handler, operation)
                    _zero_bounds(handler, operation)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    schemas |= _body_schemas(handlers)
    schemas["HoldRequest"]["oneOf"] = _hold_choices(schemas["HoldRequest"]["properties"])
    schemas["Problem"] = PROBLEM_SCHEMA
    return document


class _Finished:
    """The finished document of one app, made on first use."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None

    def of(self, request: Request[Any, Any, Any], written: dict[str, Any]) -> dict[str, Any]:
        if self.document is None:
            self.document = finish(request.app, written)
        return self.document


class _Json(JsonRenderPlugin):
    def __init__(self, finished: _Finished) -> None:
        super().__init__()
        self.finished = finished

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.finished.of(request, openapi_schema))


# Swagger UI's own files, from the swagger-ui-py package (found without importing it).
_SWAGGER_SPEC = importlib.util.find_spec("swagger_ui")
SWAGGER_ASSETS: Final = (
    Path(next(iter(_SWAGGER_SPEC.submodule_search_locations or []))) / "static"
    if _SWAGGER_SPEC is not None
    else None
)
ASSETS_PATH: Final = "/schema/assets"


class _SwaggerUI(SwaggerRenderPlugin):
    def __init__(self, finished: _Finished) -> None:
        super().__init__(
            path="/",
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        )
        self.finished = finished

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.finished.of(request, openapi_schema))

    def receive_router(self, router: Router) -> None:
        if SWAGGER_ASSETS is not None:
            router.register(
                create_static_files_router(
                    path="/assets", directories=[SWAGGER_ASSETS], include_in_schema=False
                )
            )


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    finished = _Finished()
    return OpenAPIConfig(
        title=title,
        version=version,
        description=(
            "Seat holds, bookings and payments. Every error answer is an RFC 9457 problem "
            "(`application/problem+json`, schema `Problem`). Signed-in routes take "
            "`Authorization: Bearer <access token>`; a public route refuses an invalid or "
            "expired token with 401 rather than ignore it."
        ),
        # The documentation pages sit behind the role guard like every other route, and
        # are not operations of the API.
        openapi_router=Router(
            "/schema",
            route_handlers=[],
            guards=[authorize],
            opt={"roles": PUBLIC},
            include_in_schema=False,
        ),
        render_plugins=[_Json(finished), _SwaggerUI(finished)],
        use_handler_docstrings=True,
        operation_id_creator=operation_id,
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
            }
        ),
        security=[{"BearerAuth": []}],
    )
