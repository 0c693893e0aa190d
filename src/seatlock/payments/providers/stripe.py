"""Card payments through a Stripe-compatible API: PaymentIntents, signed webhooks, refunds.

The buyer pays in-page with the PaymentIntent's client secret; the service learns the
result from the signed `payment_intent.*` webhooks or by retrieving the PaymentIntent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
import msgspec

from seatlock.errors import Conflict, InvalidInput
from seatlock.payments.providers.base import (
    Checkout,
    Initiated,
    InvalidCallback,
    Outcome,
    ProviderApi,
    Status,
    check_fresh,
    hmac_sha256,
    signature_matches,
)
from seatlock.settings import Settings

PROVIDER = "Stripe"
SIGNATURE_HEADER = "stripe-signature"
_INTENT_ID = re.compile(r"pi_[A-Za-z0-9]+")
# Only these settle a PaymentIntent; after a failed attempt it waits for another card.
_EVENT_STATUSES: dict[str, Status] = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "failed",
}
_INTENT_STATUSES: dict[str, Status] = {"succeeded": "succeeded", "canceled": "failed"}


class _Created(msgspec.Struct):
    id: str
    client_secret: str


class _Intent(msgspec.Struct):
    id: str
    status: str
    amount: int
    currency: str
    amount_received: int = 0


class _EventData(msgspec.Struct):
    intent: _Intent = msgspec.field(name="object")


class _Event(msgspec.Struct):
    id: str
    type: str
    data: _EventData


class _Refund(msgspec.Struct):
    id: str


def _outcome(intent: _Intent, status: Status, event_id: str | None) -> Outcome:
    # What was actually taken, once there is something to take.
    amount = intent.amount_received if status == "succeeded" else intent.amount
    return Outcome(intent.id, status, amount, intent.currency.upper(), event_id)


def _signature_header(headers: Mapping[str, str]) -> tuple[str, list[str]]:
    """The timestamp and the v1 signatures of a Stripe-Signature header."""
    value = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), "")
    timestamp, signatures = "", []
    for item in value.split(","):
        key, _, text = item.strip().partition("=")
        if key == "t":
            timestamp = text
        elif key == "v1":
            signatures.append(text)
    if not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
        raise InvalidCallback("the Stripe-Signature header is missing or malformed")
    return timestamp, signatures


class Stripe:
    name = "stripe"
    currencies: frozenset[str] | None = None

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._api = ProviderApi(
            http,
            PROVIDER,
            settings.stripe_base_url,
            settings.provider_timeout_seconds,
            {"Authorization": f"Bearer {settings.stripe_secret_key}"},
        )
        self._webhook_secret = settings.stripe_webhook_secret
        self._tolerance = settings.webhook_tolerance_seconds

    async def initiate(self, checkout: Checkout) -> Initiated:
        form = {
            "amount": str(checkout.amount_minor),
            "currency": checkout.currency.lower(),
            "description": checkout.description,
            "receipt_email": checkout.customer_email,
            "automatic_payment_methods[enabled]": "true",
            "metadata[payment_id]": str(checkout.payment_id),
            "metadata[booking_id]": str(checkout.booking_id),
        }
        # A retry after a lost answer gets the same PaymentIntent, not a second one.
        key = {"Idempotency-Key": f"initiate-{checkout.payment_id}"}
        created = await self._api.call(
            "POST", "v1/payment_intents", _Created, refused=InvalidInput, form=form, headers=key
        )
        return Initiated(self.name, created.id, None, {"client_secret": created.client_secret})

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        if not _INTENT_ID.fullmatch(provider_reference):
            raise InvalidCallback("not a Stripe PaymentIntent id")
        if callback.get("payment_intent", provider_reference) != provider_reference:
            raise InvalidCallback("the callback belongs to another PaymentIntent")
        path = f"v1/payment_intents/{provider_reference}"
        intent = await self._api.call("GET", path, _Intent, refused=InvalidCallback)
        return _outcome(intent, _INTENT_STATUSES.get(intent.status, "pending"), None)

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        if not self._webhook_secret:
            raise InvalidCallback("no Stripe webhook secret is configured")
        timestamp, signatures = _signature_header(headers)
        expected = hmac_sha256(self._webhook_secret, timestamp.encode() + b"." + raw_body).hex()
        if not any(signature_matches(s, expected) for s in signatures):
            raise InvalidCallback("the webhook's signature does not match")
        check_fresh(int(timestamp), self._tolerance)
        try:
            event = msgspec.json.decode(raw_body, type=_Event)
        except msgspec.DecodeError as exc:
            # Stripe should only send this endpoint payment_intent events.
            raise InvalidCallback(f"not a PaymentIntent event: {exc}") from exc
        if not event.type.startswith("payment_intent."):
            raise InvalidCallback(f"events of type {event.type} are not handled")
        status = _EVENT_STATUSES.get(event.type) or _INTENT_STATUSES.get(
            event.data.intent.status, "pending"
        )
        return _outcome(event.data.intent, status, event.id)

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str:
        form = {"payment_intent": provider_reference, "amount": str(amount_minor)}
        # The key makes a retried refund the same refund, never a second one.
        key = {"Idempotency-Key": f"refund-{provider_reference}-{amount_minor}"}
        refund = await self._api.call(
            "POST", "v1/refunds", _Refund, refused=Conflict, form=form, headers=key
        )
        return refund.id
