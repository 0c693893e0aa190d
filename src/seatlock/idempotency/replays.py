"""Running a handler's work once per Idempotency-Key, with its answer replayed to retries:
the HTTP side of `records`.

Two ways, by what the work is:
- `run_in_transaction`, for work that is one PostgreSQL transaction (a booking): the key's
  claim, the work and the stored answer commit together or not at all, so a crash or an
  outage leaves nothing behind and a retry simply runs again.
- `run_idempotently`, for work that calls a provider between transactions (a payment):
  the claim is committed first and the answer stored when the work is done.
"""

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

Recorder = Callable[[msgspec.Struct], Awaitable[None]]


def _replay(stored: records.StoredResponse) -> Response[bytes]:
    return Response(
        stored.body,
        status_code=stored.status,
        media_type=stored.media_type,
        headers={"Idempotent-Replayed": "true"},
    )


def _route(request: Request[Any, Any, Any]) -> str:
    return f"{request.method} {request.url.path}"


def _refusal(request: Request[Any, Any, Any], error: DomainError) -> records.StoredResponse:
    problem = from_domain_error(error).to_response(request)
    return records.StoredResponse(
        error.status, msgspec.json.encode(problem.content), str(problem.media_type)
    )


async def run_in_transaction(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    user_id: Any,
    body: msgspec.Struct,
    status: int,
    work: Callable[[Recorder], Awaitable[msgspec.Struct]],
) -> Response[bytes]:
    """Claim the key in the session's transaction and run `work`, which must pass its
    answer to the recorder it is given before it commits. A refusal (a 4xx domain error)
    is recorded once the work has rolled its own writes back; anything else rolls the
    claim back with them, so that a retry runs afresh."""
    # The parsed body, re-encoded, so that formatting differences do not count.
    request_bytes = msgspec.json.encode(body)
    claimed = await records.claim(
        session, user_id, _route(request), request.headers.get(HEADER), request_bytes
    )
    if isinstance(claimed, records.StoredResponse):
        await session.rollback()
        return _replay(claimed)
    encoded = b""

    async def record(result: msgspec.Struct) -> None:
        nonlocal encoded
        encoded = msgspec.json.encode(result)
        await records.store(session, claimed, records.StoredResponse(status, encoded, JSON))

    try:
        await work(record)
    except DomainError as error:
        if error.status >= 500:
            await session.rollback()
            raise
        await records.store(session, claimed, _refusal(request, error))
        await session.commit()
        raise
    except BaseException:
        await session.rollback()
        raise
    return Response(encoded, status_code=status, media_type=JSON)


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
    started = await records.begin(
        session, user_id, _route(request), request.headers.get(HEADER), msgspec.json.encode(body)
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
        await records.finish(session, started, _refusal(request, error))
        raise
    except BaseException:
        await records.abandon(session, started)
        raise
    encoded = msgspec.json.encode(result)
    await records.finish(session, started, records.StoredResponse(status, encoded, JSON))
    return Response(encoded, status_code=status, media_type=JSON)
