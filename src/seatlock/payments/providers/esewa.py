"""eSewa ePay v2: a signed form the buyer's browser posts to eSewa, a signed answer on the
way back, and the status-check API.

eSewa takes NPR in rupees written with decimals. Its status check needs the amount as
well as the transaction, so the amount in paisa is part of the transaction id this
service hands out: `<payment id>-<paisa>`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

import httpx
import msgspec

from seatlock.payments.providers.base import (
    Checkout,
    Initiated,
    InvalidCallback,
    Outcome,
    ProviderApi,
    ProviderUnavailable,
    Status,
    hmac_sha256,
    signature_matches,
)
from seatlock.settings import Settings

PROVIDER = "eSewa"
CURRENCY = "NPR"
_STATUS_PATH = "api/epay/transaction/status/"
SIGNED_ON_REQUEST = ("total_amount", "transaction_uuid", "product_code")
# What an answer must have signed for it to say anything about our transaction.
SIGNED_ON_ANSWER = frozenset({"transaction_uuid", "product_code", "status", "total_amount"})

# The status check's answers. NOT_FOUND is also the answer before the buyer reached eSewa,
# so it is not yet a failure; a status eSewa adds later counts as neither.
_STATUSES: dict[str, Status] = {
    "COMPLETE": "succeeded",
    "PENDING": "pending",
    "AMBIGUOUS": "pending",
    "NOT_FOUND": "pending",
    "CANCELED": "failed",
    "FULL_REFUND": "failed",
    "PARTIAL_REFUND": "failed",
}


class _StatusAnswer(msgspec.Struct):
    status: str
    total_amount: float | str | None = None


def sign(secret: str, fields: Mapping[str, str], names: Sequence[str]) -> str:
    message = ",".join(f"{name}={fields[name]}" for name in names)
    return base64.b64encode(hmac_sha256(secret, message.encode())).decode()


def rupees(paisa: int) -> str:
    return f"{paisa // 100}.{paisa % 100:02d}"


def to_paisa(amount: float | str) -> int:
    """Rupees as eSewa writes them (100, 100.0, "1,000.0") in paisa; ValueError otherwise."""
    try:
        paisa = Decimal(str(amount).replace(",", "")) * 100
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
    if not paisa.is_finite() or paisa != paisa.to_integral_value():
        raise ValueError(f"not a whole number of paisa: {amount!r}")
    return int(paisa)


def _amount_of(reference: str) -> int:
    _, _, paisa = reference.rpartition("-")
    if not paisa.isascii() or not paisa.isdigit():
        raise InvalidCallback("not an eSewa transaction of this service")
    return int(paisa)


def _spelled(value: msgspec.Raw) -> str:
    text = bytes(value)
    return msgspec.json.decode(text, type=str) if text.startswith(b'"') else text.decode()


def _answer_fields(data: str) -> dict[str, str]:
    """The fields of eSewa's base64 answer, each spelled as eSewa wrote it: the signature
    covers that spelling (a JSON 1000.0 is signed as 1000.0, not as 1000)."""
    try:
        raw = base64.b64decode(data, validate=True)
        fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        return {name: _spelled(value) for name, value in fields.items()}
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidCallback(f"eSewa's answer is malformed: {exc}") from exc


class Esewa:
    name = "esewa"
    currencies: frozenset[str] | None = frozenset({CURRENCY})

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._secret = settings.esewa_secret_key
        self._product_code = settings.esewa_product_code
        self._form_url = f"{settings.esewa_base_url.rstrip('/')}/api/epay/main/v2/form"
        # eSewa's status check takes no key.
        self._api = ProviderApi(
            http, PROVIDER, settings.esewa_status_base_url, settings.provider_timeout_seconds
        )

    async def initiate(self, checkout: Checkout) -> Initiated:
        """`checkout_url` is the form's action: the client posts `fields` there."""
        total = rupees(checkout.amount_minor)
        reference = f"{checkout.payment_id}-{checkout.amount_minor}"
        fields = {
            "amount": total,
            "tax_amount": "0",
            "product_service_charge": "0",
            "product_delivery_charge": "0",
            "total_amount": total,
            "transaction_uuid": reference,
            "product_code": self._product_code,
            "success_url": checkout.return_url,
            "failure_url": checkout.return_url,
            "signed_field_names": ",".join(SIGNED_ON_REQUEST),
        }
        fields["signature"] = sign(self._secret, fields, SIGNED_ON_REQUEST)
        return Initiated(self.name, reference, self._form_url, fields)

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        amount = _amount_of(provider_reference)
        if "data" in callback:
            self._check_answer(provider_reference, callback["data"])
        # The answer only comes back when the buyer's browser does: the status check is
        # what decides.
        return await self._status(provider_reference, amount)

    def _check_answer(self, reference: str, data: str) -> None:
        fields = _answer_fields(data)
        names = fields.get("signed_field_names", "").split(",")
        if not SIGNED_ON_ANSWER.issubset(names) or not fields.keys() >= set(names):
            raise InvalidCallback("eSewa's answer does not sign the fields it must")
        expected = sign(self._secret, fields, names)
        if not signature_matches(fields.get("signature", ""), expected):
            raise InvalidCallback("eSewa's answer has a bad signature")
        if fields["transaction_uuid"] != reference or fields["product_code"] != self._product_code:
            raise InvalidCallback("eSewa's answer belongs to another transaction")

    async def _status(self, reference: str, amount: int) -> Outcome:
        params = {
            "product_code": self._product_code,
            "total_amount": rupees(amount),
            "transaction_uuid": reference,
        }
        answer = await self._api.call(
            "GET", _STATUS_PATH, _StatusAnswer, refused=InvalidCallback, params=params
        )
        try:
            # Without an amount (NOT_FOUND) eSewa speaks of the one it was asked about.
            paid = amount if answer.total_amount is None else to_paisa(answer.total_amount)
        except ValueError as exc:
            raise ProviderUnavailable(f"eSewa answered an odd amount: {exc}") from exc
        return Outcome(reference, _STATUSES.get(answer.status, "pending"), paid, CURRENCY, None)

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        raise InvalidCallback("eSewa sends no webhooks; its payments are verified by status check")

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str:
        raise ProviderUnavailable(
            "eSewa offers no refund API: refund this payment in the eSewa merchant portal"
        )
