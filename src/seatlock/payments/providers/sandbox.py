"""The built-in sandbox provider: payments completed or failed by hand on a local page.

It keeps no state. The reference carries the payment's id, amount and currency under an
HMAC, and the checkout page (`sandbox_routes`) answers with a callback signed the way a real
provider signs one, so verification and webhooks take the same paths as with a real
provider, bad signatures and replays included.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from seatlock.payments.providers.base import (
    Checkout,
    Initiated,
    InvalidCallback,
    Outcome,
    Status,
    check_fresh,
    hmac_sha256,
    signature_matches,
)
from seatlock.settings import Settings

CALLBACK_FIELDS = ("reference", "status", "amount_minor", "currency", "event_id", "timestamp")
SIGNATURE_FIELD = "signature"
_FINAL: dict[str, Status] = {"succeeded": "succeeded", "failed": "failed"}


@dataclass(frozen=True)
class SandboxPayment:
    payment_id: uuid.UUID
    amount_minor: int
    currency: str


def _mac(secret: str, purpose: str, message: bytes) -> str:
    # The purpose keeps a reference's signature from passing for a callback's.
    return hmac_sha256(secret, purpose.encode() + b"\n" + message).hex()


def make_reference(secret: str, payment: SandboxPayment) -> str:
    payload = f"{payment.payment_id}:{payment.amount_minor}:{payment.currency}".encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=")
    return f"{encoded.decode()}.{_mac(secret, 'reference', encoded)}"


def read_reference(secret: str, reference: str) -> SandboxPayment | None:
    """The payment a reference stands for; None unless this service signed it."""
    encoded, _, signature = reference.partition(".")
    if not signature_matches(signature, _mac(secret, "reference", encoded.encode())):
        return None
    padded = encoded + "=" * (-len(encoded) % 4)
    payment_id, amount, currency = base64.urlsafe_b64decode(padded).decode().split(":")
    return SandboxPayment(uuid.UUID(payment_id), int(amount), currency)


def _canonical(fields: Mapping[str, str]) -> bytes:
    # A JSON list of the values in a fixed order: no value can pass for another field.
    return msgspec.json.encode([fields[name] for name in CALLBACK_FIELDS])


def sign_callback(
    secret: str, reference: str, payment: SandboxPayment, status: Status
) -> dict[str, str]:
    """The callback the checkout page answers with, signed as a provider would sign it."""
    fields = {
        "reference": reference,
        "status": status,
        "amount_minor": str(payment.amount_minor),
        "currency": payment.currency,
        "event_id": f"evt_{secrets.token_hex(12)}",
        "timestamp": str(int(time.time())),
    }
    return {**fields, SIGNATURE_FIELD: _mac(secret, "callback", _canonical(fields))}


class Sandbox:
    name = "sandbox"
    currencies: frozenset[str] | None = None

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.sandbox_secret
        self._base_url = settings.public_base_url.rstrip("/")
        self._tolerance = settings.webhook_tolerance_seconds

    async def initiate(self, checkout: Checkout) -> Initiated:
        payment = SandboxPayment(checkout.payment_id, checkout.amount_minor, checkout.currency)
        reference = make_reference(self._secret, payment)
        checkout_url = f"{self._base_url}/sandbox/checkout/{reference}"
        return Initiated(self.name, reference, checkout_url, {})

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        payment = read_reference(self._secret, provider_reference)
        if payment is None:
            raise InvalidCallback("not a reference of this sandbox")
        if not callback:
            return Outcome(
                provider_reference, "pending", payment.amount_minor, payment.currency, None
            )
        outcome = self._read_callback(callback)
        if outcome.provider_reference != provider_reference:
            raise InvalidCallback("the callback belongs to another payment")
        return outcome

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        try:
            fields = msgspec.json.decode(raw_body, type=dict[str, str])
        except msgspec.DecodeError as exc:
            raise InvalidCallback(f"the webhook body is not a sandbox callback: {exc}") from exc
        outcome = self._read_callback(fields)
        # Signed, so the timestamp is the sandbox's own.
        check_fresh(int(fields["timestamp"]), self._tolerance)
        return outcome

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str:
        if read_reference(self._secret, provider_reference) is None:
            raise InvalidCallback("not a reference of this sandbox")
        return f"sandbox-refund-{secrets.token_hex(8)}"

    def _read_callback(self, fields: Mapping[str, str]) -> Outcome:
        if set(fields) != {*CALLBACK_FIELDS, SIGNATURE_FIELD}:
            raise InvalidCallback(
                f"a sandbox callback has exactly the fields {', '.join(CALLBACK_FIELDS)} "
                f"and {SIGNATURE_FIELD}"
            )
        expected = _mac(self._secret, "callback", _canonical(fields))
        if not signature_matches(fields[SIGNATURE_FIELD], expected):
            raise InvalidCallback("the callback's signature does not match")
        return Outcome(
            provider_reference=fields["reference"],
            status=_FINAL[fields["status"]],
            amount_minor=int(fields["amount_minor"]),
            currency=fields["currency"],
            provider_event_id=fields["event_id"],
        )
