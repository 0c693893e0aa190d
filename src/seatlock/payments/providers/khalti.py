"""Khalti ePayment (KPG-2): initiate, the server-side lookup, refunds.

Khalti takes NPR in paisa. Nothing it hands the buyer's browser is signed, so the lookup
API alone decides what happened to a payment.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

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
)
from seatlock.settings import Settings

PROVIDER = "Khalti"
CURRENCY = "NPR"

# Khalti's lookup statuses. A status it adds later counts as neither paid nor failed, and
# a refunded payment is no longer money we hold.
_STATUSES: dict[str, Status] = {
    "Completed": "succeeded",
    "Pending": "pending",
    "Initiated": "pending",
    "User canceled": "failed",
    "Expired": "failed",
    "Refunded": "failed",
}


class _Started(msgspec.Struct):
    pidx: str
    payment_url: str


class _Lookup(msgspec.Struct):
    total_amount: int
    status: str
    transaction_id: str | None = None


class _Refunded(msgspec.Struct):
    """Khalti's answer to a refund: that it succeeded is all there is to know."""


class Khalti:
    name = "khalti"
    currencies: frozenset[str] | None = frozenset({CURRENCY})

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._api = ProviderApi(
            http,
            PROVIDER,
            settings.khalti_base_url,
            settings.provider_timeout_seconds,
            {"Authorization": f"Key {settings.khalti_secret_key}"},
        )
        self._website_url = settings.base_url

    async def initiate(self, checkout: Checkout) -> Initiated:
        payload = {
            "return_url": checkout.return_url,
            "website_url": self._website_url,
            "amount": checkout.amount_minor,
            "purchase_order_id": str(checkout.payment_id),
            "purchase_order_name": checkout.description,
            "customer_info": {"email": checkout.customer_email},
        }
        started = await self._api.call(
            "POST", "epayment/initiate/", _Started, refused=InvalidInput, json=payload
        )
        return Initiated(self.name, started.pidx, started.payment_url, {})

    async def _lookup(self, pidx: str) -> _Lookup:
        return await self._api.call(
            "POST", "epayment/lookup/", _Lookup, refused=InvalidCallback, json={"pidx": pidx}
        )

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        if callback.get("pidx", provider_reference) != provider_reference:
            raise InvalidCallback("the callback belongs to another Khalti payment")
        found = await self._lookup(provider_reference)
        status = _STATUSES.get(found.status, "pending")
        return Outcome(provider_reference, status, found.total_amount, CURRENCY, None)

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        raise InvalidCallback("Khalti sends no webhooks; its payments are verified by lookup")

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str:
        found = await self._lookup(provider_reference)
        # The refund API takes the transaction id, which only the lookup knows.
        if found.transaction_id is None or found.status not in ("Completed", "Refunded"):
            raise Conflict(f"a Khalti payment that is {found.status} cannot be refunded")
        if found.status == "Refunded":
            # Refunded by an earlier call whose answer was lost: nothing more to do.
            return found.transaction_id
        # The refund API sits beside the versioned ePayment API, not below it.
        path = f"../merchant-transaction/{quote(found.transaction_id, safe='')}/refund/"
        await self._api.call(
            "POST", path, _Refunded, refused=Conflict, json={"amount": amount_minor}
        )
        return found.transaction_id
