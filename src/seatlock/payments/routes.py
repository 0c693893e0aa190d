"""/api/payments: initiate a payment, verify it, read it; providers' webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, PathParameter

from seatlock import deps
from seatlock.auth.access import PUBLIC, SIGNED_IN
from seatlock.bodies import Body
from seatlock.idempotency.replays import IdempotencyKey, Lease, run_with_lease
from seatlock.models import Payment, PaymentMethod, PaymentStatus
from seatlock.payments import initiation, payments
from seatlock.payments.providers.registry import PROVIDER_NAME_PATTERN
from seatlock.payments.return_page import payment_returned

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


@post(
    "/initiate",
    roles=SIGNED_IN,
    status_code=201,
    operation_id="initiatePayment",
    problems=(404, 409, 429),
    responses={201: ResponseSpec(PaymentOut, description="The payment, with its checkout_url")},
)
async def initiate(
    data: JSONBody[InitiateRequest],
    idempotency_key: IdempotencyKey,
    request: Request[Any, Any, Any],
    checkout: deps.Checkout,
) -> Response[bytes]:
    """Starts paying for one of the caller's bookings with a provider: answers the
    payment with the `checkout_url` to send the buyer to. Requires an Idempotency-Key."""
    caller = checkout.caller
    # Before the key is looked at: a refusal is no answer to keep for the key.
    await checkout.rate_limits.payment(caller.id)
    return_url = data.return_url or f"{checkout.settings.base_url}/api/payments/return"

    async def start(lease: Lease[Payment]) -> Payment:
        return await initiation.initiate_payment(
            checkout.session,
            checkout.providers,
            caller,
            data.booking_id,
            data.method,
            return_url,
            lease,
        )

    lease = timedelta(seconds=checkout.settings.idempotency_lease_seconds)
    return await run_with_lease(
        request, checkout.session, caller.id, data, 201, lease, payment_out, start
    )


@post(
    "/verify", roles=SIGNED_IN, status_code=200, operation_id="verifyPayment", problems=(404, 409)
)
async def verify(
    data: JSONBody[VerifyRequest],
    checkout: deps.Checkout,
) -> PaymentOut:
    """Asks the provider about a payment, with the callback its checkout handed back,
    and settles it once: a success confirms the booking."""
    payment = await payments.verify_payment(
        checkout.session,
        checkout.holds,
        checkout.redis_breaker,
        checkout.providers,
        checkout.caller,
        data.payment_id,
        data.callback,
    )
    return payment_out(payment)


@get("/{payment_id:uuid}", roles=SIGNED_IN)
async def get_payment(payment_id: FromPath[uuid.UUID], own: deps.Own) -> PaymentOut:
    """One of the caller's payments."""
    return payment_out(await payments.get_payment(own.session, own.caller, payment_id))


@post(
    "/webhooks/{provider:str}",
    roles=PUBLIC,
    operation_id="receivePaymentWebhook",
    problems=(403, 409, 413, 422),
    status_code=204,
    request_max_body_size=MAX_WEBHOOK_BYTES,
)
async def webhook(
    provider: Annotated[str, PathParameter(pattern=PROVIDER_NAME_PATTERN)],
    request: Request[Any, Any, Any],
    db_session: deps.DbSession,
    holds: deps.Holds,
    redis_breaker: deps.RedisBreaker,
    providers: deps.Providers,
) -> None:
    """A provider's notification about a payment, checked against the provider's
    signature; settles it as verification does."""
    # The raw body: providers sign the exact bytes they sent.
    raw = await request.body()
    await payments.receive_webhook(
        db_session, holds, redis_breaker, providers, provider, raw, request.headers
    )


payments_router = Router(
    "/api/payments",
    route_handlers=[initiate, verify, get_payment, webhook, payment_returned],
    tags=["payments"],
)
