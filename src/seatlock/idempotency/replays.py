"""Running a handler's work under an Idempotency-Key: the HTTP side of `idempotency`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import DomainError
from seatlock.idempotency import records
from seatlock.problems import from_domain_error

HEADER = "idempotency-key"
JSON = "application/json"


def _replay(stored: records.StoredResponse) -> Response[bytes]:
    return Response(
        stored.body,
        status_code=stored.status,
        media_type=stored.media_type,
        headers={"Idempotent-Replayed": "true"},
    )


async def run_idempotently(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    user_id: Any,
    body: msgspec.Struct,
    status: int,
    work: Callable[[], Awaitable[msgspec.Struct]],
) -> Response[bytes]:
    """Do `work` once per key: a retry with the same key and body gets the first answer,
    a domain error included; an unexpected failure frees the key for another try."""
    route = f"{request.method} {request.url.path}"
    # The parsed body, re-encoded, so that formatting differences do not count.
    started = await records.begin(
        session, user_id, route, request.headers.get(HEADER), msgspec.json.encode(body)
    )
    if isinstance(started, records.StoredResponse):
        return _replay(started)
    try:
        result = await work()
    except DomainError as error:
        if error.status >= 500:
            # "Unavailable, retry shortly" must not be replayed to the retry it asks for.
            await records.abandon(session, started)
            raise
        problem = from_domain_error(error).to_response(request)
        stored = records.StoredResponse(
            error.status, msgspec.json.encode(problem.content), str(problem.media_type)
        )
        await records.finish(session, started, stored)
        raise
    except BaseException:
        await records.abandon(session, started)
        raise
    encoded = msgspec.json.encode(result)
    await records.finish(session, started, records.StoredResponse(status, encoded, JSON))
    return Response(encoded, status_code=status, media_type=JSON)
