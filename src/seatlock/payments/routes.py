"""/api/payments: initiate a payment, verify it, read it; providers' webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, JSONBody

from seatlock import deps
from seatlock.auth.access import PUBLIC, SIGNED_IN
from seatlock.bodies import Body
from seatlock.idempotency.replays import Lease, run_with_lease
from seatlock.models import Payment, PaymentMethod, PaymentStatus
from seatlock.payments import initiation, payments

CallbackValue = Annotated[str, msgspec.Meta(max_length=4096)]
MAX_WEBHOOK_BYTES = 65_536


class InitiateRequest(Body):
    booking_id: uuid.UUID
    method: PaymentMethod
    return_url: Annotated[str, msgspec.Meta(max_length=1000, pattern=r"^https?://")] | None = None


class VerifyRequest(Body):
    payment_id: uuid.UUID
    # What the provider handed the buyer's browser on its way back (signed where it signs).
    callback: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=100)], CallbackValue],
        msgspec.Meta(max_length=30),
    ] = msgspec.field(default_factory=dict)


class PaymentOut(msgspec.Struct):
    id: uuid.UUID
    booking_id: uuid.UUID
    method: PaymentMethod
    provider: str
    status: PaymentStatus
    amount_minor: int
    currency: str
    provider_reference: str | None
    checkout_url: str | None
    created_at: datetime


def payment_out(payment: Payment) -> PaymentOut:
    return msgspec.convert(payment, PaymentOut, from_attributes=True)


@post("/initiate", roles=SIGNED_IN, status_code=201)
async def initiate(
    data: JSONBody[InitiateRequest],
    request: Request[Any, Any, Any],
    principal: deps.Caller,
    db_session: deps.DbSession,
    providers: deps.Providers,
    settings: deps.Settings,
) -> Response[bytes]:
    return_url = data.return_url or f"{settings.public_base_url}/api/bookings/{data.booking_id}"

    async def start(lease: Lease[Payment]) -> Payment:
        return await initiation.initiate_payment(
            db_session, providers, principal, data.booking_id, data.method, return_url, lease
        )

    lease = timedelta(seconds=settings.idempotency_lease_seconds)
    return await run_with_lease(
        request, db_session, principal.id, data, 201, lease, payment_out, start
    )


@post("/verify", roles=SIGNED_IN, status_code=200)
async def verify(
    data: JSONBody[VerifyRequest],
    principal: deps.Caller,
    db_session: deps.DbSession,
    holds: deps.Holds,
    redis_breaker: deps.RedisBreaker,
    providers: deps.Providers,
) -> PaymentOut:
    payment = await payments.verify_payment(
        db_session, holds, redis_breaker, providers, principal, data.payment_id, data.callback
    )
    return payment_out(payment)


@get("/{payment_id:uuid}", roles=SIGNED_IN)
async def get_payment(
    payment_id: FromPath[uuid.UUID], principal: deps.Caller, db_session: deps.DbSession
) -> PaymentOut:
    return payment_out(await payments.get_payment(db_session, principal, payment_id))


@post(
    "/webhooks/{provider:str}",
    roles=PUBLIC,
    status_code=204,
    request_max_body_size=MAX_WEBHOOK_BYTES,
)
async def webhook(
    provider: FromPath[str],
    request: Request[Any, Any, Any],
    db_session: deps.DbSession,
    holds: deps.Holds,
    redis_breaker: deps.RedisBreaker,
    providers: deps.Providers,
) -> None:
    # The raw body: providers sign the exact bytes they sent.
    raw = await request.body()
    await payments.receive_webhook(
        db_session, holds, redis_breaker, providers, provider, raw, request.headers
    )


payments_router = Router(
    "/api/payments", route_handlers=[initiate, verify, get_payment, webhook], tags=["payments"]
)
