"""What a request body must be before a handler parses it: JSON where a route reads JSON."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.params import BodyKwarg

from seatlock.errors import DomainError


class UnsupportedMediaType(DomainError):
    status = 415
    slug = "unsupported-media-type"
    title = "The request body is not of a media type this route reads"


def reads_json(handler: BaseRouteHandler) -> bool:
    """Whether the route parses its body as JSON (a `data` parameter that is not a form)."""
    if not isinstance(handler, HTTPRouteHandler):
        return False
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    kwarg = data.kwarg_definition
    return not isinstance(kwarg, BodyKwarg) or kwarg.media_type == RequestEncodingType.JSON


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def require_json(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A guard: JSON sent as anything else (a form, text) is refused with 415 rather than
    parsed as JSON regardless; a request that names no media type is read as JSON."""
    header = connection.headers.get("content-type")
    if header is None or not reads_json(handler):
        return
    media_type = header.partition(";")[0].strip().lower()
    if not _is_json(media_type):
        raise UnsupportedMediaType(f"send this route's body as application/json, not {media_type}")
