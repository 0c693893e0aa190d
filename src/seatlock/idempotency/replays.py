"""Running a handler's work once per Idempotency-Key, with its answer replayed to retries:
the HTTP side of `records`.

Two ways, by what the work is:
- `run_in_transaction`, for work that is one PostgreSQL transaction (a booking): the key's
  claim, the work and the stored answer commit together or not at all, so a crash or an
  outage leaves nothing behind and a retry simply runs again.
- `run_with_lease`, for work that calls a provider between two transactions (a payment):
  the claim commits with the work's first transaction under a short lease, the answer with
  its last. A retry after a crash takes the key over once the lease is over, and the work
  is handed what the lapsed attempt made, to finish it rather than start again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar import Request, Response
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import Busy, DomainError
from seatlock.idempotency import records
from seatlock.ops.metrics import IDEMPOTENT_REPLAYS
from seatlock.problems import from_domain_error

HEADER = "idempotency-key"
# A handler that takes an `idempotency_key: IdempotencyKey` parameter requires the header,
# declares it in the OpenAPI document and has it checked (400 when missing or malformed)
# before any work starts.
IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=records.MAX_KEY_LENGTH,
        pattern=records.KEY_PATTERN,
        description=(
            "A key of the client's choosing (a UUID, say) that identifies this operation: "
            "retries with the same key and body get the first answer, with "
            "`Idempotent-Replayed: true`. Kept 24 hours, per user and route."
        ),
        examples=[Example(value="5f0c2a8e-6d1b-4a43-9a51-0e1f2b3c4d5e")],
    ),
]
JSON = "application/json"

Recorder = Callable[[msgspec.Struct], Awaitable[None]]
R = TypeVar("R")


def _replay(request: Request[Any, Any, Any], stored: records.StoredResponse) -> Response[bytes]:
    IDEMPOTENT_REPLAYS.labels(request.scope.get("path_template", "")).inc()
    return Response(
        stored.body,
        status_code=stored.status,
        media_type=stored.media_type,
        headers={"Idempotent-Replayed": "true"},
    )


def _route(request: Request[Any, Any, Any]) -> str:
    return f"{request.method} {request.url.path}"


def _lasting(error: DomainError) -> bool:
    """A refusal that the same request would get again, kept as the key's answer. Not a
    503 ("retry shortly" must not be replayed to the retry it asks for), nor a conflict
    that passes by itself."""
    return error.status < 500 and not isinstance(error, Busy)


def _refusal(request: Request[Any, Any, Any], error: DomainError) -> records.StoredResponse:
    problem = from_domain_error(error).to_response(request)
    return records.StoredResponse(
        error.status, msgspec.json.encode(problem.content), str(problem.media_type)
    )


async def _claim(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    user_id: Any,
    body: msgspec.Struct,
    lease: timedelta | None = None,
) -> records.Claim | records.StoredResponse:
    # The parsed body, re-encoded, so that formatting differences do not count.
    return await records.claim(
        session,
        user_id,
        _route(request),
        request.headers.get(HEADER),
        msgspec.json.encode(body),
        lease,
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
    answer to the recorder it is given before it commits. A lasting refusal (a 4xx domain
    error, raised before the work wrote anything) is recorded with the claim; anything
    else rolls the claim back, so that a retry runs afresh. Either way the refusal's
    `after_transaction` runs once the transaction is over."""
    claimed = await _claim(request, session, user_id, body)
    if isinstance(claimed, records.StoredResponse):
        await session.rollback()
        return _replay(request, claimed)
    encoded = b""

    async def record(result: msgspec.Struct) -> None:
        nonlocal encoded
        encoded = msgspec.json.encode(result)
        await records.store(session, claimed, records.StoredResponse(status, encoded, JSON))

    try:
        await work(record)
    except DomainError as error:
        try:
            if _lasting(error):
                await records.store(session, claimed, _refusal(request, error))
                await session.commit()
            else:
                await session.rollback()
        finally:
            if error.after_transaction is not None:
                await error.after_transaction()
        raise
    except BaseException:
        await session.rollback()
        raise
    return Response(encoded, status_code=status, media_type=JSON)


class LeaseLost(Exception):
    """A retry took the key over while this request was still working: it must not write."""


class Lease(Generic[R]):
    """What work run under a leased key reports to it, in the work's own transactions."""

    def __init__(
        self,
        session: AsyncSession,
        claimed: records.Claim,
        status: int,
        present: Callable[[R], msgspec.Struct],
    ) -> None:
        self._session = session
        self._claimed = claimed
        self._status = status
        self._present = present
        self.encoded = b""

    @property
    def earlier(self) -> uuid.UUID | None:
        """What an attempt with this key made before it died, if it made anything."""
        return self._claimed.earlier

    async def started(self, resource_id: uuid.UUID) -> None:
        """In the first transaction: what the work made, for a retry to finish after a crash."""
        await records.remember(self._session, self._claimed, resource_id)

    async def answer(self, result: R) -> None:
        """In the last transaction: the answer, stored with the work's final writes. Raises
        LeaseLost (and the transaction must roll back) when a retry took the key over."""
        encoded = msgspec.json.encode(self._present(result))
        stored = records.StoredResponse(self._status, encoded, JSON)
        if not await records.store(self._session, self._claimed, stored):
            raise LeaseLost
        self.encoded = encoded


async def run_with_lease(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    user_id: Any,
    body: msgspec.Struct,
    status: int,
    lease: timedelta,
    present: Callable[[R], msgspec.Struct],
    work: Callable[[Lease[R]], Awaitable[R]],
) -> Response[bytes]:
    """Do `work` once per key: a retry with the same key and body gets the first answer,
    a refusal included. `work` commits its own transactions, telling the `Lease` it is
    given what it made (in the first) and its result (in the last, as `present` shows it).
    A lasting refusal is recorded with whatever the work left uncommitted in the session;
    any other failure gives the lease up, so that a retry at once takes over what was made."""
    claimed = await _claim(request, session, user_id, body, lease)
    if isinstance(claimed, records.StoredResponse):
        await session.rollback()
        return _replay(request, claimed)
    progress = Lease(session, claimed, status, present)
    try:
        await work(progress)
    except LeaseLost:
        # This request outlived its lease; the one that took the key over answers for it.
        await session.rollback()
        raise records.KeyInUse(retry_after=1) from None
    except DomainError as error:
        if _lasting(error) and await records.store(session, claimed, _refusal(request, error)):
            await session.commit()
        else:
            await records.release(session, claimed)
        raise
    except BaseException:
        await records.release(session, claimed)
        raise
    return Response(progress.encoded, status_code=status, media_type=JSON)
